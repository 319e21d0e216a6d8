// Chat demo: start a fake-model completion and watch it stream (status lines, sources,
// text), stop it, and see the same stream in every tab of the user.
import { $, api, el, openSocket, report, requireLogin } from "./demo.js";

requireLogin();
const socket = openSocket();

const state = {
  chats: [],
  chatId: null,
  messages: new Map(), // message_id -> {message_id, role, content, status_history, sources, done, state, stop_reason}
  tasks: new Set(), // running task ids of the open chat
  streaming: new Set(), // message ids this tab started and that are not done yet
  usageSupported: true,
};

// --- rendering ---------------------------------------------------------------------

/** A status line; "…" only while the message still streams (not after a stop). */
function statusText(status, live) {
  if (typeof status !== "object" || status === null) return String(status);
  const what = status.description || status.action || "status";
  return `${what}${status.done ? " ✓" : live ? "…" : ""}`;
}

// How a message that did not complete ended, as the page shows it after the text.
const ENDINGS = {
  user: "stopped",
  admin: "stopped by an admin",
  shutdown: "stopped: the server shut down",
  error: "failed",
};

function ending(message) {
  if (message.state !== "stopped" && message.state !== "failed") return "";
  return ENDINGS[message.stop_reason] || message.state;
}

function sourceName(source) {
  return source?.source?.name || source?.name || source?.source?.id || "source";
}

function renderMessage(message) {
  let node = document.querySelector(`[data-message-id="${CSS.escape(message.message_id)}"]`);
  if (!node) {
    node = el(
      "article",
      { class: `msg ${message.role}`, dataset: { messageId: message.message_id, role: message.role } },
      el("div", { class: "role" }, message.role === "user" ? "You" : "Fake model"),
      el("ul", { class: "status" }),
      el("ul", { class: "sources" }),
      el("div", { class: "content" }),
    );
    $("#messages").append(node);
  }
  node.dataset.done = String(Boolean(message.done));
  node.dataset.state = message.state || (message.done ? "done" : "streaming");
  node.dataset.stopped = String(message.state === "stopped" || message.state === "failed");
  const content = node.querySelector(".content");
  content.textContent = message.content;
  content.dataset.ending = ending(message); // shown after the text (demo.css)
  const live = node.dataset.state === "streaming";
  node.querySelector(".status").replaceChildren(
    ...(message.status_history || []).map((s) => el("li", {}, statusText(s, live))),
  );
  node.querySelector(".sources").replaceChildren(
    ...(message.sources || []).map((s) => el("li", {}, "Source: ", sourceName(s))),
  );
  node.scrollIntoView({ block: "end" });
}

function renderChats() {
  $("#chats").replaceChildren(
    ...state.chats.map((chat) =>
      el(
        "li",
        { class: chat.id === state.chatId ? "current" : "", dataset: { chatId: chat.id } },
        el("a", { href: `#chat=${chat.id}` }, chat.title),
        chat.live ? el("span", { class: "badge" }, "live") : null,
      ),
    ),
  );
}

function renderControls() {
  $("#stop").disabled = state.tasks.size === 0;
  $("#send").disabled = !state.chatId;
}

// --- loading -----------------------------------------------------------------------

async function loadChats() {
  const live = new Set(state.chats.filter((c) => c.live).map((c) => c.id));
  state.chats = (await api("GET", "/api/chats/")).map((c) => ({ ...c, live: live.has(c.id) }));
  renderChats();
}

/**
 * A stored message merged with what this tab streamed. The stored one lags the stream
 * (text by the flush interval; the events seen between the read and the response), so
 * the longer of each part wins until the message is done.
 */
function merge(local, stored) {
  // A stored message that ended (done, stopped or failed) is the whole of it.
  if (!local || stored.state !== "streaming") return { ...local, ...stored };
  const longer = (a, b) => (a.length > b.length ? a : b);
  return {
    ...stored,
    content: longer(local.content, stored.content),
    status_history: longer(local.status_history, stored.status_history),
    sources: longer(local.sources, stored.sources),
    done: Boolean(local.done),
    state: local.state ?? stored.state,
    stop_reason: local.stop_reason ?? stored.stop_reason,
  };
}

/** The stored chat. After a reconnect this fills what was missed while offline. */
async function loadChat(chatId) {
  holdEarly(chatId);
  try {
    const chat = await api("GET", `/api/chats/${chatId}/`);
    if (chatId === state.chatId) showStored(chat);
  } finally {
    releaseEarly();
  }
  if (chatId === state.chatId) await loadTasks();
}

