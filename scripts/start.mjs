// Runs hookgate locally on embedded D1, KV, R2 and queues: ensures a bootstrap secret,
// applies migrations, tells how to create the first admin, then hands over to `wrangler dev`.
// Extra arguments go to `wrangler dev`: `npm start -- --persist-to .state --port 9000`.
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { constants } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { bootstrapHint } from "./bootstrap-hint.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const wrangler = join(root, "node_modules", ".bin", "wrangler");
const devVarsPath = join(root, ".dev.vars");
const extraArgs = process.argv.slice(2);

/** The value of `--name value` or `--name=value` among the extra arguments, if given. */
function flagValue(name) {
  for (const [index, arg] of extraArgs.entries()) {
    if (arg === name) return extraArgs[index + 1];
    if (arg.startsWith(`${name}=`)) return arg.slice(name.length + 1);
  }
  return undefined;
}

/** Runs wrangler on the same Node as this script, which npm chose from node_modules. */
function runWrangler(args, options = {}) {
  return spawnSync(process.execPath, [wrangler, ...args], { cwd: root, ...options });
}

/** Returns the bootstrap secret from .dev.vars, adding a fresh one if there is none. */
function ensureBootstrapToken() {
  const text = existsSync(devVarsPath) ? readFileSync(devVarsPath, "utf8") : "";
  const found = text.match(/^BOOTSTRAP_TOKEN=(.*)$/m);
  if (found) return found[1].trim().replace(/^(["'])(.*)\1$/, "$2");

  const token = randomBytes(32).toString("base64url");
  const separator = text === "" || text.endsWith("\n") ? "" : "\n";
  // The mode applies only when the file is created: it holds secrets, so only its owner reads it.
  appendFileSync(devVarsPath, `${separator}BOOTSTRAP_TOKEN=${token}\n`, { mode: 0o600 });
  console.log("Wrote a new BOOTSTRAP_TOKEN to .dev.vars.");
  return token;
}

/** Counts accounts in the local database, or returns null if the count could not be read. */
function countUsers(persistArgs) {
  const sql = "select count(*) as n from users";
  const result = runWrangler(
    ["d1", "execute", "DB", "--local", ...persistArgs, "--command", sql, "--json"],
    { encoding: "utf8" },
  );
  try {
    return Number(JSON.parse(result.stdout)[0].results[0].n);
  } catch {
    return null;
  }
}

const token = ensureBootstrapToken();
const persistTo = flagValue("--persist-to");
const persistArgs = persistTo === undefined ? [] : ["--persist-to", persistTo];
const port = flagValue("--port") ?? "8787";
const portArgs = flagValue("--port") === undefined ? ["--port", port] : [];

// `migrations apply` asks for confirmation on a terminal; CI=true makes it proceed unasked.
const migrated = runWrangler(["d1", "migrations", "apply", "DB", "--local", ...persistArgs], {
  stdio: "inherit",
  env: { ...process.env, CI: "true" },
});
if (migrated.status !== 0) {
  console.error("Applying the local D1 migrations failed; not starting the server.");
  process.exit(migrated.status ?? 1);
}

const users = countUsers(persistArgs);
if (users === 0) {
  console.log(bootstrapHint({ baseUrl: `http://localhost:${port}`, bootstrapToken: token }).text);
} else if (users === null) {
  console.warn("Could not count the local accounts; see `npm run db:migrate` if requests fail.");
}

const dev = spawn(
  process.execPath,
  [wrangler, "dev", "--test-scheduled", ...portArgs, ...extraArgs],
  { cwd: root, stdio: "inherit" },
);

// A terminal's Ctrl-C reaches wrangler directly; `kill <pid>` of this script does not, so pass
// it on and stay alive until wrangler has stopped workerd and exited.
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => dev.kill(signal));
}
dev.on("exit", (code, signal) => {
  process.exit(code ?? 128 + (signal ? constants.signals[signal] : 1));
});
