// Compiled by types.test.js with tsc --noEmit (strict): the declarations in
// src/index.d.ts describe the API the way an application uses it, and
// refuse what it must not do (each @ts-expect-error must be an error).
import {
  PresenceClient, PresenceError, backoffDelay, isValidUserId, tokenExpiry, MAX_IDS_PER_REQUEST,
  type User, type Welcome, type StateEvent,
} from "@presencekit/client";

export async function usage(): Promise<User[]> {
  const client = new PresenceClient({
    url: "wss://presence.example.com/",
    userId: "alice",
    token: async () => "a.b.c",
    watch: ["bob"],
    WebSocket,
    requestTimeoutMs: 5000,
  });
  const off = client.on("presence", ({ user, previous, snapshot }) => {
    const online: boolean = user.online;
    const before: number | undefined = previous?.version;
    void [online, before, snapshot];
  });
  client.on("state", (s: StateEvent) => void s.delayMs);
  client.on("error", (err) => {
    const code: string = err.code;
    void code;
  });
  client.on("stale", ({ user, current }) => void (user.version <= current.version));
  const welcome: Welcome = await client.connect();
  void welcome.heartbeatMs;
  await client.subscribe(["carol", "dave"]);
  await client.setStatus("away", "lunch");
  await client.setStatus("invisible"); // statuses of newer gateways pass
  await client.unsubscribe(["dave"]);
  await client.refresh();
  const ids: string[] = client.watchlist;
  const bob: User | undefined = client.get("bob");
  void [ids, bob, client.state === "open", MAX_IDS_PER_REQUEST === 100];
  void [backoffDelay(3), isValidUserId("x"), tokenExpiry("a.b.c")];
  try {
    return await client.query(["bob"], { timeoutMs: 1000 });
  } catch (err) {
    if (err instanceof PresenceError && err.code === "timeout") return [];
    throw err;
  } finally {
    off();
    client.close();
  }
}

export function misuse(client: PresenceClient): void {
  // @ts-expect-error url is required
  new PresenceClient({ userId: "alice" });
  // @ts-expect-error no such event
  client.on("message", () => {});
  // @ts-expect-error a presence event has no "users"
  client.on("presence", (e) => e.users);
  // @ts-expect-error ids are an array
  void client.subscribe("bob");
  // @ts-expect-error the state is read-only
  client.state = "open";
}
