// Type declarations of @presencekit/client (index.js beside this file).
// The wire protocol is docs/protocol.md of the presencekit repository.

/** The protocol refuses more than this many ids in one request. */
export declare const MAX_IDS_PER_REQUEST: 100;
/** The heartbeat used until the gateway's welcome says otherwise. */
export declare const DEFAULT_HEARTBEAT_MS: 20000;
/** Close code of a connection whose token expired without a refresh. */
export declare const CLOSE_TOKEN_EXPIRED: 4001;
/** Close code of a policy violation (rate limit, bad messages, slow consumer). */
export declare const CLOSE_POLICY_VIOLATION: 1008;

/**
 * A status a user can set. "invisible" shows the user offline to everybody
 * while it stays connected. Gateways may know more (the type stays open).
 */
export type SettableStatus = "online" | "away" | "busy" | "invisible" | (string & {});

/** What the gateway knows about one user (the protocol's user object). */
export interface User {
  userId: string;
  /** At least one live connection on any replica (or within the offline grace). */
  online: boolean;
  /** "online", "away", "busy", or "offline" exactly when online is false (an invisible user shows "offline"). */
  status: string;
  /** The status text, "" when none. */
  text: string;
  /** Live connections over all replicas. */
  connections: number;
  /** Unix time in ms at which the user was last online; 0 if never seen. */
  lastSeen: number;
  /** Grows with every visible change of this user; the client keeps the highest. */
  version: number;
}

/** The first frame of every connection. */
export interface Welcome {
  type: "welcome";
  userId: string;
  connectionId: string;
  heartbeatMs: number;
  ttlMs: number;
}

export type ConnectionState = "closed" | "connecting" | "open" | "waiting";

/** The "state" event. */
export interface StateEvent {
  state: ConnectionState;
  /** connecting and waiting: the reconnect attempt, 0 for the first. */
  attempt?: number;
  /** waiting: how long until the next attempt. */
  delayMs?: number;
  /** waiting: the close code of the connection that ended (undefined when none opened). */
  code?: number;
  /** waiting: the close reason. */
  reason?: string;
}

/** The "presence" event: a watched user's newer state. */
export interface PresenceEvent {
  user: User;
  /** The state held before, if any. */
  previous?: User;
  /** True for the answer to a request (a snapshot), false for a change event. */
  snapshot: boolean;
}

/** The "stale" event: a state dropped because its version is not newer than the one held. */
export interface StaleEvent {
  user: User;
  current: User;
}

/** The gateway's error codes, and the client's own. */
export type ErrorCode =
  | "bad_request"
  | "unknown_type"
  | "too_many_ids"
  | "too_many_subscriptions"
  | "rate_limited"
  | "unavailable"
  | "invalid_token"
  | "forbidden"
  | "internal"
  | "timeout"
  | "not_connected"
  | "disconnected"
  | "closed"
  | "token"
  | "bad_frame"
  | "bad_url"
  | (string & {});

/** How a request fails, and what the "error" event carries. */
export declare class PresenceError extends Error {
  constructor(code: ErrorCode, message: string, details?: { requestId?: number | string; userIds?: string[]; forbidden?: string[]; cause?: unknown });
  readonly name: "PresenceError";
  readonly code: ErrorCode;
  /** The id of the request the gateway answered with this error. */
  readonly requestId?: number | string;
  /** subscribe: the ids of the refused request. */
  userIds?: string[];
  /** forbidden (query, subscribe): the ids the token's "watch" claim does not allow. */
  forbidden?: string[];
}

export interface PresenceClientEvents {
  state: StateEvent;
  welcome: Welcome;
  presence: PresenceEvent;
  stale: StaleEvent;
  /** Errors not tied to a request the application awaits: gateway errors without an id, refused re-subscriptions, token refresh failures. */
  error: PresenceError;
}

/**
 * A WebSocket constructor with the browser's API: the global WebSocket, or
 * the ws package's. The client uses onmessage, onclose, onerror, send, close
 * and readyState.
 */
export type WebSocketConstructor = abstract new (url: string) => object;

export interface PresenceClientOptions {
  /** The gateway: ws://, wss://, http:// or https:// (turned into ws/wss); relative to the page in a browser. */
  url: string | { readonly href: string };
  /** This connection's user. With a token it may be left out (the token's sub is the user). */
  userId?: string;
  /** Returns a fresh JWT: called before each connection and before the token expires. A string is used as is. */
  token?: (() => string | Promise<string>) | string;
  /** Users to watch from the start. */
  watch?: string[];
  /** A status to set on every connection (restored after reconnects), and its text. */
  status?: SettableStatus;
  statusText?: string;
  /** The WebSocket implementation; default globalThis.WebSocket (pass the ws package's on Node before 22). */
  WebSocket?: WebSocketConstructor;
  /** How long a request waits for its answer (default 10000). */
  requestTimeoutMs?: number;
  /** Reconnect backoff: the ceiling doubles from baseMs (default 500) to capMs (default 30000); the delay is drawn from [ceiling/2, ceiling]. */
  baseMs?: number;
  capMs?: number;
  /** After close 1008 the next attempt waits at least policyDelayMs/2 (default capMs). */
  policyDelayMs?: number;
  /** The token is refreshed when this fraction of its remaining lifetime has passed (default 0.8). */
  refreshAt?: number;
  /** The jitter's random source (default Math.random). */
  random?: () => number;
}

/** One connection to a presence gateway, kept alive, with a watchlist. */
export declare class PresenceClient {
  constructor(options: PresenceClientOptions);
  /** The connection state. */
  readonly state: ConnectionState;
  /** The welcome's userId once connected, else the one given. */
  readonly userId: string | undefined;
  /** The welcome frame of the open connection, or null. */
  readonly welcome: Welcome | null;
  /** The watched user ids, in the order added. */
  readonly watchlist: string[];
  /** The newest known state of a watched user. */
  get(userId: string): User | undefined;
  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof PresenceClientEvents>(type: K, listener: (event: PresenceClientEvents[K]) => void): () => void;
  off<K extends keyof PresenceClientEvents>(type: K, listener: (event: PresenceClientEvents[K]) => void): void;
  /** Starts connecting (or retries now while waiting); resolves with the next welcome, rejects only if close() comes first. */
  connect(): Promise<Welcome>;
  /** Closes and stops reconnecting. */
  close(code?: number, reason?: string): void;
  /** Adds users to the watchlist and subscribes (requests of 100 ids); their states come as "presence" events. */
  subscribe(userIds: string[]): Promise<void>;
  /** Removes users from the watchlist and unsubscribes. */
  unsubscribe(userIds: string[]): Promise<void>;
  /** The presence of users, once, in the order asked (requests of 100 ids). */
  query(userIds: string[], options?: { timeoutMs?: number }): Promise<User[]>;
  /** Sets this user's status and text; kept and re-sent after reconnects. */
  setStatus(status: SettableStatus, text?: string): Promise<void>;
  /** Gets a new token and sends it in a refresh frame now. */
  refresh(): Promise<void>;
}

/** Whether the gateway accepts id as a user id: 1 to 128 of [A-Za-z0-9._:@-]. */
export declare function isValidUserId(id: unknown): id is string;
/** The reconnect delay for attempt (0 first): equal jitter over [ceiling/2, ceiling], ceiling = min(capMs, baseMs * 2^attempt). */
export declare function backoffDelay(attempt: number, options?: { baseMs?: number; capMs?: number; random?: () => number }): number;
/** A JWT's exp in ms since the epoch (not verified), or undefined. */
export declare function tokenExpiry(token: string): number | undefined;
