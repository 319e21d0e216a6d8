// Channels demo: channel list with unread counts, live messages, typing indicator and
// who is online.
import { $, api, el, openSocket, requireLogin, time, userNames } from "./demo.js";

const me = requireLogin();
const socket = openSocket();
const names = await userNames();
const nameOf = (id) => names.get(id) || `user ${id}`;

// Typing is relayed at most every 0.5 s per channel; an indicator lasts this long.
const TYPING_SEND_EVERY = 1000;
const TYPING_SHOW_FOR = 3000;

const state = {
  channels: [],
  channelId: null,
  messages: new Map(), // id -> message of the open channel
  typing: new Map(), // user id -> {name, timer}
  online: [],
  lastTypingSent: 0,
};

// --- rendering ---------------------------------------------------------------------

function renderChannels() {
  $("#channels").replaceChildren(
    ...state.channels.map((c) =>
      el(
        "li",
        { class: c.id === state.channelId ? "current" : "", dataset: { channelId: c.id } },
        el("a", { href: `#channel=${c.id}` }, c.kind === "direct" ? `@ ${c.name}` : `# ${c.name}`),
        c.unread_count ? el("span", { class: "badge unread" }, String(c.unread_count)) : null,
      ),
    ),
  );
}

function renderMessage(message) {
  let node = document.querySelector(`[data-channel-message="${message.id}"]`);
  const body = message.deleted ? el("em", {}, "deleted") : message.content;
  const row = [
    el("span", { class: "author" }, nameOf(message.author_id)),
    el("time", {}, time(message.created_at)),
    el("div", { class: "content" }, body),
  ];
  if (node) node.replaceChildren(...row);
  else {
    node = el("article", { class: "msg", dataset: { channelMessage: message.id } }, ...row);
    $("#messages").append(node);
  }
  node.scrollIntoView({ block: "end" });
}

function renderTyping() {
  const who = [...state.typing.values()].map((t) => t.name);
  $("#typing").textContent = who.length
    ? `${who.join(", ")} ${who.length === 1 ? "is" : "are"} typing…`
    : "";
}

function renderOnline() {
  $("#online").replaceChildren(
    ...state.online.map((id) =>
      el("li", { dataset: { userId: id } }, el("span", { class: "dot" }), nameOf(id), id === me.id ? " (you)" : ""),
    ),
  );
}

// --- loading -----------------------------------------------------------------------

async function loadChannels() {
  state.channels = await api("GET", "/api/channels/");
  const current = state.channels.find((c) => c.id === state.channelId);
  if (current) current.unread_count = 0;
  renderChannels();
}

async function openChannel(channelId) {
  state.channelId = channelId;
  state.messages.clear();
  state.typing.clear();
  renderTyping();
  $("#messages").replaceChildren();
  const channel = state.channels.find((c) => c.id === channelId);
  $("#channel-title").textContent = channel ? channel.name : "No channel";
  $("#composer").hidden = !channel;
  renderChannels();
  if (!channel) return;
  const page = await api("GET", `/api/channels/${channelId}/messages/?limit=50`);
  for (const message of page.reverse()) {
    state.messages.set(message.id, message);
    renderMessage(message);
  }
  markRead();
}

function markRead() {
  const channel = state.channels.find((c) => c.id === state.channelId);
  if (!channel) return;
  channel.unread_count = 0;
  renderChannels();
  socket.emit("events:channel", {
    channel_id: channel.id,
    data: { type: "last_read_at", data: null },
  });
}

