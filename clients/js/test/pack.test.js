// `npm pack` makes the tarball that would be published; it must install into
// an empty project without the network (it has no dependencies) and import
// there, in JavaScript and in TypeScript.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const npm = process.platform === "win32" ? "npm.cmd" : "npm";

function run(cmd, args, cwd) {
  try {
    return execFileSync(cmd, args, { cwd, encoding: "utf8", env: { ...process.env, npm_config_update_notifier: "false", npm_config_fund: "false", npm_config_audit: "false" } });
  } catch (err) {
    assert.fail(`${cmd} ${args.join(" ")} (in ${cwd}) failed:\n${err.stdout}${err.stderr}`);
  }
}

test("the packed tarball installs offline into an empty project and imports", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "presencekit-pack-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const [packed] = JSON.parse(run(npm, ["pack", "--json", "--pack-destination", dir], pkgDir));
  assert.deepEqual(packed.files.map((f) => f.path).sort(), ["README.md", "package.json", "src/index.d.ts", "src/index.js"]);

  const app = join(dir, "app");
  run("mkdir", ["-p", app], dir);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  run(npm, ["install", "--offline", "--no-package-lock", join(dir, packed.filename)], app);
  const installed = JSON.parse(readFileSync(join(app, "node_modules", "@presencekit", "client", "package.json"), "utf8"));
  assert.equal(installed.name, "@presencekit/client");
  assert.deepEqual(installed.dependencies ?? {}, {}, "the package must have no runtime dependencies");

  writeFileSync(join(app, "main.js"), `
    import { PresenceClient, MAX_IDS_PER_REQUEST } from "@presencekit/client";
    const c = new PresenceClient({ url: "ws://127.0.0.1:1/", userId: "alice", WebSocket: class {} });
    console.log(JSON.stringify({ state: c.state, max: MAX_IDS_PER_REQUEST }));
  `);
  assert.deepEqual(JSON.parse(run(process.execPath, ["main.js"], app)), { state: "closed", max: 100 });

  // TypeScript finds the declarations through the package's exports.
  writeFileSync(join(app, "main.ts"), `
    import { PresenceClient, type User } from "@presencekit/client";
    const c = new PresenceClient({ url: "ws://127.0.0.1:1/", userId: "alice" });
    export const first: Promise<User[]> = c.query(["bob"]);
  `);
  writeFileSync(join(app, "tsconfig.json"), JSON.stringify({
    compilerOptions: { strict: true, noEmit: true, module: "nodenext", moduleResolution: "nodenext", target: "es2022", lib: ["es2022"], types: [] },
    files: ["main.ts"],
  }));
  run(process.execPath, [join(pkgDir, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"], app);
});
