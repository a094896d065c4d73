// @presencekit/client: the JavaScript client of the presencekit presence
// gateway, for browsers and Node. One ES module, no dependencies.
//
// It speaks protocol v1 (docs/protocol.md in the presencekit repository):
//   - connects to ws(s)://<gateway>/?userId=<id>[&token=<jwt>];
//   - after `welcome`, sends the text `ping` every heartbeatMs and treats a
//     gateway it has not heard from for three heartbeats as gone;
//   - re-sends the whole watchlist (in requests of at most 100 ids) and the
//     status it was asked to keep after every reconnect;
//   - keeps, per watched user, the state with the highest `version` and drops
//     older or equal ones (a snapshot and an event may cross);
//   - calls the token function before each connection and before the token
//     expires (sending a `refresh` frame), and reconnects at once with a fresh
//     token after close 4001 `token expired`;
//   - reconnects after any other close with exponential backoff and equal
//     jitter, reset by the next `welcome`; after close 1008 (policy: rate
//     limit, bad messages, slow consumer) it waits at least policyDelayMs/2.
//
// The types are in index.d.ts beside this file.

/** The protocol refuses more than this many ids in one request (too_many_ids). */
export const MAX_IDS_PER_REQUEST = 100;
/** The heartbeat used until the gateway's welcome says otherwise. */
export const DEFAULT_HEARTBEAT_MS = 20000;
/** Close code of a connection whose token expired without a refresh. */
export const CLOSE_TOKEN_EXPIRED = 4001;
/** Close code of a policy violation (rate limit, bad messages, slow consumer). */
export const CLOSE_POLICY_VIOLATION = 1008;

// Error codes of the gateway that refuse a subscribe for good: re-sending the
// same ids after a reconnect would be refused again, so they leave the
// watchlist. Other codes (unavailable, rate_limited, internal, unknown ones)
// are transient: the ids stay and are sent again after the next reconnect.
const PERMANENT_SUBSCRIBE_ERRORS = new Set(["bad_request", "too_many_ids", "too_many_subscriptions", "forbidden"]);

const USER_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

/**
 * isValidUserId reports whether the gateway accepts id: 1 to 128 characters
 * of [A-Za-z0-9._:@-] (all one byte each, so characters are bytes).
 */
export function isValidUserId(id) {
  return typeof id === "string" && USER_ID.test(id);
}

/**
 * backoffDelay is how long to wait before reconnect attempt number `attempt`
 * (0 for the first retry): the ceiling doubles from baseMs up to capMs, and
 * the delay is drawn from [ceiling/2, ceiling] ("equal jitter"), so that a
 * gateway restart does not bring every client back in the same millisecond,
 * yet no retry comes back immediately.
 */
