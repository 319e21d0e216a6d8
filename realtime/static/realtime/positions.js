// Room positions for resumable delivery (docs/adapter.md "Recovery", docs/protocol.md
// §8): the last {epoch, offset} the adapter delivered per room, what a reconnect
// presents in `recover`, and which frames are duplicates. No I/O and no events: the
// Socket in realtime.js fires what these answers call for.

// Limits of a connect frame's `recover`: the server refuses a frame past them with
// bad_request and 4401, which would end reconnecting, so no position it could not
// take is kept and no such sid is presented.
export const RECOVER_MAX_ROOMS = 100;
const ROOM_MAX_CHARS = 200;
const EPOCH_MAX_CHARS = 64;
const SID_MAX_CHARS = 64;

/** A position the server's `recover` limits accept. */
export function validPosition(room, epoch, offset) {
  return (
    typeof room === "string" &&
    room.length > 0 &&
    room.length <= ROOM_MAX_CHARS &&
    typeof epoch === "string" &&
    epoch.length <= EPOCH_MAX_CHARS &&
    Number.isSafeInteger(offset) &&
    offset >= 0
  );
}

/** room -> {epoch, offset}, in order of update (re-inserted on every update). */
export class RoomPositions {
  constructor() {
    this._rooms = new Map();
  }

  /** A copy, {room: {epoch, offset}}. */
  snapshot() {
    const copy = {};
    for (const [room, { epoch, offset }] of this._rooms) copy[room] = { epoch, offset };
    return copy;
  }

  remember(room, epoch, offset) {
    this._rooms.delete(room); // re-inserted last: the most recently updated
    this._rooms.set(room, { epoch, offset });
  }

  /** `recover` of a connect frame: `sid` and the 100 most recently updated rooms,
   * or null when there is nothing to present. */
  recoverFrame(sid) {
    if (!this._rooms.size) return null;
    const rooms = {};
    for (const [room, { epoch, offset }] of [...this._rooms].slice(-RECOVER_MAX_ROOMS)) {
      rooms[room] = { epoch, offset };
    }
    const presentable = typeof sid === "string" && sid.length <= SID_MAX_CHARS;
    return presentable ? { sid, rooms } : { rooms };
  }

  /**
   * Start positions ({room: {epoch, offset}}: the connect ack's `positions`, or a
   * `position` event for a room entered later). A room not known yet starts there,
   * so a drop before its first event still recovers it; a known room keeps its own
   * (replayed events move it; a new epoch shows in its next event).
   */
  adoptStart(positions) {
    if (!positions || typeof positions !== "object") return;
    for (const [room, start] of Object.entries(positions)) {
      if (this._rooms.has(room) || !validPosition(room, start?.epoch, start?.offset)) {
        continue;
      }
      this.remember(room, start.epoch, start.offset);
    }
  }

  /** For a recovery result that failed, {reason, epoch, offset}, its position
   * adopted (the live events follow it); null for one that recovered. A recovered
   * room's position moves with its replayed events instead. */
  failure(room, result) {
    if (!result || result.recovered !== false) return null;
    const { reason, epoch, offset } = result;
    if (validPosition(room, epoch, offset)) this.remember(room, epoch, offset);
    return { reason, epoch, offset };
  }

  /**
   * Record an event frame's flat room/epoch/offset. Returns null for a frame without
   * a usable one, "duplicate" for one at or before the known offset of the same
   * epoch, else {room, epoch, offset, epochChanged} (a new epoch of a known room: its
   * history was lost).
   */
  observe({ room, epoch, offset }) {
    if (room === undefined && epoch === undefined && offset === undefined) return null;
    if (!validPosition(room, epoch, offset)) {
      console.warn("realtime: ignored a malformed event position", { room, epoch, offset });
      return null;
    }
    const known = this._rooms.get(room);
    if (known && known.epoch === epoch && offset <= known.offset) return "duplicate";
    this.remember(room, epoch, offset);
    return { room, epoch, offset, epochChanged: Boolean(known) && known.epoch !== epoch };
  }
}