function showStored(chat) {
  for (const stored of chat.messages) {
    if (resumable(stored)) {
      // Exact up to its position: the stream resumes from there (resume below).
      const message = { status_history: [], sources: [], ...stored, done: false };
      state.messages.set(stored.message_id, message);
      renderMessage(message);
      resume(message, stored.position);
      continue;
    }
    const merged = merge(state.messages.get(stored.message_id), stored);
    state.messages.set(stored.message_id, merged);
    renderMessage(merged);
  }
  // Streamed events may have drawn a message before the stored ones: stored order.
  const list = $("#messages");
  for (const stored of chat.messages) {
    list.append(list.querySelector(`[data-message-id="${CSS.escape(stored.message_id)}"]`));
  }
}

async function loadTasks() {
  if (!state.chatId) return;
  const { task_ids } = await api("GET", `/api/chats/${state.chatId}/tasks/`);
  state.tasks = new Set(task_ids);
  renderControls();
}

async function openChat(chatId) {
  state.chatId = chatId;
  state.messages.clear();
  state.tasks.clear();
  resumed.clear();
  $("#messages").replaceChildren();
  renderChats();
  renderControls();
  if (chatId) await loadChat(chatId);
}

function chatFromHash() {
  const match = /chat=([^&]+)/.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

// --- the stream --------------------------------------------------------------------

// Append an item; a resumed message's stored lists may hold it already (they are
// written at once, the text by the flush interval, so its position covers the text).
function append(list, item, resumed) {
  if (resumed && list.some((known) => JSON.stringify(known) === JSON.stringify(item))) return;
  list.push(item);
}

function applyEvent(message, event, resumed = false) {
  const data = event.data;
  const text = typeof data === "string" ? data : data?.content;
  switch (event.type) {
    case "status":
      append(message.status_history, data, resumed);
      break;
    case "source":
    case "citation":
      append(message.sources, data, resumed);
      break;
    case "message":
    case "chat:message:delta":
      message.content += text ?? "";
      break;
    case "replace":
    case "chat:message":
      message.content = text ?? "";
      break;
    case "chat:completion":
      if (typeof data?.content === "string") message.content = data.content;
      if (data?.done) Object.assign(message, { done: true, state: "done" });
      break;
    case "chat:tasks:cancel":
      // The last event of an answer that did not complete: how, and by whom.
      message.state = data?.state || "stopped";
      message.stop_reason = data?.reason || null;
      break;
    default:
      return false;
  }
  return true;
}

/** One `events` payload: the chat list, the message and the controls. */
function handleEvent({ chat_id, message_id, data: event }, resumed = false) {
  const chat = state.chats.find((c) => c.id === chat_id);
  const ended = event.type === "chat:tasks:cancel" || (event.type === "chat:completion" && event.data?.done);
  if (chat) {
    chat.live = !ended;
    if (event.type === "chat:completion" && event.data?.title) chat.title = event.data.title;
  } else {
    loadChats(); // started elsewhere: a chat this tab has not listed yet
  }
  if (ended) {
    state.streaming.delete(message_id);
    if (chat) loadChats();
  }
  renderChats();
  if (chat_id !== state.chatId) return;
  let message = state.messages.get(message_id);
  if (!message && event.type === "chat:message" && event.data?.role) {
    // A prompt, from this tab or another: the stored message, whole.
    message = { status_history: [], sources: [], ...event.data };
    state.messages.set(message_id, message);
    renderMessage(message);
  } else {
    if (!message) {
      message = {
        message_id,
        role: "assistant",
        content: "",
        status_history: [],
        sources: [],
        done: false,
        state: "streaming",
      };
      state.messages.set(message_id, message);
    }
    if (applyEvent(message, event, resumed)) renderMessage(message);
  }
  if (ended) state.tasks.clear();
  else if (state.tasks.size === 0) loadTasks(); // a stream another tab started
  renderControls();
  if (ended && resumed === "stale") loadChat(chat_id); // fill the gap it could not replay
}

// The offset of a live event is socket.lastPosition, read while the listener runs.
socket.on("events", (payload) => onLiveEvent(payload, socket.lastPosition));

// --- resuming a stream after a reload (issue 16) -----------------------------------
// A message that streams when the page loads it over REST comes with its position
// {room, epoch, offset}: its stored text is exactly the deltas up to that offset. The
// page asks the room's history after it, and applies live events past the history.

// message_id -> {room, offset, pending, stale}: the last offset applied to a resumed
// message; `pending` holds its live events while the history request is in flight.
const resumed = new Map();

function resumable(stored) {
  return stored.state === "streaming" && Boolean(stored.position?.room);
}

// Live events of messages the page does not know yet, held while the chat loads: a
// message that streams comes with its position and they apply after it, instead of
// drawing a fragment of the answer first.
const early = { chatId: null, loads: 0, events: [] };

function holdEarly(chatId) {
  early.chatId = chatId;
  early.loads += 1;
}

function releaseEarly() {
  early.loads -= 1;
  if (early.loads > 0) return;
  early.chatId = null;
  for (const [payload, at] of early.events.splice(0)) onLiveEvent(payload, at);
}

function onLiveEvent(payload, at) {
  if (early.chatId === payload.chat_id && !state.messages.has(payload.message_id)) {
    early.events.push([payload, at]);
    return;
  }
  const sync = resumed.get(payload.message_id);
  if (!sync || !at || at.room !== sync.room) {
    handleEvent(payload);
    return;
  }
  if (sync.pending) {
    sync.pending.push([payload, at.offset]);
    return;
  }
  if (at.offset <= sync.offset) return; // in the stored text or the history already
  sync.offset = at.offset;
  handleEvent(payload, sync.stale ? "stale" : true);
}

/** Apply the history of a resumed message after `position`, then its held events. */
async function resume(message, position) {
  const id = message.message_id;
  const sync = { room: position.room, offset: position.offset, pending: [], stale: false };
  resumed.set(id, sync);
  let reply = null;
  try {
    reply = await socket.history(position.room, position);
  } catch (err) {
    reply = { recovered: false, reason: err.code };
  }
  if (resumed.get(id) !== sync) return; // a later load resumes it
  if (reply.recovered) {
    for (const event of reply.events) {
      if (event.event !== "events" || event.data?.message_id !== id) continue;
      if (event.offset > position.offset) handleEvent(event.data, true);
    }
    sync.offset = Math.max(sync.offset, reply.offset);
  } else {
    // The text between the stored one and the live events is lost to this tab until
    // the message ends and its stored text is whole.
    sync.stale = true;
    report(`could not resume the answer (${reply.reason}); it completes when it ends`);
  }
  const pending = sync.pending;
  sync.pending = null;
  for (const [payload, offset] of pending) onLiveEvent(payload, { room: sync.room, offset });
}

// --- usage: tell the server which model this tab is using (issue 6's `usage` event)

socket.on("error", (error) => {
  if (error.event === "usage" && error.code === "unknown_event") {
    state.usageSupported = false; // a server without usage tracking
    return;
  }
  $("#log").textContent = `${error.code}: ${error.message}`;
});
setInterval(() => {
  // The server forgets a model 3 s after its last mention, so repeat every second.
  if (state.usageSupported && socket.connected && state.streaming.size) {
    socket.emit("usage", { model: "fake" });
  }
}, 1000);

// --- actions -----------------------------------------------------------------------

$("#new-chat").addEventListener("click", async () => {
  const chat = await api("POST", "/api/chats/", { title: "New Chat" });
  state.chats.unshift(chat);
  location.hash = `chat=${chat.id}`;
});

$("#prompt-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const prompt = form.get("prompt").trim();
  if (!prompt || !state.chatId) return;
  const body = {
    prompt,
    tokens: Number(form.get("tokens")),
    tokens_per_second: Number(form.get("tps")),
  };
  try {
    const started = await api("POST", `/api/chats/${state.chatId}/completions`, body);
    state.tasks.add(started.task_id);
    state.streaming.add(started.message_id);
    // Every tab gets the prompt as a chat:message event; this one also reads the
    // stored chat, in case its socket is down (the answer streams meanwhile).
    await loadChat(state.chatId);
    $("#prompt").value = "";
  } catch (err) {
    $("#log").textContent = err.message;
  }
  renderControls();
});

$("#stop").addEventListener("click", async () => {
  for (const taskId of state.tasks) {
    await api("POST", `/api/tasks/${taskId}/stop`).catch(() => null);
  }
  await loadTasks();
});

window.addEventListener("hashchange", () => openChat(chatFromHash()));

// A reconnect that recovered every room missed nothing; otherwise the stored messages
// fill whatever streamed while offline. A room that lost its history later (a new
// epoch, a channel room at user-join) reloads too: one reload for several reasons.
let first = true;
let reloading = null;
function reload() {
  reloading ??= Promise.resolve().then(() => {
    reloading = null;
    loadChats();
    if (state.chatId) loadChat(state.chatId);
  });
}
socket.on("connect", () => {
  if (first) {
    first = false;
    return;
  }
  if (!socket.recovered) reload();
});
socket.on("recovery_failed", reload);

await loadChats();
let initial = chatFromHash();
if (!initial) {
  initial = state.chats[0]?.id ?? (await api("POST", "/api/chats/", { title: "New Chat" })).id;
  history.replaceState(null, "", `#chat=${initial}`);
  if (!state.chats.length) await loadChats();
}
await openChat(initial);
document.body.dataset.ready = "true";
