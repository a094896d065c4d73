// The client against the real gateway: each test builds nothing (gateway.js
// builds cmd/presence-gateway once) and starts its own gateway process on
// free loopback ports, with the embedded store.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PresenceClient, tokenExpiry } from "../src/index.js";
import { Relay, WebSocketImpl, record, signHS256, startGateway, waitFor } from "./gateway.js";

// newClient makes a client with the test's WebSocket implementation, closed
// when the test ends.
function newClient(t, options) {
  const c = new PresenceClient({ WebSocket: WebSocketImpl, ...options });
  t.after(() => c.close());
  return c;
}

const ids = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

test("watches users: snapshot, then their changes as events", async (t) => {
  const gw = await startGateway(t);
  const alice = newClient(t, { url: gw.url, userId: "alice", watch: ["bob"] });
  const ev = record(alice);
  const welcome = await alice.connect();
  assert.equal(welcome.userId, "alice");
  assert.equal(alice.state, "open");
  await waitFor("bob's snapshot (offline)", () => alice.get("bob"));
  assert.equal(alice.get("bob").online, false);
  assert.equal(ev.presence[0].snapshot, true);

  const bob = newClient(t, { url: gw.url, userId: "bob" });
  await bob.connect();
  await waitFor("alice sees bob online", () => alice.get("bob")?.online);
  await bob.setStatus("busy", "in a call");
  await waitFor("alice sees bob busy", () => alice.get("bob")?.status === "busy");
  assert.equal(alice.get("bob").text, "in a call");
  const last = ev.presence.at(-1);
  assert.equal(last.snapshot, false);
  assert.equal(last.previous.status, "online");

  bob.close();
  await waitFor("alice sees bob offline", () => alice.get("bob")?.online === false);
  await alice.unsubscribe(["bob"]);
  assert.deepEqual(alice.watchlist, []);
  assert.equal(alice.get("bob"), undefined);
  alice.close();
  assert.equal(alice.state, "closed");
});

test("subscribe and query are split into requests of 100 ids", async (t) => {
  const gw = await startGateway(t);
  const c = newClient(t, { url: gw.url, userId: "watcher" });
  await c.connect();
  // One request of 250 ids would be refused (too_many_ids).
  await c.subscribe(ids("s", 250));
  await waitFor("the snapshot of all 250", () => ids("s", 250).every((id) => c.get(id)));
  const users = await c.query(ids("q", 150));
  assert.deepEqual(users.map((u) => u.userId), ids("q", 150));
});

test("a subscribe the gateway refuses for good leaves the watchlist", async (t) => {
  const gw = await startGateway(t);
  const c = newClient(t, { url: gw.url, userId: "greedy" });
  await c.connect();
  // A connection watches at most 1000 users: the eleventh request is refused.
  await assert.rejects(c.subscribe(ids("u", 1001)), (err) => {
    assert.equal(err.code, "too_many_subscriptions");
    assert.deepEqual(err.userIds, ["u1000"]);
    return true;
  });
  assert.equal(c.watchlist.length, 1000);
  assert.ok(!c.watchlist.includes("u1000"));
});

test("reconnects across a gateway restart, re-sending the whole watchlist and the status", async (t) => {
  const gw = await startGateway(t);
  const watch = [...ids("w", 150), "bob"];
  const alice = newClient(t, { url: gw.url, userId: "alice", watch, baseMs: 50, capMs: 500 });
  const ev = record(alice);
  await alice.connect();
  await alice.setStatus("away", "lunch");
  // A status the gateway refuses is not the one kept.
  await assert.rejects(alice.setStatus("sleeping"), (err) => err.code === "bad_request");
  await waitFor("the first snapshot", () => watch.every((id) => alice.get(id)));
  const snapshotsBefore = ev.presence.filter((p) => p.user.userId === "w149").length;

  await gw.restart(); // SIGTERM (the drain closes with 1001), then a new process on the same port

  await waitFor("a second welcome", () => ev.welcome.length === 2, 20000);
  assert.ok(ev.state.some((s) => s.state === "waiting"), "no waiting state between the two connections");
  // The new process knows nothing: only a re-sent subscribe brings snapshots
  // and events, and only a re-sent status shows alice away.
  await waitFor("w149's snapshot from the new process", () => ev.presence.filter((p) => p.user.userId === "w149").length > snapshotsBefore);
  const bob = newClient(t, { url: gw.url, userId: "bob" });
  await bob.connect();
  await waitFor("alice sees bob online after the restart", () => alice.get("bob")?.online);
  await waitFor("alice's status restored", async () => {
    const [u] = await gw.presence(["alice"]);
    return u.status === "away" && u.text === "lunch";
  });
});

test("the watch claim: forbidden lists the ids; invisible shows a user offline", async (t) => {
  const secret = "js-client-test-secret";
  const gw = await startGateway(t, { AUTH_JWT_SECRET: secret });
  const tokenFor = (claims) => () => signHS256({ ...claims, exp: Math.floor(Date.now() / 1000) + 3600 }, secret);
  const alice = newClient(t, { url: gw.url, token: tokenFor({ sub: "alice", watch: ["bob"] }) });
  const bob = newClient(t, { url: gw.url, token: tokenFor({ sub: "bob" }) });
  await alice.connect();
  await bob.connect();
  await assert.rejects(alice.subscribe(["bob", "carol"]), (err) => {
    assert.equal(err.code, "forbidden");
    assert.deepEqual(err.forbidden, ["carol"]);
    return true;
  });
  assert.deepEqual(alice.watchlist, []);
  await alice.subscribe(["bob"]);
  await waitFor("alice sees bob online", () => alice.get("bob")?.online === true, 10000);
  await bob.setStatus("invisible");
  await waitFor("alice sees bob offline", () => alice.get("bob")?.online === false, 10000);
  assert.equal(alice.get("bob").status, "offline");
  await bob.setStatus("away");
  await waitFor("alice sees bob away", () => alice.get("bob")?.status === "away", 10000);
});

