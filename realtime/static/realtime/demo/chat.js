// Chat demo: start a fake-model completion and watch it stream (status lines, sources,
// text), stop it, and see the same stream in every tab of the user.
import { $, api, el, openSocket, requireLogin } from "./demo.js";

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
  const chat = await api("GET", `/api/chats/${chatId}/`);
  if (chatId !== state.chatId) return;
  for (const stored of chat.messages) {
    const merged = merge(state.messages.get(stored.message_id), stored);
    state.messages.set(stored.message_id, merged);
    renderMessage(merged);
  }
  // Streamed events may have drawn a message before the stored ones: stored order.
  const list = $("#messages");
  for (const stored of chat.messages) {
    list.append(list.querySelector(`[data-message-id="${CSS.escape(stored.message_id)}"]`));
  }
  await loadTasks();
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

function applyEvent(message, event) {
  const data = event.data;
  const text = typeof data === "string" ? data : data?.content;
  switch (event.type) {
    case "status":
      message.status_history.push(data);
      break;
    case "source":
    case "citation":
      message.sources.push(data);
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

socket.on("events", ({ chat_id, message_id, data: event }) => {
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
    if (applyEvent(message, event)) renderMessage(message);
  }
  if (ended) state.tasks.clear();
  else if (state.tasks.size === 0) loadTasks(); // a stream another tab started
  renderControls();
});

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

// Every (re)connect: the stored messages fill whatever streamed while offline.
let first = true;
socket.on("connect", () => {
  if (first) {
    first = false;
    return;
  }
  loadChats();
  if (state.chatId) loadChat(state.chatId);
});

await loadChats();
let initial = chatFromHash();
if (!initial) {
  initial = state.chats[0]?.id ?? (await api("POST", "/api/chats/", { title: "New Chat" })).id;
  history.replaceState(null, "", `#chat=${initial}`);
  if (!state.chats.length) await loadChats();
}
await openChat(initial);
document.body.dataset.ready = "true";