export function backoffDelay(attempt, { baseMs = 500, capMs = 30000, random = Math.random } = {}) {
  const n = Math.max(0, Math.min(Number.isFinite(attempt) ? attempt : 30, 30));
  const ceiling = Math.min(capMs, baseMs * 2 ** n);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/**
 * tokenExpiry returns the `exp` claim of a JWT in milliseconds since the
 * epoch, or undefined when the token has none or is not a JWT. The token is
 * not verified: the gateway does that.
 */
export function tokenExpiry(token) {
  if (typeof token !== "string") return undefined;
  const parts = token.split(".");
  if (parts.length !== 3) return undefined;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
    return typeof claims.exp === "number" && Number.isFinite(claims.exp) ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * PresenceError is how a request fails: `code` is the gateway's error code
 * (bad_request, forbidden, rate_limited, unavailable, ...) or one of the
 * client's own: timeout, not_connected, disconnected, closed, token,
 * bad_frame.
 */
export class PresenceError extends Error {
  constructor(code, message, details = {}) {
    super(message);
    this.name = "PresenceError";
    this.code = code;
    if (details.requestId !== undefined) this.requestId = details.requestId;
    if (details.userIds !== undefined) this.userIds = details.userIds;
    if (details.forbidden !== undefined) this.forbidden = details.forbidden;
    if (details.cause !== undefined) this.cause = details.cause;
  }
}

// handled marks a promise as observed, so that a caller who does not await
// a request (fire and forget) does not get an unhandled rejection; one who
// does still sees the error.
function handled(promise) {
  promise.catch(() => {});
  return promise;
}

function uniqueIds(ids, what) {
  if (!Array.isArray(ids)) throw new TypeError(`${what}: userIds must be an array of user ids`);
  const out = [...new Set(ids)];
  for (const id of out) {
    if (!isValidUserId(id)) throw new TypeError(`${what}: "${String(id)}" is not a valid user id (1 to 128 of A-Z a-z 0-9 . _ : @ -)`);
  }
  return out;
}

// abandon closes a socket the client no longer listens to. Its handlers
// become no-ops rather than null: the ws package throws an error event that
// has no listener.
function abandon(ws, code, reason) {
  ws.onmessage = ws.onclose = ws.onerror = () => {};
  try {
    if (ws.readyState === 0 || ws.readyState === 1) ws.close(code, reason);
  } catch {
    // already closing
  }
}

function chunks(ids) {
  const out = [];
  for (let i = 0; i < ids.length; i += MAX_IDS_PER_REQUEST) out.push(ids.slice(i, i + MAX_IDS_PER_REQUEST));
  return out;
}

/**
 * PresenceClient keeps one connection to a presence gateway alive, watches
 * users, and reports their presence as events. See index.d.ts for the
 * options and events.
 */
export class PresenceClient {
  #url;
  #userId;
  #tokenFn;
  #WebSocket;
  #requestTimeoutMs;
  #baseMs;
  #capMs;
  #policyDelayMs;
  #refreshAt;
  #random;

  #listeners = new Map(); // event type -> Set of listeners
  #state = "closed";
  #ws = null;
  #welcome = null;
  #attempt = 0;
  #connectSeq = 0; // bumped by every connection attempt and by close()
  #retryTimer = null;
  #pingTimer = null;
  #refreshTimer = null;
  #lastHeard = 0;
  #heartbeatMs = DEFAULT_HEARTBEAT_MS;
  #nextId = 1;
  #pending = new Map(); // request id -> {type, resolve, reject, timer}
  #openWaiters = [];

  #watch = new Set(); // the watchlist, in the order added
  #book = new Map(); // userId -> {user, epoch}: the newest state of each watched user
  #epoch = 0; // bumped by every welcome: a new connection's snapshot wins
  #status = null; // {status, text} to keep across reconnects
  #token = undefined; // the token of the current connection (the last refreshed one)

  constructor(options = {}) {
    if (options.url === undefined || options.url === null || options.url === "") throw new TypeError("PresenceClient: options.url is required (ws://host:port/)");
    if (options.userId === undefined && options.token === undefined) {
      throw new TypeError("PresenceClient: options.userId or options.token is required");
    }
    if (options.userId !== undefined && !isValidUserId(options.userId)) {
      throw new TypeError(`PresenceClient: userId "${String(options.userId)}" is not a valid user id`);
    }
    if (options.token !== undefined && typeof options.token !== "function" && typeof options.token !== "string") {
      throw new TypeError("PresenceClient: options.token must be a function returning a token (or a string)");
    }
    this.#url = options.url;
    this.#userId = options.userId;
    this.#tokenFn = typeof options.token === "string" ? () => options.token : options.token;
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this.#WebSocket !== "function") {
      throw new TypeError("PresenceClient: no WebSocket implementation: pass options.WebSocket (for example the ws package's WebSocket on Node before 22)");
    }
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 10000;
    this.#baseMs = options.baseMs ?? 500;
    this.#capMs = options.capMs ?? 30000;
    this.#policyDelayMs = options.policyDelayMs ?? this.#capMs;
    this.#refreshAt = options.refreshAt ?? 0.8;
    this.#random = options.random ?? Math.random;
    for (const id of uniqueIds(options.watch ?? [], "watch")) this.#watch.add(id);
    if (options.status !== undefined) this.#status = { status: String(options.status), text: String(options.statusText ?? "") };
  }

  /** The connection state: "closed", "connecting", "open" or "waiting" (a retry is scheduled). */
  get state() {
    return this.#state;
  }

  /** This connection's user: the welcome's userId once connected, else the one given. */
  get userId() {
    return this.#welcome?.userId ?? this.#userId;
  }

  /** The welcome frame of the open connection, or null. */
  get welcome() {
    return this.#welcome;
  }

  /** The watched user ids, in the order they were added. */
  get watchlist() {
    return [...this.#watch];
  }

  /** The newest known presence of a watched user (a copy), or undefined. */
  get(userId) {
    const held = this.#book.get(userId);
    return held ? { ...held.user } : undefined;
  }

  /** on adds a listener and returns the function that removes it. */
  on(type, listener) {
    if (typeof listener !== "function") throw new TypeError("on: listener must be a function");
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, (set = new Set()));
    set.add(listener);
    return () => this.off(type, listener);
  }

  /** off removes a listener added with on. */
  off(type, listener) {
    this.#listeners.get(type)?.delete(listener);
  }

  /**
   * connect starts the connection (or, while waiting for a retry, retries
   * now). The promise resolves with the next welcome frame; it rejects only
   * if close() is called first.
   */
  connect() {
    const opened = handled(new Promise((resolve, reject) => {
      if (this.#state === "open") resolve(this.#welcome);
      else this.#openWaiters.push({ resolve, reject });
    }));
    if (this.#state === "closed" || this.#state === "waiting") {
      this.#clearRetry();
      this.#connect();
    }
    return opened;
  }

  /** close closes the connection and stops reconnecting; pending requests fail with "closed". */
  close(code = 1000, reason = "client closed") {
    this.#connectSeq++;
    this.#clearRetry();
    this.#stopTimers();
    const ws = this.#ws;
    this.#ws = null;
    this.#welcome = null;
    if (ws) abandon(ws, code, reason);
    this.#failPending("closed", "the client was closed");
    for (const w of this.#openWaiters.splice(0)) w.reject(new PresenceError("closed", "the client was closed before it connected"));
    if (this.#state !== "closed") this.#setState("closed", { code, reason });
  }

  /**
   * subscribe adds users to the watchlist and, when connected, asks the
   * gateway for them (in requests of 100 ids). It resolves once the gateway
   * answered (at once when not connected: the watchlist is sent on connect).
   * Their states arrive as "presence" events. Ids the gateway refuses for
   * good (forbidden, too_many_subscriptions) leave the watchlist, and the
   * promise rejects with a PresenceError listing them.
   */
  subscribe(userIds) {
    const ids = uniqueIds(userIds, "subscribe").filter((id) => !this.#watch.has(id));
    for (const id of ids) this.#watch.add(id);
    if (this.#state !== "open" || ids.length === 0) return handled(Promise.resolve());
    return handled(this.#sendSubscribe(ids).then((errors) => {
      if (errors.length > 0) throw errors[0];
    }));
  }

  /** unsubscribe removes users from the watchlist and tells the gateway. */
  unsubscribe(userIds) {
    const ids = uniqueIds(userIds, "unsubscribe").filter((id) => this.#watch.has(id));
    for (const id of ids) {
      this.#watch.delete(id);
      this.#book.delete(id);
    }
    if (this.#state !== "open" || ids.length === 0) return handled(Promise.resolve());
    return handled(Promise.all(chunks(ids).map((c) => this.#request({ type: "unsubscribe", userIds: c }))).then(() => undefined));
  }

  /**
   * query asks for the presence of users once (watched or not), in requests
   * of 100 ids; it resolves with the users in the order asked. It fails with
   * code "timeout" when the gateway does not answer within timeoutMs, and
   * "not_connected" when there is no open connection.
   */
  query(userIds, { timeoutMs } = {}) {
    const ids = uniqueIds(userIds, "query");
    if (ids.length === 0) return handled(Promise.resolve([]));
    return handled(Promise.all(chunks(ids).map((c) => this.#request({ type: "query", userIds: c }, timeoutMs)))
      .then((answers) => answers.flatMap((a) => a.users ?? [])));
  }

  /**
   * setStatus sets this user's status (online, away, busy, invisible, or any
   * status the gateway knows) and text. The client keeps it and sends it again after
   * every reconnect. It resolves when the gateway accepted it (at once when
   * not connected); if the gateway refuses it as a bad request, the previous
   * one is kept.
   */
  setStatus(status, text = "") {
    if (typeof status !== "string" || status === "") throw new TypeError("setStatus: status must be a non-empty string");
    if (typeof text !== "string") throw new TypeError("setStatus: text must be a string");
    const previous = this.#status;
    const wanted = { status, text };
    this.#status = wanted;
    if (this.#state !== "open") return handled(Promise.resolve());
    return handled(this.#request({ type: "status", status, text }).then(
      () => undefined,
      (err) => {
        // A status the gateway refuses (bad_request: not one it knows, a text
        // too long) would be refused again after a reconnect; after any
        // other failure (rate_limited, a close) it is still what was asked.
        if (err.code === "bad_request" && this.#status === wanted) this.#status = previous;
        throw err;
      },
    ));
  }

  /**
   * refresh gets a new token from the token function and sends it to the
   * gateway (the `refresh` frame), which then keeps the connection until the
   * new token's exp. The client does this by itself before a token expires;
   * call it when the application knows the token changed (new claims).
   */
  refresh() {
    if (!this.#tokenFn) return handled(Promise.reject(new PresenceError("bad_request", "refresh: this client has no token function")));
    if (this.#state !== "open") return handled(Promise.reject(new PresenceError("not_connected", "refresh: not connected")));
    const seq = this.#connectSeq;
    return handled(this.#fetchToken().then((token) => {
      if (seq !== this.#connectSeq) throw new PresenceError("disconnected", "refresh: the connection closed while the token was fetched");
      return this.#request({ type: "refresh", token }).then(() => {
        if (seq !== this.#connectSeq) return;
        this.#token = token;
        this.#scheduleRefresh(token);
      });
    }));
  }

  // ---- connection ----

  async #connect() {
    const seq = ++this.#connectSeq;
    this.#setState("connecting", { attempt: this.#attempt });
    let token;
    if (this.#tokenFn) {
      try {
        token = await this.#fetchToken();
      } catch (err) {
        if (seq !== this.#connectSeq) return;
        this.#emit("error", err);
        this.#scheduleRetry(undefined, "the token function failed");
        return;
      }
      if (seq !== this.#connectSeq) return; // closed or restarted meanwhile
    }
    this.#token = token;
    let ws;
    try {
      ws = new this.#WebSocket(this.#buildURL(token));
    } catch (err) {
      this.#emit("error", new PresenceError("bad_url", `cannot open a WebSocket to ${String(this.#url)}: ${err?.message ?? err}`, { cause: err }));
      this.#scheduleRetry(undefined, String(err?.message ?? err));
      return;
    }
    this.#ws = ws;
    ws.onmessage = (ev) => this.#onFrame(ws, ev.data);
    ws.onclose = (ev) => this.#onClose(ws, ev.code, ev.reason);
    ws.onerror = () => {
      // A close event follows an error, except with some implementations
      // (Node 20's experimental WebSocket) when the handshake failed: a
      // socket that is not open is given up here, as the 1006 it would get.
      if (ws.readyState === 1) return;
      abandon(ws, 1000, "connection failed");
      this.#onClose(ws, 1006, "connection failed");
    };
  }

  async #fetchToken() {
    let token;
    try {
      token = await this.#tokenFn();
    } catch (err) {
      throw new PresenceError("token", `the token function failed: ${err?.message ?? err}`, { cause: err });
    }
    if (typeof token !== "string" || token === "") throw new PresenceError("token", "the token function returned no token");
    return token;
  }

  #buildURL(token) {
    const u = new URL(typeof this.#url === "string" ? this.#url : this.#url.href, globalThis.location?.href);
    if (u.protocol === "http:") u.protocol = "ws:";
    else if (u.protocol === "https:") u.protocol = "wss:";
    if (this.#userId !== undefined) u.searchParams.set("userId", this.#userId);
    if (token !== undefined) u.searchParams.set("token", token);
    return u.toString();
  }

  #onFrame(ws, data) {
    if (ws !== this.#ws) return;
    this.#lastHeard = Date.now();
    if (typeof data !== "string") return; // the gateway sends text only
    if (data === "pong") return;
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      this.#emit("error", new PresenceError("bad_frame", `unparsable frame: ${data.slice(0, 80)}`));
      return;
    }
    if (msg === null || typeof msg !== "object") return;
    switch (msg.type) {
      case "welcome":
        this.#onWelcome(msg);
        return;
      case "presence":
        this.#applyUsers(msg.users, msg.id !== undefined);
        break;
      case "error": {
        const entry = msg.id !== undefined ? this.#takePending(msg.id) : undefined;
        const err = new PresenceError(String(msg.code ?? "internal"), String(msg.message ?? ""), {
          requestId: msg.id,
          forbidden: Array.isArray(msg.userIds) ? msg.userIds.map(String) : undefined,
        });
        if (entry) entry.reject(err);
        else this.#emit("error", err);
        return;
      }
      default:
        break; // ok, pong, and frame types of newer gateways
    }
    if (msg.id !== undefined) this.#takePending(msg.id)?.resolve(msg);
  }

  #onWelcome(msg) {
    this.#welcome = msg;
    this.#attempt = 0;
    this.#epoch++;
    this.#heartbeatMs = Number(msg.heartbeatMs) > 0 ? Number(msg.heartbeatMs) : DEFAULT_HEARTBEAT_MS;
    this.#startKeepAlive();
    this.#setState("open", {});
    this.#emit("welcome", msg);
    for (const w of this.#openWaiters.splice(0)) w.resolve(msg);
    if (this.#state !== "open") return; // a listener closed the client
    if (this.#watch.size > 0) {
      this.#sendSubscribe([...this.#watch]).then((errors) => {
        for (const err of errors) this.#emit("error", err);
      });
    }
    if (this.#status) {
      const { status, text } = this.#status;
      this.#request({ type: "status", status, text }).catch((err) => {
        if (err.code !== "disconnected" && err.code !== "closed") this.#emit("error", err);
      });
    }
    if (this.#token !== undefined) this.#scheduleRefresh(this.#token);
  }

  // #sendSubscribe sends ids in chunks and resolves with the errors of the
  // refused chunks (never rejects). Ids refused for good leave the watchlist.
  #sendSubscribe(ids) {
    return Promise.all(chunks(ids).map((c) => this.#request({ type: "subscribe", userIds: c }).then(
      () => null,
      (err) => {
        err.userIds = c;
        if (PERMANENT_SUBSCRIBE_ERRORS.has(err.code)) {
          for (const id of c) {
            this.#watch.delete(id);
            this.#book.delete(id);
          }
        }
        return err;
      },
    ))).then((results) => results.filter((e) => e !== null));
  }

  // #applyUsers keeps each watched user's newest state and emits the changes.
  #applyUsers(users, snapshot) {
    if (!Array.isArray(users)) return;
    for (const user of users) {
      if (!user || typeof user.userId !== "string" || !this.#watch.has(user.userId)) continue;
      const held = this.#book.get(user.userId);
      if (held && held.epoch === this.#epoch && !(Number(user.version) > Number(held.user.version))) {
        this.#emit("stale", { user: { ...user }, current: { ...held.user } });
        continue;
      }
      this.#book.set(user.userId, { user: { ...user }, epoch: this.#epoch });
      this.#emit("presence", { user: { ...user }, previous: held ? { ...held.user } : undefined, snapshot });
    }
  }

  #onClose(ws, code, reason) {
    if (ws !== this.#ws) return; // an old socket we already gave up on
    this.#ws = null;
    this.#welcome = null;
    this.#stopTimers();
    this.#failPending("disconnected", `the connection closed (${code}${reason ? ` ${reason}` : ""})`);
    if (this.#state === "closed") return;
    this.#scheduleRetry(code, reason);
  }

  #scheduleRetry(code, reason) {
    const attempt = this.#attempt;
    let delayMs;
    if (code === CLOSE_TOKEN_EXPIRED) {
      // Not an overload signal: get a fresh token and come back now. The
      // welcome that preceded this close reset the backoff, and a token
      // function that keeps returning expired tokens fails the upgrade
      // (401), which backs off as usual.
      delayMs = 0;
    } else {
      delayMs = backoffDelay(attempt, { baseMs: this.#baseMs, capMs: this.#capMs, random: this.#random });
      if (code === CLOSE_POLICY_VIOLATION) {
        // Rate limit, bad messages, slow consumer: coming back at once would
        // repeat it, and the next welcome would reset the backoff. Wait at
        // least half of policyDelayMs every time.
        const floor = backoffDelay(0, { baseMs: this.#policyDelayMs, capMs: this.#policyDelayMs, random: this.#random });
        delayMs = Math.max(delayMs, floor);
      }
      this.#attempt++;
    }
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#connect();
    }, delayMs);
    this.#setState("waiting", { attempt, delayMs, code, reason });
  }

  #clearRetry() {
    if (this.#retryTimer !== null) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = null;
    }
  }

  // The keep-alive: a text `ping` each heartbeat. The gateway closes a client
  // that stays silent for IDLE_TIMEOUT; we, in turn, give up on a gateway we
  // have not heard from (not even a pong) for three heartbeats, which catches
  // a dead network path that never delivers a close frame.
  #startKeepAlive() {
    this.#stopTimers();
    this.#lastHeard = Date.now();
    this.#pingTimer = setInterval(() => {
      const ws = this.#ws;
      if (!ws) return;
      if (Date.now() - this.#lastHeard > 3 * this.#heartbeatMs) {
        abandon(ws, 4000, "keep-alive timeout");
        this.#onClose(ws, 4000, "keep-alive timeout");
        return;
      }
      this.#sendText("ping");
    }, this.#heartbeatMs);
  }

  #scheduleRefresh(token) {
    if (this.#refreshTimer !== null) clearTimeout(this.#refreshTimer);
    this.#refreshTimer = null;
    const exp = tokenExpiry(token);
    if (exp === undefined) return;
    const delay = Math.max(0, Math.floor((exp - Date.now()) * this.#refreshAt));
    this.#refreshTimer = setTimeout(() => this.#autoRefresh(exp), delay);
  }

  // #autoRefresh refreshes before exp; when that fails it tries again halfway
  // to exp while more than a second is left, and otherwise lets the gateway
  // close with 4001, after which the client reconnects with a fresh token.
  #autoRefresh(exp) {
    this.#refreshTimer = null;
    this.refresh().catch((err) => {
      if (err.code === "disconnected" || err.code === "closed" || err.code === "not_connected") return;
      this.#emit("error", err);
      const left = exp - Date.now();
      if (this.#state === "open" && this.#refreshTimer === null && left > 1000) {
        this.#refreshTimer = setTimeout(() => this.#autoRefresh(exp), Math.floor(left / 2));
      }
    });
  }

  #stopTimers() {
    if (this.#pingTimer !== null) {
      clearInterval(this.#pingTimer);
      this.#pingTimer = null;
    }
    if (this.#refreshTimer !== null) {
      clearTimeout(this.#refreshTimer);
      this.#refreshTimer = null;
    }
  }

  // ---- requests ----

  // #request sends frame with a fresh id and resolves with the answer frame
  // (rejects with a PresenceError for an error answer, a timeout, or a close).
  #request(frame, timeoutMs = this.#requestTimeoutMs) {
    return new Promise((resolve, reject) => {
      if (this.#state !== "open" || !this.#ws) {
        reject(new PresenceError("not_connected", `${frame.type}: not connected`));
        return;
      }
      const id = this.#nextId++;
      const timer = setTimeout(() => {
        if (this.#pending.delete(id)) reject(new PresenceError("timeout", `${frame.type}: no answer within ${timeoutMs} ms`, { requestId: id }));
      }, timeoutMs);
      this.#pending.set(id, { type: frame.type, resolve, reject, timer });
      if (!this.#sendText(JSON.stringify({ ...frame, id }))) {
        this.#takePending(id);
        reject(new PresenceError("not_connected", `${frame.type}: not connected`));
      }
    });
  }

  #takePending(id) {
    const entry = this.#pending.get(id);
    if (!entry) return undefined; // timed out, or not ours
    this.#pending.delete(id);
    clearTimeout(entry.timer);
    return entry;
  }

  #failPending(code, message) {
    for (const [id, entry] of [...this.#pending]) {
      this.#pending.delete(id);
      clearTimeout(entry.timer);
      entry.reject(new PresenceError(code, `${entry.type}: ${message}`, { requestId: id }));
    }
  }

  #sendText(text) {
    const ws = this.#ws;
    if (!ws || ws.readyState !== 1) return false;
    ws.send(text);
    return true;
  }

  // ---- events ----

  #setState(state, detail) {
    this.#state = state;
    this.#emit("state", { state, ...detail });
  }

  #emit(type, detail) {
    const set = this.#listeners.get(type);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(detail);
      } catch (err) {
        // Like EventTarget: a throwing listener is reported, and neither the
        // other listeners nor the client's state suffer from it.
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
  }
}
