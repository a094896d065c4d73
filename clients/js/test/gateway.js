// Test helpers: the real presence-gateway binary (built from this repository
// with `go build`), started on free loopback ports with the embedded store;
// HS256 tokens signed with node:crypto; a bounded wait on a condition; and a
// relay that sits between a client and a gateway and can hold frames back.
import { spawn, execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocketNode, { WebSocketServer } from "ws";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

// The WebSocket implementation the client under test uses: the ws package,
// or with PRESENCEKIT_TEST_WEBSOCKET=global the runtime's own (Node 22+, or
// Node 20 with --experimental-websocket): the browser's API.
export const WebSocketImpl = process.env.PRESENCEKIT_TEST_WEBSOCKET === "global" ? globalThis.WebSocket : WebSocketNode;
if (typeof WebSocketImpl !== "function") {
  throw new Error("PRESENCEKIT_TEST_WEBSOCKET=global but this Node has no global WebSocket: run node with --experimental-websocket (Node 20) or use Node 22+");
}

const children = new Set();
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});

let built;
// gatewayBinary builds cmd/presence-gateway once per test file into a
// temporary directory (the Go build cache makes the second file's build a
// link only).
export function gatewayBinary() {
  if (!built) {
    const dir = mkdtempSync(join(tmpdir(), "presencekit-js-test-"));
    const out = join(dir, "presence-gateway");
    try {
      execFileSync("go", ["build", "-o", out, "./cmd/presence-gateway"], { cwd: repoRoot, stdio: ["ignore", "inherit", "inherit"] });
    } catch (err) {
      throw new Error(`go build ./cmd/presence-gateway failed (Go is needed to run these tests): ${err.message}`);
    }
    process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
    built = out;
  }
  return built;
}

// freePort returns a TCP port nothing uses right now on any address: the
// gateway listens on all of them (":port"), and a port free on 127.0.0.1
// may still be the local port of a connection from another loopback
// address.
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

