// The demo page: draws a PresenceClient and wires the forms to it. The client
// is the npm package @presencekit/client (clients/js in the repository): the
// gateway serves its src/index.js, embedded in the binary, as presencekit.js.
//
// Query parameters make it scriptable (the e2e test drives it in headless
// Chromium):  /demo/?userId=alice&watch=bob,carol&autoconnect=1&status=away&text=lunch
//
// Everything user-supplied is put in the page with textContent, never as HTML.

import { PresenceClient, isValidUserId } from "./presencekit.js";

const $ = (id) => document.getElementById(id);
const LOG_LINES = 50;

let client = null;

function main() {
  const params = new URLSearchParams(location.search);
  $("user-id").value = params.get("userId") ?? `guest-${Math.floor(1000 + Math.random() * 9000)}`;
  $("watch").value = parseUserList(params.get("watch") ?? "").join(", ");
  if (STATUS_VALUES.has(params.get("status"))) $("status").value = params.get("status");
  $("status-text").value = params.get("text") ?? "";
  $("server").textContent = location.host;

  $("connect-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (client && client.state !== "closed") disconnect();
    else connect();
  });
  $("status-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!client) return;
    client.setStatus($("status").value, $("status-text").value.trim())
      .catch((err) => log(`status not set: ${err.code}: ${err.message}`));
  });
  $("add-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const ids = parseUserList($("add-id").value);
    const bad = ids.find((id) => !isValidUserId(id));
    if (bad !== undefined) return showFormError(`"${bad}" is not a valid user id (1 to 128 of A-Z a-z 0-9 . _ : @ -)`);
    showFormError("");
    $("add-id").value = "";
    if (client) {
      const added = ids.filter((id) => !client.watchlist.includes(id));
      client.subscribe(added).catch((err) => log(`not watching ${(err.userIds ?? added).join(", ")}: ${err.code}: ${err.message}`));
      for (const id of added) drawUser(id);
    } else {
      $("watch").value = parseUserList(`${$("watch").value},${ids.join(",")}`).join(", ");
    }
    renderEmpty();
  });
  // Back online (laptop lid, wifi): retry now rather than at the end of the backoff.
  window.addEventListener("online", () => {
    if (client && client.state === "waiting") client.connect();
  });
  // Refresh the "last seen ... ago" lines.
  setInterval(() => {
    if (!client) return;
    for (const id of client.watchlist) drawUser(id);
    drawMe();
  }, 15000);

  if (params.get("autoconnect") === "1") connect();
}

const STATUS_VALUES = new Set(["online", "away", "busy", "invisible"]);

// parseUserList turns "bob, carol  dave,bob" into ["bob", "carol", "dave"]:
// split on commas and spaces, drop empties and duplicates, keep the order.
function parseUserList(text) {
  const seen = new Set();
  for (const part of String(text ?? "").split(/[\s,]+/)) {
    if (part !== "") seen.add(part);
  }
  return [...seen];
}

function connect() {
  const userId = $("user-id").value.trim();
  const watch = parseUserList($("watch").value);
  if (!isValidUserId(userId)) return showFormError(`"${userId}" is not a valid user id (1 to 128 of A-Z a-z 0-9 . _ : @ -)`);
  const bad = watch.find((id) => !isValidUserId(id));
  if (bad !== undefined) return showFormError(`"${bad}" is not a valid user id to watch`);
  showFormError("");

  // The chosen status is sent as soon as we are online (and after every
  // reconnect). We watch ourselves too, to show how others see us.
  const status = $("status").value;
  const text = $("status-text").value.trim();
  const chosen = status !== "online" || text !== "" ? { status, statusText: text } : {};
  // "/" is the gateway that served this page (ws: or wss: like the page).
  client = new PresenceClient({ url: "/", userId, watch: [userId, ...watch.filter((id) => id !== userId)], ...chosen });
  window.presenceDemo = client; // for the console, and for the e2e test

  client.on("state", drawState);
  client.on("welcome", (w) => log(`connected as ${w.userId} (heartbeat ${w.heartbeatMs} ms)`));
  client.on("presence", onPresence);
  client.on("error", (err) => log(`gateway error ${err.code}: ${err.message}`));

  $("users").replaceChildren();
  for (const id of client.watchlist) drawUser(id);
  renderEmpty();
  $("user-id").disabled = true;
  $("watch").disabled = true;
  $("connect-button").textContent = "Disconnect";
  history.replaceState(null, "", `?${new URLSearchParams({ userId, watch: watch.join(",") })}`);
  client.connect();
}

function disconnect() {
  client.close();
  $("user-id").disabled = false;
  $("watch").disabled = false;
  $("watch").value = client.watchlist.filter((id) => id !== client.userId).join(", ");
  $("connect-button").textContent = "Connect";
  log("disconnected");
  drawMe();
}

