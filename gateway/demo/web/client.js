// PresenceClient keeps one WebSocket connection to the presence gateway alive
// and turns its frames into events. It knows nothing about the page (app.js
// draws it), so the same file runs under Node for the unit tests
// (client.test.js) and in the browser.
//
// What it does, per docs/protocol.md ("Connecting", "Client frames"):
//   - connects to ws(s)://<host>/?userId=<id>;
//   - after the welcome frame, sends the text `ping` every heartbeatMs and
//     treats a silent connection (no frame for three heartbeats) as dead;
//   - (re)subscribes to the watchlist, and re-sends the status the person set;
//   - on any close, reconnects with exponential backoff and jitter, resetting
//     the backoff once a welcome frame proves the gateway is serving again.

export const DEFAULT_HEARTBEAT_MS = 20000;
export const STATUSES = ["online", "away", "busy"];
// The protocol refuses more than 100 ids in one request (too_many_ids).
export const MAX_IDS_PER_REQUEST = 100;

const USER_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

// isValidUserId reports whether the gateway accepts id: 1 to 128 characters
// of [A-Za-z0-9._:@-] (all one byte each, so characters are bytes).
export function isValidUserId(id) {
  return typeof id === "string" && USER_ID.test(id);
}

// parseUserList turns "bob, carol  dave,bob" into ["bob", "carol", "dave"]:
// split on commas and spaces, drop empties and duplicates, keep the order.
export function parseUserList(text) {
  const seen = new Set();
  for (const part of String(text ?? "").split(/[\s,]+/)) {
    if (part !== "") seen.add(part);
  }
  return [...seen];
}

