// Unit tests of client.js's logic under Node's own test runner
// (`node --test gateway/demo/web/`, run by the Go test in gateway/demo).
// The WebSocket and the timers are fakes: this checks the client's state
// machine; the real page against real gateways is checked in headless
// Chromium by the e2e test (hack/e2e).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  PresenceBook, PresenceClient, backoffDelay, gatewayURL, isValidUserId, parseUserList,
} from "./client.js";

test("backoffDelay doubles up to the cap and stays within [ceiling/2, ceiling]", () => {
  for (let attempt = 0; attempt < 40; attempt++) {
    const ceiling = Math.min(30000, 500 * 2 ** attempt);
    assert.equal(backoffDelay(attempt, { random: () => 0 }), ceiling / 2);
    assert.equal(backoffDelay(attempt, { random: () => 0.999999 }), Math.round(ceiling / 2 + 0.999999 * ceiling / 2));
  }
  assert.equal(backoffDelay(0, { random: () => 0 }), 250);
  assert.equal(backoffDelay(3, { random: () => 0 }), 2000);
  assert.equal(backoffDelay(1000, { random: () => 1 }), 30000);
  assert.equal(backoffDelay(-5, { random: () => 1 }), 500);
});

test("backoffDelay spreads retries (jitter)", () => {
  const seen = new Set();
  for (let i = 0; i < 50; i++) seen.add(backoffDelay(6));
  assert.ok(seen.size > 10, `50 draws gave only ${seen.size} distinct delays`);
});

test("isValidUserId follows the gateway's rule", () => {
  for (const ok of ["a", "alice", "u.1_x:y@z-w", "x".repeat(128)]) assert.ok(isValidUserId(ok), ok);
  for (const bad of ["", "x".repeat(129), "a b", "é", "a/b", "a?b", null, undefined, 7]) assert.ok(!isValidUserId(bad), String(bad));
});

test("parseUserList splits, trims and de-duplicates in order", () => {
  assert.deepEqual(parseUserList(" bob, carol  dave,,bob "), ["bob", "carol", "dave"]);
  assert.deepEqual(parseUserList(""), []);
  assert.deepEqual(parseUserList(undefined), []);
});

test("gatewayURL follows the page's scheme and host", () => {
  assert.equal(gatewayURL({ protocol: "http:", host: "127.0.0.1:8080" }, "a@b"), "ws://127.0.0.1:8080/?userId=a%40b");
  assert.equal(gatewayURL({ protocol: "https:", host: "chat.example" }, "bob"), "wss://chat.example/?userId=bob");
});

test("PresenceBook keeps the newest version", () => {
  const book = new PresenceBook();
  assert.ok(book.apply({ userId: "bob", online: true, status: "online", version: 3 }));
  assert.ok(!book.apply({ userId: "bob", online: false, status: "offline", version: 2 }), "older event taken");
  assert.ok(!book.apply({ userId: "bob", online: true, status: "online", version: 3 }), "duplicate taken");
  assert.ok(book.apply({ userId: "bob", online: true, status: "away", version: 4 }));
  assert.equal(book.get("bob").status, "away");
  book.forgetVersions();
  assert.ok(book.apply({ userId: "bob", online: true, status: "busy", version: 1 }), "snapshot after reconnect refused");
  assert.ok(!book.apply({ nope: 1 }));
});

// A scripted stand-in for the browser's WebSocket and timers.
class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.all.push(this);
  }
  open() { this.readyState = 1; }
  send(text) { this.sent.push(text); }
  close() { this.readyState = 3; }
  serverSends(obj) { this.onmessage({ data: typeof obj === "string" ? obj : JSON.stringify(obj) }); }
  serverCloses(code, reason = "") { this.readyState = 3; this.onclose({ code, reason }); }
  requests() { return this.sent.filter((s) => s !== "ping").map((s) => JSON.parse(s)); }
}

function fakeTimers() {
  let now = 0;
  let seq = 0;
  const pending = new Map(); // id -> {at, fn, every}
  return {
    now: () => now,
    setTimeout: (fn, ms) => { pending.set(++seq, { at: now + ms, fn }); return seq; },
    clearTimeout: (id) => pending.delete(id),
    setInterval: (fn, ms) => { pending.set(++seq, { at: now + ms, fn, every: ms }); return seq; },
    clearInterval: (id) => pending.delete(id),
    // advance runs every timer due within ms, in time order.
    advance(ms) {
      const end = now + ms;
      for (let guard = 0; guard < 10000; guard++) {
        let next = null;
        for (const [id, t] of pending) if (t.at <= end && (!next || t.at < next[1].at)) next = [id, t];
        if (!next) break;
        const [id, t] = next;
        now = t.at;
        if (t.every) t.at += t.every; else pending.delete(id);
        t.fn();
      }
      now = end;
    },
    pendingCount: () => pending.size,
  };
}

function newClient(extra = {}) {
  FakeSocket.all = [];
  const timers = fakeTimers();
  const client = new PresenceClient({
    url: "ws://gw/?userId=alice", userId: "alice", watch: ["bob", "carol"],
    WebSocket: FakeSocket, timers, now: timers.now, random: () => 0, ...extra,
  });
  const states = [];
  client.addEventListener("state", (ev) => states.push(ev.detail));
  return { client, timers, states };
}