function drawState({ state, attempt, delayMs, code, reason }) {
  const conn = $("conn");
  conn.dataset.state = state;
  $("status-button").disabled = state !== "open";
  switch (state) {
    case "connecting":
      conn.textContent = attempt > 0 ? `Connecting (attempt ${attempt + 1})...` : "Connecting...";
      break;
    case "open":
      conn.textContent = `Connected as ${client.userId}`;
      break;
    case "waiting": {
      const why = code ? ` (closed ${code}${reason ? `: ${reason}` : ""})` : "";
      conn.textContent = `Reconnecting in ${(delayMs / 1000).toFixed(1)} s${why}`;
      log(`connection lost${why}; retry ${attempt + 1} in ${(delayMs / 1000).toFixed(1)} s`);
      break;
    }
    default:
      conn.textContent = "Not connected";
  }
  drawMe();
}

function onPresence({ user, previous, snapshot }) {
  if (user.userId === client.userId) {
    drawMe();
    if (!snapshot && previous && previous.status !== user.status && user.online) log(`you are now ${describe(user)}`);
    return;
  }
  drawUser(user.userId, true);
  if (snapshot || !previous) {
    log(user.online ? `${user.userId} is ${describe(user)}` : `${user.userId} is offline (${lastSeen(user)})`);
  } else if (user.online && !previous.online) {
    log(user.status === "online" && !user.text ? `${user.userId} came online` : `${user.userId} came online (${describe(user)})`);
  } else if (!user.online && previous.online) {
    log(`${user.userId} went offline`);
  } else if (user.status !== previous.status || user.text !== previous.text) {
    log(`${user.userId} is now ${describe(user)}`);
  } else if (user.connections !== previous.connections) {
    log(`${user.userId} now has ${plural(user.connections, "connection")}`);
  }
}

// drawUser creates or updates the card of one watched user.
function drawUser(userId, flash = false) {
  if (!client || userId === client.userId || !client.watchlist.includes(userId)) return;
  const user = client.get(userId);
  let li = document.querySelector(`#users li[data-user-id="${CSS.escape(userId)}"]`);
  if (!li) {
    li = document.createElement("li");
    li.className = "user";
    li.dataset.userId = userId;
    const dot = document.createElement("span");
    dot.className = "dot";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = userId;
    const remove = document.createElement("button");
    remove.className = "remove";
    remove.type = "button";
    remove.title = `stop watching ${userId}`;
    remove.textContent = "×";
    remove.addEventListener("click", () => {
      client.unsubscribe([userId]).catch(() => {}); // already off the watchlist
      li.remove();
      renderEmpty();
    });
    const detail = document.createElement("span");
    detail.className = "detail";
    li.append(dot, name, remove, detail);
    $("users").append(li);
  }
  const status = user ? user.status : "offline";
  li.dataset.online = String(Boolean(user && user.online));
  li.dataset.status = status;
  li.querySelector(".dot").dataset.status = status;
  li.querySelector(".detail").textContent = !user
    ? "waiting for the gateway..."
    : user.online ? `${describe(user)} · ${plural(user.connections, "connection")}` : `offline · ${lastSeen(user)}`;
  if (flash) {
    li.classList.remove("flash");
    void li.offsetWidth; // restart the animation
    li.classList.add("flash");
  }
}

function drawMe() {
  const me = client && client.state !== "closed" ? client.get(client.userId) : undefined;
  const status = me && me.online ? me.status : "offline";
  document.querySelector("#me .dot").dataset.status = status;
  $("me").dataset.status = status;
  $("me-line").textContent = !client || client.state === "closed"
    ? "Connect to appear online."
    : me ? `Others see ${me.userId} as ${me.online ? describe(me) : "offline"}${me.online ? ` (${plural(me.connections, "connection")})` : ""}.`
    : "Connecting...";
}

function renderEmpty() {
  $("users-empty").hidden = $("users").children.length > 0;
}

function describe(user) {
  return user.text ? `${user.status}: “${user.text}”` : user.status;
}

function lastSeen(user) {
  if (!user.lastSeen) return "never seen";
  const seconds = Math.max(0, Math.round((Date.now() - user.lastSeen) / 1000));
  if (seconds < 60) return "last seen just now";
  if (seconds < 3600) return `last seen ${Math.round(seconds / 60)} min ago`;
  return `last seen ${new Date(user.lastSeen).toLocaleString()}`;
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function log(text) {
  const li = document.createElement("li");
  const time = document.createElement("time");
  const now = new Date();
  time.dateTime = now.toISOString();
  time.textContent = now.toLocaleTimeString();
  li.append(time, document.createTextNode(text));
  const list = $("log");
  list.prepend(li);
  while (list.children.length > LOG_LINES) list.lastElementChild.remove();
}

function showFormError(text) {
  $("form-error").textContent = text;
  $("form-error").hidden = text === "";
}

main();