test("refreshes the token before it expires and keeps the connection", async (t) => {
  const secret = "js-client-test-secret";
  const gw = await startGateway(t, { AUTH_JWT_SECRET: secret, AUTH_JWT_LEEWAY: "0s" });
  const issued = [];
  const token = () => {
    const tok = signHS256({ sub: "alice", exp: Math.floor(Date.now() / 1000) + 3 }, secret);
    issued.push(tok);
    return tok;
  };
  // No userId: the token's sub is the user.
  const c = newClient(t, { url: gw.url, token });
  const ev = record(c);
  const welcome = await c.connect();
  assert.equal(welcome.userId, "alice");
  const firstExp = tokenExpiry(issued[0]);
  // The gateway closes a connection at exp + leeway (checked every 250 ms).
  await waitFor("the first token's expiry to pass", () => Date.now() > firstExp + 1000, 10000);
  assert.ok(issued.length >= 2, `the token function was called ${issued.length} time(s)`);
  assert.equal(ev.welcome.length, 1, "the connection was replaced");
  assert.deepEqual(ev.state.map((s) => s.state), ["connecting", "open"]);
  assert.deepEqual(ev.error, []);
  const [me] = await c.query(["alice"]);
  assert.equal(me.online, true);
});

test("close 4001: gets a fresh token and reconnects at once", async (t) => {
  const secret = "js-client-test-secret";
  const gw = await startGateway(t, { AUTH_JWT_SECRET: secret, AUTH_JWT_LEEWAY: "0s" });
  let good = true;
  const token = () => signHS256({ sub: "carol", exp: Math.floor(Date.now() / 1000) + 2 }, good ? secret : "not-the-secret");
  const c = newClient(t, { url: gw.url, userId: "carol", token });
  const ev = record(c);
  c.on("state", (s) => {
    if (s.state === "waiting" && s.code === 4001) good = true;
  });
  await c.connect();
  good = false; // every refresh before exp is refused: the gateway closes with 4001
  await waitFor("a second welcome", () => ev.welcome.length === 2, 10000);
  assert.ok(ev.error.some((e) => e.code === "invalid_token"), `errors: ${JSON.stringify(ev.error)}`);
  const closes = ev.state.filter((s) => s.state === "waiting");
  assert.equal(closes.length, 1);
  assert.equal(closes[0].code, 4001);
  assert.equal(closes[0].delayMs, 0);
});

test("close 1008: backs off at least half of policyDelayMs", async (t) => {
  const gw = await startGateway(t, { MESSAGE_RATE: "0.5", MESSAGE_BURST: "2" });
  const c = newClient(t, { url: gw.url, userId: "spammer", baseMs: 20, capMs: 100, policyDelayMs: 2000 });
  const ev = record(c);
  await c.connect();
  // Past the rate each frame costs an error (rate_limited, without the id:
  // the gateway does not read such frames); past the error budget it closes
  // with 1008, and the queries still waiting fail.
  const results = await Promise.allSettled(ids("x", 20).map((id) => c.query([id])));
  assert.ok(ev.error.some((e) => e.code === "rate_limited"), `errors: ${JSON.stringify(ev.error)}`);
  assert.ok(results.some((r) => r.status === "rejected" && r.reason.code === "disconnected"));
  const closed = await waitFor("the 1008 close", () => ev.state.find((s) => s.state === "waiting"));
  assert.equal(closed.code, 1008);
  assert.ok(closed.delayMs >= 1000, `retry after ${closed.delayMs} ms; the plain backoff would be at most 20`);
  await waitFor("the reconnect", () => ev.welcome.length === 2, 10000);
});

test("query fails with timeout when the gateway does not answer", async (t) => {
  const gw = await startGateway(t);
  const c = newClient(t, { url: gw.url, userId: "asker" });
  await c.connect();
  t.after(() => gw.thaw());
  await gw.freeze();
  await assert.rejects(c.query(["bob"], { timeoutMs: 300 }), (err) => err.code === "timeout");
  gw.thaw();
  // The late answer is ignored; the next query gets its own.
  const [bob] = await c.query(["bob"]);
  assert.equal(bob.userId, "bob");
  assert.equal(c.state, "open");
});

test("drops an event whose version is not newer than the state it holds", async (t) => {
  const gw = await startGateway(t);
  const relay = await new Relay(gw.url).start();
  t.after(() => relay.stop());
  const alice = newClient(t, { url: relay.url, userId: "alice", watch: ["bob"] });
  const ev = record(alice);
  const bob = newClient(t, { url: gw.url, userId: "bob" });
  await bob.connect();
  await alice.connect();
  await waitFor("alice sees bob online", () => alice.get("bob")?.online);

  // bob's "away" event is held back by the relay and delivered after the
  // newer "busy" one, as if the two had come from two replicas.
  relay.hold((text) => text.includes('"status":"away"'));
  await bob.setStatus("away");
  await waitFor("the away event held", () => relay.held.length === 1);
  await bob.setStatus("busy");
  await waitFor("alice sees bob busy", () => alice.get("bob")?.status === "busy");
  relay.release();
  await alice.query(["bob"]); // answered after the released frame: it has been read

  const stale = ev.stale.find((s) => s.user.status === "away");
  assert.ok(stale, `no stale event for the away state: ${JSON.stringify(ev.stale)}`);
  assert.ok(stale.user.version < stale.current.version);
  assert.equal(alice.get("bob").status, "busy");
  assert.ok(!ev.presence.some((p) => p.user.status === "away"), "the stale state was emitted");
});