function channelFromHash() {
  const match = /channel=([^&]+)/.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

// --- live events ----------------------------------------------------------------

socket.on("events:channel", ({ channel_id, data: event, user }) => {
  if (event.type === "typing") {
    if (channel_id !== state.channelId || user.id === me.id) return;
    const previous = state.typing.get(user.id);
    if (previous) clearTimeout(previous.timer);
    if (event.data?.typing === false) state.typing.delete(user.id);
    else {
      const timer = setTimeout(() => {
        state.typing.delete(user.id);
        renderTyping();
      }, TYPING_SHOW_FOR);
      state.typing.set(user.id, { name: user.name, timer });
    }
    renderTyping();
    return;
  }
  const message = event.data;
  if (channel_id === state.channelId) {
    const isNew = !state.messages.has(message.id);
    state.messages.set(message.id, message);
    renderMessage(message);
    // A message ends its author's typing.
    const typing = state.typing.get(message.author_id);
    if (typing) {
      clearTimeout(typing.timer);
      state.typing.delete(message.author_id);
      renderTyping();
    }
    if (isNew && event.type === "message" && message.author_id !== me.id) markRead();
  } else if (event.type === "message" && message.author_id !== me.id) {
    const channel = state.channels.find((c) => c.id === channel_id);
    if (channel) channel.unread_count += 1;
    else loadChannels();
    renderChannels();
  }
});

socket.on("channel:created", () => loadChannels());
socket.on("user-list", ({ user_ids }) => {
  state.online = user_ids;
  renderOnline();
});
socket.on("error", (error) => {
  if (error.code === "rate_limited") return; // typing faster than it is relayed
  $("#log").textContent = `${error.code}: ${error.message}`;
});

// user-join enters every channel's room and presence; the adapter sends it again after
// each reconnect. The list of who is online is asked for on every (re)connect. The
// socket may have connected while the page awaited the user names above, before these
// listeners existed: then the first list is asked for now, or this page would wait for
// a presence broadcast that may have gone out before it entered the presence room.
socket.emit("user-join", {});
async function refreshOnline() {
  const { user_ids } = await socket.emitWithAck("user-list", null);
  state.online = user_ids;
  renderOnline();
}
socket.on("connect", refreshOnline);
if (socket.connected) refreshOnline();
// Messages posted while offline come back by themselves when the reconnect recovered
// (the adapter replays each channel room's missed events at user-join). When it did
// not, or a channel room's history was lost (recovery_failed), reload the list and
// the open channel: once, whatever the number of reasons.
let first = !socket.connected;
let reloading = null;
function reload() {
  reloading ??= Promise.resolve().then(() => {
    reloading = null;
    loadChannels().then(() => openChannel(state.channelId));
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

// --- actions -----------------------------------------------------------------------

$("#text").addEventListener("input", () => {
  const now = Date.now();
  if (!state.channelId || now - state.lastTypingSent < TYPING_SEND_EVERY) return;
  state.lastTypingSent = now;
  socket.emit("events:channel", {
    channel_id: state.channelId,
    data: { type: "typing", data: { typing: true } },
  });
});

$("#composer").addEventListener("submit", async (event) => {
  event.preventDefault();
  const content = $("#text").value.trim();
  if (!content || !state.channelId) return;
  $("#text").value = "";
  const message = await api("POST", `/api/channels/${state.channelId}/messages/`, { content });
  state.messages.set(message.id, message);
  renderMessage(message);
});

$("#new-channel").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const channel = await api("POST", "/api/channels/", {
    name: form.get("name"),
    kind: "group",
    member_ids: form.getAll("member").map(Number),
  });
  event.target.reset();
  await loadChannels();
  location.hash = `channel=${channel.id}`;
});

$("#members").replaceChildren(
  ...[...names]
    .filter(([id]) => id !== me.id)
    .map(([id, name]) =>
      el("label", {}, el("input", { type: "checkbox", name: "member", value: id }), ` ${name}`),
    ),
);

window.addEventListener("hashchange", () => openChannel(channelFromHash()));
await loadChannels();
const initial = channelFromHash() ?? state.channels[0]?.id ?? null;
if (initial && !channelFromHash()) history.replaceState(null, "", `#channel=${initial}`);
await openChannel(initial);
document.body.dataset.ready = "true";