const welcome = { type: "welcome", userId: "alice", connectionId: "c1", heartbeatMs: 1000, ttlMs: 3000 };

test("after the welcome it subscribes to itself and the watchlist, and pings each heartbeat", () => {
  const { client, timers } = newClient();
  client.start();
  const ws = FakeSocket.all[0];
  assert.equal(ws.url, "ws://gw/?userId=alice");
  ws.open();
  assert.equal(client.state, "connecting");
  ws.serverSends(welcome);
  assert.equal(client.state, "open");
  assert.deepEqual(ws.requests(), [{ type: "subscribe", userIds: ["alice", "bob", "carol"], id: 1 }]);
  timers.advance(1000);
  ws.serverSends("pong");
  timers.advance(1000);
  assert.equal(ws.sent.filter((s) => s === "ping").length, 2);
});

test("presence events are emitted once per newer version", () => {
  const { client } = newClient();
  const seen = [];
  client.addEventListener("presence", (ev) => seen.push(`${ev.detail.user.userId}:${ev.detail.user.status}`));
  client.start();
  const ws = FakeSocket.all[0];
  ws.open();
  ws.serverSends(welcome);
  ws.serverSends({ type: "presence", id: 1, users: [{ userId: "bob", online: false, status: "offline", version: 1 }] });
  ws.serverSends({ type: "presence", users: [{ userId: "bob", online: true, status: "online", version: 3 }] });
  ws.serverSends({ type: "presence", users: [{ userId: "bob", online: false, status: "offline", version: 2 }] });
  ws.serverSends({ type: "presence", users: [{ userId: "bob", online: true, status: "away", version: 4 }] });
  assert.deepEqual(seen, ["bob:offline", "bob:online", "bob:away"]);
});

test("a lost connection is retried with growing delays, and a welcome resets them", () => {
  const { client, timers, states } = newClient();
  client.start();
  FakeSocket.all[0].serverCloses(1006);
  const waits = () => states.filter((s) => s.state === "waiting").map((s) => s.delayMs);
  assert.deepEqual(waits(), [250]);
  timers.advance(249);
  assert.equal(FakeSocket.all.length, 1, "reconnected before the delay");
  timers.advance(1);
  assert.equal(FakeSocket.all.length, 2);
  FakeSocket.all[1].serverCloses(1006);
  timers.advance(500);
  FakeSocket.all[2].serverCloses(1001, "going away");
  assert.deepEqual(waits(), [250, 500, 1000]);
  assert.equal(states.at(-1).code, 1001);
  assert.equal(states.at(-1).reason, "going away");
  timers.advance(1000);
  const ws = FakeSocket.all[3];
  ws.open();
  ws.serverSends(welcome);
  ws.serverCloses(1006);
  assert.deepEqual(waits(), [250, 500, 1000, 250], "backoff not reset by the welcome");
});

test("a silent gateway is given up on after three heartbeats", () => {
  const { client, timers } = newClient();
  client.start();
  const ws = FakeSocket.all[0];
  ws.open();
  ws.serverSends(welcome);
  timers.advance(3999);
  assert.equal(client.state, "open");
  timers.advance(1);
  assert.equal(client.state, "waiting");
  assert.equal(ws.readyState, 3);
  timers.advance(250);
  assert.equal(FakeSocket.all.length, 2);
});

test("the chosen status is sent at once and again after a reconnect", () => {
  const { client, timers } = newClient();
  assert.equal(client.setStatus("busy", "focus"), 0, "sent while not connected");
  client.start();
  let ws = FakeSocket.all[0];
  ws.open();
  ws.serverSends(welcome);
  assert.deepEqual(ws.requests()[1], { type: "status", status: "busy", text: "focus", id: 2 });
  assert.ok(client.setStatus("away", "lunch") > 0);
  ws.serverCloses(1012);
  timers.advance(250);
  ws = FakeSocket.all[1];
  ws.open();
  ws.serverSends(welcome);
  assert.deepEqual(ws.requests().map((r) => r.type), ["subscribe", "status"]);
  assert.equal(ws.requests()[1].status, "away");
  assert.throws(() => client.setStatus("offline"), /must be one of/);
});

test("watch and unwatch send (un)subscribe in chunks of at most 100 ids", () => {
  const { client } = newClient();
  client.start();
  const ws = FakeSocket.all[0];
  ws.open();
  ws.serverSends(welcome);
  const many = Array.from({ length: 250 }, (_, i) => `u${i}`);
  assert.equal(client.watch([...many, "bob"]).length, 250);
  const subs = ws.requests().slice(1);
  assert.deepEqual(subs.map((r) => r.userIds.length), [100, 100, 50]);
  assert.deepEqual(client.unwatch(["bob", "nobody"]), ["bob"]);
  assert.deepEqual(ws.requests().at(-1), { type: "unsubscribe", userIds: ["bob"], id: 5 });
});

test("stop closes the socket and cancels the retry", () => {
  const { client, timers } = newClient();
  client.start();
  FakeSocket.all[0].serverCloses(1006);
  client.stop();
  assert.equal(client.state, "stopped");
  timers.advance(60000);
  assert.equal(FakeSocket.all.length, 1, "reconnected after stop");
  assert.equal(timers.pendingCount(), 0);
});
