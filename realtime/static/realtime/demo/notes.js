// Notes demo: a collaborative editor on a Yjs document (the Y.Text "content"), synced
// with the ydoc:* events, showing the other editors' cursors and selections from Yjs
// awareness.
import { $, api, el, openSocket, report, requireLogin, userNames } from "./demo.js";

const me = requireLogin();
const socket = openSocket();
const names = await userNames();

let yjs;
try {
  // Built by scripts/js.sh from the npm packages (never committed).
  yjs = await import("../vendor/yjs.js");
} catch {
  report("The Yjs bundle is missing: run scripts/serve.sh (it builds it with npm).");
  throw new Error("no Yjs bundle");
}
const { Y, Awareness, applyAwarenessUpdate, encodeAwarenessUpdate, removeAwarenessStates } = yjs;

const REMOTE = "server"; // transaction origin of what came over the socket
const COLORS = ["#d33", "#27c", "#2a2", "#c6c", "#e80", "#099"];
const myColor = COLORS[me.id % COLORS.length];

/** A user's colour, translucent, for their selection; colours are #rgb or #rrggbb. */
function tint(color, alpha = 0.2) {
  const hex = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(color)?.[1];
  if (!hex) return `color-mix(in srgb, ${color} ${alpha * 100}%, transparent)`;
  const full = hex.length === 3 ? [...hex].map((c) => c + c).join("") : hex;
  const [r, g, b] = [0, 2, 4].map((i) => Number.parseInt(full.slice(i, i + 2), 16));
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

function toBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
const fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

/** One open note: its document, awareness and the textarea bound to its text. */
class Editor {
  constructor(note) {
    this.note = note;
    this.documentId = `note:${note.id}`;
    this.doc = new Y.Doc();
    this.text = this.doc.getText("content");
    this.awareness = new Awareness(this.doc);
    this.awareness.setLocalStateField("user", { id: me.id, name: me.name, color: myColor });
    this.joined = false;
    this.area = $("#editor");
    this.area.value = "";
    this.area.readOnly = note.access !== "write";
    this.selection = null; // relative positions of our selection, kept across remote edits

    this.doc.on("update", (update, origin) => {
      if (origin !== REMOTE && this.joined && socket.connected) {
        // Anything sent while offline is re-sent from the state vector on rejoin.
        socket.emit("ydoc:document:update", {
          document_id: this.documentId,
          update: toBase64(update),
        });
      }
    });
    this.text.observe((event) => {
      if (event.transaction.origin !== "local") this.showRemoteText();
      this.renderCursors();
    });
    this.awareness.on("update", ({ added, updated, removed }, origin) => {
      if (origin !== "local") return;
      this.sendAwareness([...added, ...updated, ...removed]);
    });
    this.awareness.on("change", () => this.renderCursors());
    this.onInput = () => this.localEdit();
    this.onSelect = () => this.trackSelection();
    this.area.addEventListener("input", this.onInput);
    for (const type of ["select", "keyup", "mouseup", "focus"]) {
      this.area.addEventListener(type, this.onSelect);
    }
  }

  sendAwareness(clients) {
    if (!this.joined || !socket.connected) return;
    socket.emit("ydoc:awareness:update", {
      document_id: this.documentId,
      update: toBase64(encodeAwarenessUpdate(this.awareness, clients)),
    });
  }

  /** Join (or re-join after a reconnect): the server answers with its whole state. */
  async join() {
    this.joined = false;
    await socket.emitWithAck("ydoc:document:join", { document_id: this.documentId });
  }

  /** The server's state: merge it, then send what only we have (offline edits). */
  applyState(state) {
    const bytes = fromBase64(state);
    Y.applyUpdate(this.doc, bytes, REMOTE);
    const missing = Y.encodeStateAsUpdate(this.doc, Y.encodeStateVectorFromUpdate(bytes));
    this.joined = true;
    if (missing.length > 2) {
      socket.emit("ydoc:document:update", {
        document_id: this.documentId,
        update: toBase64(missing),
      });
    }
    this.showRemoteText();
    this.sendAwareness([this.doc.clientID]);
    document.body.dataset.synced = "true";
  }

  /** Turn the textarea's change into one minimal Yjs edit. */
  localEdit() {
    const before = this.text.toString();
    const after = this.area.value;
    let start = 0;
    while (start < before.length && start < after.length && before[start] === after[start]) {
      start++;
    }
    let endBefore = before.length;
    let endAfter = after.length;
    while (endBefore > start && endAfter > start && before[endBefore - 1] === after[endAfter - 1]) {
      endBefore--;
      endAfter--;
    }
    this.doc.transact(() => {
      if (endBefore > start) this.text.delete(start, endBefore - start);
      if (endAfter > start) this.text.insert(start, after.slice(start, endAfter));
    }, "local");
    this.trackSelection();
  }

  trackSelection() {
    const rel = (index) =>
      Y.relativePositionToJSON(Y.createRelativePositionFromTypeIndex(this.text, index));
    this.selection = {
      anchor: rel(this.area.selectionStart),
      head: rel(this.area.selectionEnd),
    };
    this.awareness.setLocalStateField("cursor", this.selection);
  }

  absolute(json) {
    if (!json) return null;
    const position = Y.createAbsolutePositionFromRelativePosition(
      Y.createRelativePositionFromJSON(json),
      this.doc,
    );
    return position ? position.index : null;
  }

  showRemoteText() {
    const value = this.text.toString();
    if (this.area.value === value) return;
    this.area.value = value;
    if (this.selection && document.activeElement === this.area) {
      const start = this.absolute(this.selection.anchor);
      const end = this.absolute(this.selection.head);
      if (start !== null && end !== null) this.area.setSelectionRange(start, end);
    }
  }

  /** The text again below the editor, with every other editor's caret and selection. */
  renderCursors() {
    const text = this.text.toString();
    const others = [];
    for (const [clientId, state] of this.awareness.getStates()) {
      if (clientId === this.doc.clientID || !state.user) continue;
      const head = this.absolute(state.cursor?.head);
      const anchor = this.absolute(state.cursor?.anchor);
      others.push({ user: state.user, head, anchor });
    }
    $("#editors").replaceChildren(
      el("li", {}, el("span", { class: "dot", style: `background:${myColor}` }), `${me.name} (you)`),
      ...others.map((o) =>
        el(
          "li",
          { dataset: { user: o.user.name } },
          el("span", { class: "dot", style: `background:${o.user.color}` }),
          o.user.name,
          o.head === null ? "" : o.anchor !== o.head ? ` selecting ${Math.min(o.anchor, o.head)}–${Math.max(o.anchor, o.head)}` : ` at ${o.head}`,
        ),
      ),
    );
    const bounds = new Set([0, text.length]);
    for (const o of others) {
      if (o.head !== null) bounds.add(o.head);
      if (o.anchor !== null) bounds.add(o.anchor);
    }
    const points = [...bounds].sort((a, b) => a - b);
    const parts = [];
    points.forEach((at, i) => {
      for (const o of others) {
        if (o.head === at) {
          parts.push(
            el("span", { class: "caret", style: `border-color:${o.user.color}`, dataset: { user: o.user.name } }, el("span", { class: "caret-name", style: `background:${o.user.color}` }, o.user.name)),
          );
        }
      }
      const next = points[i + 1];
      if (next === undefined) return;
      const chunk = text.slice(at, next);
      const selector = others.find(
        (o) => o.head !== null && o.anchor !== null && Math.min(o.head, o.anchor) <= at && next <= Math.max(o.head, o.anchor),
      );
      parts.push(
        selector
          ? el("mark", { style: `background:${tint(selector.user.color)}`, dataset: { user: selector.user.name } }, chunk)
          : chunk,
      );
    });
    $("#cursors").replaceChildren(...parts);
  }

  close() {
    removeAwarenessStates(this.awareness, [this.doc.clientID], "local");
    if (socket.connected) socket.emit("ydoc:document:leave", { document_id: this.documentId });
    this.joined = false;
    this.area.removeEventListener("input", this.onInput);
    for (const type of ["select", "keyup", "mouseup", "focus"]) {
      this.area.removeEventListener(type, this.onSelect);
    }
    this.awareness.destroy();
    this.doc.destroy();
  }
}

let editor = null;
let notes = [];

socket.on("ydoc:document:state", ({ document_id, state }) => {
  if (editor?.documentId === document_id) editor.applyState(state);
});
socket.on("ydoc:document:update", ({ document_id, update }) => {
  if (editor?.documentId === document_id) Y.applyUpdate(editor.doc, fromBase64(update), REMOTE);
});
socket.on("ydoc:awareness:update", ({ document_id, update }) => {
  if (editor?.documentId === document_id) {
    applyAwarenessUpdate(editor.awareness, fromBase64(update), REMOTE);
  }
});
socket.on("ydoc:user:joined", ({ document_id }) => {
  // Show ourselves to the newcomer at once instead of at the next awareness renewal.
  if (editor?.documentId === document_id) editor.sendAwareness([editor.doc.clientID]);
});
socket.on("error", (error) => {
  report(`${error.code}: ${error.message}`);
});
// A grant changed: the server took this socket out of the document. Join again with
// the new permission, or close the note if access was revoked.
socket.on("note:access", async ({ note_id, permission }) => {
  notes = await api("GET", "/api/notes/");
  if (editor?.note.id !== note_id) return renderNotes();
  if (permission === null) {
    report("Your access to this note was revoked.");
    location.hash = "";
    return openNote(null);
  }
  editor.note.access = permission;
  editor.area.readOnly = permission !== "write";
  renderNotes();
  await editor.join();
});
socket.on("note:deleted", async ({ note_id }) => {
  notes = await api("GET", "/api/notes/");
  if (editor?.note.id === note_id) {
    report("This note was deleted.");
    location.hash = "";
    return openNote(null);
  }
  renderNotes();
});
// A new socket is in no document: join again (the state sync sends offline edits).
socket.on("connect", () => {
  if (editor) editor.join().catch((err) => report(err.message));
});

function renderNotes() {
  $("#notes").replaceChildren(
    ...notes.map((n) =>
      el(
        "li",
        { class: editor?.note.id === n.id ? "current" : "", dataset: { noteId: n.id } },
        el("a", { href: `#note=${n.id}` }, n.title || "Untitled"),
        n.access === "read" ? el("span", { class: "badge" }, "read-only") : null,
      ),
    ),
  );
}

async function openNote(noteId) {
  editor?.close();
  editor = null;
  document.body.dataset.synced = "false";
  const note = notes.find((n) => n.id === noteId);
  $("#note-title").textContent = note ? note.title || "Untitled" : "No note";
  $("#editor").disabled = !note;
  $("#share").hidden = !note || note.owner_id !== me.id;
  renderNotes();
  if (!note) return;
  editor = new Editor(note);
  renderNotes();
  if (socket.connected) await editor.join();
}

const noteFromHash = () => /note=([^&]+)/.exec(location.hash)?.[1] ?? null;

$("#new-note").addEventListener("submit", async (event) => {
  event.preventDefault();
  const title = new FormData(event.target).get("title");
  const note = await api("POST", "/api/notes/", { title });
  event.target.reset();
  notes = await api("GET", "/api/notes/");
  location.hash = `note=${note.id}`;
});

$("#share").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    await api("POST", `/api/notes/${editor.note.id}/share/`, {
      user_id: Number(form.get("user")),
      permission: form.get("permission"),
    });
    report("Shared.", { ok: true });
  } catch (err) {
    report(err.message);
  }
});
$("#share-user").replaceChildren(
  ...[...names].filter(([id]) => id !== me.id).map(([id, name]) => el("option", { value: id }, name)),
);

window.addEventListener("hashchange", () => openNote(noteFromHash()));
window.addEventListener("pagehide", () => editor?.close());

notes = await api("GET", "/api/notes/");
const initial = noteFromHash() ?? notes[0]?.id ?? null;
if (initial && !noteFromHash()) history.replaceState(null, "", `#note=${initial}`);
await openNote(initial);
document.body.dataset.ready = "true";
