// Usage demo: which models are in use right now, from the `usage` event (issue 6):
// `usage {model}` marks a model in use for 3 s, the server broadcasts
// `usage {models}` on change, and `usage` with an ack and no model answers the list.
import { $, el, openSocket, requireLogin } from "./demo.js";

requireLogin();
const socket = openSocket();
// A model is forgotten 3 s after its last report: report every second.
const REPORT_EVERY = 1000;

function show(models) {
  $("#models").replaceChildren(
    ...(models.length
      ? models.map((m) => el("li", { dataset: { model: m } }, el("span", { class: "dot" }), m))
      : [el("li", { class: "hint" }, "No model is in use.")]),
  );
}

let supported = true;
let joined = false;
function unsupported() {
  supported = false;
  $("#usage-status").textContent =
    "This server does not track usage yet (it answered unknown_event to usage).";
  $("#use-model").disabled = true;
}

socket.on("usage", ({ models }) => show(models));
socket.on("error", (error) => {
  if (error.event === "usage" && error.code === "unknown_event") unsupported();
  else $("#log").textContent = `${error.code}: ${error.message}`;
});
socket.on("connect", async () => {
  try {
    // Broadcasts go to the sockets that joined presence; the adapter sends user-join
    // again after a reconnect by itself.
    if (!joined) {
      joined = true;
      await socket.timeout(5000).emitWithAck("user-join", {});
    }
    const { models } = await socket.timeout(5000).emitWithAck("usage", {});
    show(models);
    $("#usage-status").textContent = "Live: the list updates when it changes.";
  } catch (err) {
    if (err.code === "unknown_event") unsupported();
    else $("#log").textContent = `${err.code}: ${err.message}`;
  }
});

setInterval(() => {
  if (supported && socket.connected && $("#use-model").checked) {
    socket.emit("usage", { model: $("#model-name").value.trim() || "fake" });
  }
}, REPORT_EVERY);

show([]);
document.body.dataset.ready = "true";
