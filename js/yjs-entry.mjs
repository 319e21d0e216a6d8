// Bundled by scripts/js.sh into realtime/static/realtime/vendor/yjs.js (not committed):
// the Yjs CRDT and its awareness protocol, for the notes demo page.
export * as Y from "yjs";
export {
  Awareness,
  applyAwarenessUpdate,
  encodeAwarenessUpdate,
  removeAwarenessStates,
} from "y-protocols/awareness";