// waitFor polls cond (sync or async) every 20 ms until it returns a truthy
// value, which it returns; it fails after timeoutMs, saying what it waited for.
export async function waitFor(what, cond, timeoutMs = 10000) {
  const end = Date.now() + timeoutMs;
  let last;
  for (let i = 0; ; i++) {
    try {
      last = await cond();
    } catch (err) {
      last = err;
    }
    if (last && !(last instanceof Error)) return last;
    if (Date.now() > end) throw new Error(`after ${timeoutMs} ms (${i} polls): still waiting for ${what}${last instanceof Error ? `: ${last.message}` : ""}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// Gateway is one presence-gateway process. start() runs it on the given (or a
// free) port and waits for /healthz; stop() sends SIGTERM and waits for the
// exit; restart() starts a new process on the same port.
export class Gateway {
  constructor(env = {}) {
    this.env = env;
    this.port = 0;
    this.proc = null;
    this.log = "";
  }

  get url() {
    return `ws://127.0.0.1:${this.port}/`;
  }

  get http() {
    return `http://127.0.0.1:${this.port}`;
  }

  // start runs the gateway on port, or on a free one; another process may
  // take a free port before the gateway binds it, so that case is retried.
  async start(port) {
    for (let tries = 1; ; tries++) {
      try {
        return await this.#start(port ?? (await freePort()));
      } catch (err) {
        if (port !== undefined || tries === 10 || !/address already in use/.test(err.message)) throw err;
      }
    }
  }

  async #start(port) {
    this.port = port;
    this.log = "";
    const metricsPort = await freePort();
    const proc = spawn(gatewayBinary(), [], {
      env: {
        ...process.env,
        WS_PORT: String(this.port),
        METRICS_PORT: String(metricsPort),
        LOG_FORMAT: "text",
        SHUTDOWN_GRACE: "1s",
        ...this.env,
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    children.add(proc);
    proc.stderr.on("data", (b) => {
      this.log += b.toString();
    });
    proc.exited = new Promise((r) => proc.on("close", (code, signal) => {
      children.delete(proc);
      r({ code, signal });
    }));
    this.proc = proc;
    let gone = false;
    proc.exited.then(() => {
      gone = true;
    });
    await waitFor(`gateway on port ${this.port} to answer /healthz`, async () => {
      if (gone) return true;
      const res = await fetch(`${this.http}/healthz`).catch(() => null);
      return res?.status === 200;
    }, 20000);
    if (gone) throw new Error(`gateway exited (${proc.exitCode}) before it answered /healthz:\n${this.log}`);
    return this;
  }

  async stop(signal = "SIGTERM") {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(signal);
    const killer = setTimeout(() => proc.kill("SIGKILL"), 10000);
    await proc.exited;
    clearTimeout(killer);
  }

  // freeze stops the process (SIGSTOP) and waits until every one of its
  // threads is stopped: the signal is delivered asynchronously.
  async freeze() {
    this.proc.kill("SIGSTOP");
    const tasks = `/proc/${this.proc.pid}/task`;
    await waitFor("every thread of the gateway stopped", () => readdirSync(tasks).every((task) => {
      const stat = readFileSync(`${tasks}/${task}/stat`, "utf8");
      return stat.slice(stat.lastIndexOf(")")).startsWith(") T");
    }));
  }

  thaw() {
    this.proc.kill("SIGCONT");
  }

  async restart() {
    await this.stop();
    await this.start(this.port);
  }

  // presence reads users through the HTTP API (GET /v1/presence).
  async presence(ids, token) {
    const q = ids.map((id) => `userId=${encodeURIComponent(id)}`).join("&");
    const res = await fetch(`${this.http}/v1/presence?${q}`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
    if (res.status !== 200) throw new Error(`GET /v1/presence: ${res.status} ${await res.text()}`);
    return (await res.json()).users;
  }
}

// startGateway starts a gateway and stops it when the test ends.
export async function startGateway(t, env = {}) {
  const gw = new Gateway(env);
  t.after(() => gw.stop("SIGKILL"));
  await gw.start();
  return gw;
}

// signHS256 signs claims as an HS256 JWT.
export function signHS256(claims, secret) {
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
  const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${head}.${createHmac("sha256", secret).update(head).digest("base64url")}`;
}

// Relay forwards WebSocket connections to a gateway frame by frame, in both
// directions and in order, except that frames going to the client that match
// a predicate given to hold() are kept back until release(). It stands for
// what the protocol allows: a snapshot and an event of the same user that
// reach the client out of order.
export class Relay {
  constructor(target) {
    this.target = target; // ws://127.0.0.1:port
    this.holding = null;
    this.held = [];
    this.sockets = new Set();
  }

  async start() {
    this.port = await freePort();
    this.server = new WebSocketServer({ host: "127.0.0.1", port: this.port });
    this.server.on("connection", (down, req) => {
      const up = new WebSocketNode(this.target.replace(/\/$/, "") + req.url);
      const queue = [];
      this.sockets.add(down);
      up.on("open", () => {
        for (const m of queue.splice(0)) up.send(m);
      });
      down.on("message", (data) => {
        const text = data.toString();
        if (up.readyState === 1) up.send(text);
        else queue.push(text);
      });
      up.on("message", (data) => {
        const text = data.toString();
        if (this.holding && this.holding(text)) {
          this.held.push({ down, text });
          return;
        }
        down.send(text);
      });
      const closeBoth = (code, reason) => {
        const c = code === 1005 || code === 1006 || !code ? 1000 : code;
        if (down.readyState <= 1) down.close(c, reason);
        if (up.readyState <= 1) up.close(c, reason);
      };
      up.on("close", (code, reason) => closeBoth(code, reason.toString()));
      down.on("close", (code, reason) => closeBoth(code, reason.toString()));
      up.on("error", () => {});
      down.on("error", () => {});
    });
    await new Promise((r) => this.server.on("listening", r));
    return this;
  }

  get url() {
    return `ws://127.0.0.1:${this.port}/`;
  }

  // hold keeps back the next frames to the client for which pred(text) is true.
  hold(pred) {
    this.holding = pred;
  }

  // release stops holding and delivers what was held, in order.
  release() {
    this.holding = null;
    for (const { down, text } of this.held.splice(0)) down.send(text);
  }

  async stop() {
    for (const s of this.sockets) s.terminate();
    await new Promise((r) => this.server.close(r));
  }
}

// record collects a client's events, for assertions and waits.
export function record(client) {
  const events = { state: [], welcome: [], presence: [], stale: [], error: [] };
  for (const type of Object.keys(events)) client.on(type, (d) => events[type].push(d));
  return events;
}
