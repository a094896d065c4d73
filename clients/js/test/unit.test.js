// The client's pure logic, and its declarations: no gateway needed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as client from "../src/index.js";
import { PresenceClient, PresenceError, backoffDelay, isValidUserId, tokenExpiry } from "../src/index.js";
import { signHS256 } from "./gateway.js";

const here = dirname(fileURLToPath(import.meta.url));

test("backoffDelay doubles up to the cap and stays within [ceiling/2, ceiling]", () => {
  for (let attempt = 0; attempt < 40; attempt++) {
    const ceiling = Math.min(30000, 500 * 2 ** attempt);
    assert.equal(backoffDelay(attempt, { random: () => 0 }), ceiling / 2);
    assert.equal(backoffDelay(attempt, { random: () => 0.999999 }), Math.round(ceiling / 2 + (0.999999 * ceiling) / 2));
  }
  assert.equal(backoffDelay(0, { random: () => 0 }), 250);
  assert.equal(backoffDelay(3, { random: () => 0 }), 2000);
  assert.equal(backoffDelay(Infinity, { random: () => 1 }), 30000);
  assert.equal(backoffDelay(-5, { random: () => 1 }), 500);
  assert.equal(backoffDelay(2, { baseMs: 100, capMs: 300, random: () => 1 }), 300);
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

test("tokenExpiry reads exp without verifying", () => {
  assert.equal(tokenExpiry(signHS256({ sub: "a", exp: 1764190000 }, "k")), 1764190000000);
  assert.equal(tokenExpiry(signHS256({ sub: "ü€", exp: 5 }, "k")), 5000); // UTF-8 claims
  assert.equal(tokenExpiry(signHS256({ sub: "a" }, "k")), undefined);
  assert.equal(tokenExpiry(signHS256({ sub: "a", exp: "soon" }, "k")), undefined);
  for (const bad of ["", "a.b", "a.!!!.c", "a.b.c.d", undefined]) assert.equal(tokenExpiry(bad), undefined, String(bad));
});

test("the constructor refuses what cannot work, saying why", () => {
  const WebSocket = class {};
  assert.throws(() => new PresenceClient({ userId: "a", WebSocket }), /url is required/);
  assert.throws(() => new PresenceClient({ url: "ws://x/", WebSocket }), /userId or options.token/);
  assert.throws(() => new PresenceClient({ url: "ws://x/", userId: "a b", WebSocket }), /not a valid user id/);
  assert.throws(() => new PresenceClient({ url: "ws://x/", userId: "a", watch: ["ok", "no way"], WebSocket }), /"no way" is not a valid user id/);
  assert.throws(() => new PresenceClient({ url: "ws://x/", userId: "a", token: 7, WebSocket }), /token must be a function/);
  if (typeof globalThis.WebSocket !== "function") {
    assert.throws(() => new PresenceClient({ url: "ws://x/", userId: "a" }), /pass options.WebSocket/);
  }
  const c = new PresenceClient({ url: "ws://x/", userId: "a", watch: ["b", "c", "b"], WebSocket });
  assert.deepEqual(c.watchlist, ["b", "c"]);
  assert.equal(c.state, "closed");
  assert.throws(() => c.subscribe("bob"), /array of user ids/);
  assert.throws(() => c.setStatus(""), /non-empty string/);
});

test("requests without a connection: the watchlist and status wait, a query fails", async () => {
  const c = new PresenceClient({ url: "ws://x/", userId: "a", WebSocket: class {} });
  await c.subscribe(["b"]);
  await c.setStatus("away");
  assert.deepEqual(c.watchlist, ["b"]);
  await assert.rejects(c.query(["b"]), (err) => err instanceof PresenceError && err.code === "not_connected");
  await c.unsubscribe(["b"]);
  assert.deepEqual(c.watchlist, []);
});

test("index.d.ts declares exactly what index.js exports", () => {
  const dts = readFileSync(join(here, "..", "src", "index.d.ts"), "utf8");
  const declared = [...dts.matchAll(/^export declare (?:const|class|function) (\w+)/gm)].map((m) => m[1]).sort();
  assert.deepEqual(Object.keys(client).sort(), declared);
});

test("index.d.ts type-checks an application's use of the API (tsc --strict)", () => {
  const tsc = join(here, "..", "node_modules", "typescript", "bin", "tsc");
  try {
    execFileSync(process.execPath, [tsc, "-p", join(here, "types", "tsconfig.json")], { encoding: "utf8" });
  } catch (err) {
    assert.fail(`tsc found errors:\n${err.stdout}${err.stderr}`);
  }
});