// backoffDelay is how long to wait before reconnect attempt number `attempt`
// (0 for the first retry): the ceiling doubles from baseMs up to capMs, and
// the delay is drawn from [ceiling/2, ceiling] ("equal jitter"), so that a
// gateway restart does not bring every page back in the same millisecond,
// yet no retry comes back immediately.
export function backoffDelay(attempt, { baseMs = 500, capMs = 30000, random = Math.random } = {}) {
  const n = Math.max(0, Math.min(attempt, 30));
  const ceiling = Math.min(capMs, baseMs * 2 ** n);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

// gatewayURL is the WebSocket address of the gateway that served the page:
// ws: for an http: page, wss: for https:, same host and port.
export function gatewayURL(location, userId) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/?userId=${encodeURIComponent(userId)}`;
}

// PresenceBook holds the newest known presence of each user. Events can
// arrive out of order when they come from several replicas, so an update is
// taken only if its version is newer than the one held.
export class PresenceBook {
  constructor() {
    this.users = new Map();
  }

  // apply stores user if it is newer and reports whether it changed anything.
  apply(user) {
    if (!user || typeof user.userId !== "string") return false;
    const held = this.users.get(user.userId);
    if (held && typeof held.version === "number" && typeof user.version === "number" && user.version <= held.version) {
      return false;
    }
    this.users.set(user.userId, { ...user });
    return true;
  }

  // forgetVersions makes the next snapshot authoritative whatever its
  // versions: used on a new connection, since a store that was restarted
  // (the embedded one) starts counting again.
  forgetVersions() {
    for (const u of this.users.values()) u.version = -1;
  }

  get(userId) {
    return this.users.get(userId);
  }

  delete(userId) {
    this.users.delete(userId);
  }
}

// PresenceClient is the connection. Events (EventTarget, event.detail):
//   "state"    {state, attempt, delayMs, code, reason}; state is one of
//              "connecting", "open", "waiting" (a retry is scheduled), "stopped"
//   "welcome"  the welcome frame
//   "presence" {user, previous} for each accepted change of a watched user
//   "error"    an error frame {code, message, id}
//   "ack"      {id} when the gateway confirmed a request ("ok")
export class PresenceClient extends EventTarget {
  // options: url (required), userId, watch (array), WebSocket (constructor),
  // timers ({setTimeout, clearTimeout, setInterval, clearInterval}),
  // now (ms clock), random, baseMs, capMs.
  constructor(options) {
    super();
    this.url = options.url;
    this.userId = options.userId;
    this.watchlist = parseUserList((options.watch ?? []).join(","));
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.timers = options.timers ?? globalThis;
    this.now = options.now ?? (() => Date.now());
    this.random = options.random ?? Math.random;
    this.baseMs = options.baseMs ?? 500;
    this.capMs = options.capMs ?? 30000;

    this.book = new PresenceBook();
    this.state = "stopped";
    this.attempt = 0;
    this.heartbeatMs = DEFAULT_HEARTBEAT_MS;
    this.welcome = null;
    this.myStatus = null; // {status, text} the person chose; re-sent after a reconnect
    this.ws = null;
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastHeard = 0;
    this.nextId = 1;
  }

  // start connects (again) now; a scheduled retry is cancelled.
  start() {
    this.#clearRetry();
    if (this.ws) return;
    this.#connect();
  }

  // stop closes the connection and stops reconnecting.
  stop() {
    this.#clearRetry();
    this.#stopKeepAlive();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(1000, "bye"); } catch { /* already closing */ }
    }
    this.#setState("stopped", {});
  }

  // setStatus sets the person's status; it is remembered and sent again after
  // each reconnect. Returns the request id, or 0 when not connected.
  setStatus(status, text = "") {
    if (!STATUSES.includes(status)) throw new Error(`status "${status}": must be one of ${STATUSES.join(", ")}`);
    this.myStatus = { status, text };
    return this.#send({ type: "status", status, text });
  }

  // watch adds ids to the watchlist (subscribing at once when connected).
  watch(ids) {
    const added = parseUserList(ids.join(",")).filter((id) => !this.watchlist.includes(id));
    this.watchlist.push(...added);
    if (added.length > 0) this.#subscribe("subscribe", added);
    return added;
  }

  // unwatch removes ids from the watchlist.
  unwatch(ids) {
    const removed = ids.filter((id) => this.watchlist.includes(id));
    this.watchlist = this.watchlist.filter((id) => !removed.includes(id));
    for (const id of removed) this.book.delete(id);
    if (removed.length > 0) this.#subscribe("unsubscribe", removed);
    return removed;
  }

  #connect() {
    this.#setState("connecting", { attempt: this.attempt });
    let ws;
    try {
      ws = new this.WebSocket(this.url);
    } catch (err) {
      this.#scheduleRetry(0, String(err));
      return;
    }
    this.ws = ws;
    ws.onmessage = (ev) => this.#onFrame(ev.data);
    ws.onclose = (ev) => this.#onClose(ws, ev.code, ev.reason);
    ws.onerror = () => {}; // a close event always follows
  }

  #onFrame(data) {
    this.lastHeard = this.now();
    if (data === "pong") return;
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      this.#emit("error", { code: "bad_frame", message: `unparsable frame: ${String(data).slice(0, 80)}` });
      return;
    }
    switch (msg.type) {
      case "welcome":
        this.#onWelcome(msg);
        break;
      case "presence":
        for (const user of msg.users ?? []) {
          const previous = this.book.get(user.userId);
          const prevCopy = previous ? { ...previous } : undefined;
          if (this.book.apply(user)) this.#emit("presence", { user, previous: prevCopy, snapshot: msg.id !== undefined });
        }
        break;
      case "ok":
        this.#emit("ack", { id: msg.id });
        break;
      case "error":
        this.#emit("error", { code: msg.code, message: msg.message, id: msg.id });
        break;
      default:
        break; // "pong" objects and frame types this page does not use
    }
  }

  #onWelcome(msg) {
    this.welcome = msg;
    this.attempt = 0;
    this.heartbeatMs = Number(msg.heartbeatMs) > 0 ? Number(msg.heartbeatMs) : DEFAULT_HEARTBEAT_MS;
    this.book.forgetVersions();
    this.#startKeepAlive();
    this.#setState("open", {});
    this.#emit("welcome", msg);
    // Watch ourselves too, to show how others see us.
    this.#subscribe("subscribe", [this.userId, ...this.watchlist.filter((id) => id !== this.userId)]);
    if (this.myStatus && (this.myStatus.status !== "online" || this.myStatus.text !== "")) {
      this.#send({ type: "status", status: this.myStatus.status, text: this.myStatus.text });
    }
  }

  #onClose(ws, code, reason) {
    if (ws !== this.ws) return; // an old socket we already gave up on
    this.ws = null;
    this.#stopKeepAlive();
    this.#scheduleRetry(code, reason);
  }

  #scheduleRetry(code, reason) {
    const delayMs = backoffDelay(this.attempt, { baseMs: this.baseMs, capMs: this.capMs, random: this.random });
    const attempt = this.attempt;
    this.attempt++;
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = null;
      this.#connect();
    }, delayMs);
    this.#setState("waiting", { attempt, delayMs, code, reason });
  }

  #clearRetry() {
    if (this.retryTimer !== null) {
      this.timers.clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
  }

  // The keep-alive: a text `ping` each heartbeat. The gateway closes a client
  // that stays silent for IDLE_TIMEOUT; we, in turn, give up on a gateway we
  // have not heard from (not even a pong) for three heartbeats, which catches
  // a dead network path that never delivers a close frame.
  #startKeepAlive() {
    this.#stopKeepAlive();
    this.lastHeard = this.now();
    this.pingTimer = this.timers.setInterval(() => {
      if (this.now() - this.lastHeard > 3 * this.heartbeatMs) {
        const ws = this.ws;
        if (ws) {
          ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
          try { ws.close(4000, "keep-alive timeout"); } catch { /* already closing */ }
          this.#onClose(ws, 4000, "keep-alive timeout");
        }
        return;
      }
      this.#sendRaw("ping");
    }, this.heartbeatMs);
  }

  #stopKeepAlive() {
    if (this.pingTimer !== null) {
      this.timers.clearInterval(this.pingTimer);
      this.pingTimer = null;
    }
  }

  #subscribe(type, ids) {
    for (let i = 0; i < ids.length; i += MAX_IDS_PER_REQUEST) {
      this.#send({ type, userIds: ids.slice(i, i + MAX_IDS_PER_REQUEST) });
    }
  }

  // #send sends a request with a fresh id when the connection is open and
  // returns the id (0 if not sent: the welcome handler re-sends what matters).
  #send(msg) {
    if (this.state !== "open") return 0;
    const id = this.nextId++;
    return this.#sendRaw(JSON.stringify({ ...msg, id })) ? id : 0;
  }

  #sendRaw(text) {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) return false;
    ws.send(text);
    return true;
  }

  #setState(state, detail) {
    this.state = state;
    this.#emit("state", { state, ...detail });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
