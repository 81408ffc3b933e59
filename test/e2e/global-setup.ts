import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const WRANGLER = join(ROOT, "node_modules", ".bin", "wrangler");
const READY_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 10_000;

/**
 * Starts one `wrangler dev` for the whole e2e run, on a free port and a fresh persist
 * directory under `.e2e/` (git-ignored), with wrangler's output in `wrangler.log` there.
 * The directory is removed afterwards, unless a test failed or `E2E_KEEP_STATE=1`.
 */
export default async function setup(project: TestProject) {
  mkdirSync(join(ROOT, ".e2e"), { recursive: true });
  const dir = mkdtempSync(join(ROOT, ".e2e", "run-"));
  const persistDir = join(dir, "state");
  const logPath = join(dir, "wrangler.log");
  const bootstrapToken = randomBytes(32).toString("base64url");
  const log = openSync(logPath, "a");

  // Given an env file, wrangler skips .dev.vars, so a developer's local settings stay out.
  const envFile = join(dir, "e2e.env");
  writeFileSync(envFile, `BOOTSTRAP_TOKEN=${bootstrapToken}\n`, { mode: 0o600 });

  let server: ChildProcess | undefined;
  const stop = async () => {
    if (server) await stopProcessGroup(server);
    closeSync(log);
    // `state` is marked experimental in vitest; it is pinned, and this only decides cleanup.
    const failed = project.vitest.state.getCountOfFailedTests() > 0;
    if (failed || process.env.E2E_KEEP_STATE === "1") {
      console.log(`wrangler's log and state from the e2e run are kept in ${dir}`);
    } else {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  try {
    await runWrangler(
      ["d1", "migrations", "apply", "DB", "--local", "--persist-to", persistDir],
      log,
    );

    const port = await freePort();
    server = spawnWrangler(
      [
        "dev",
        "--test-scheduled",
        ["--ip", "127.0.0.1"],
        ["--port", String(port)],
        // The inspector defaults to 9229, which a developer's own `npm start` may hold.
        ["--inspector-port", String(await freePort())],
        ["--persist-to", persistDir],
        ["--env-file", envFile],
        // A --var outranks a BOOTSTRAP_TOKEN inherited from the environment.
        ["--var", `BOOTSTRAP_TOKEN:${bootstrapToken}`],
        "--show-interactive-dev-session=false",
      ].flat(),
      log,
    );
    const baseUrl = `http://127.0.0.1:${port}`;
    await waitUntilServing(baseUrl, server, logPath);

    project.provide("baseUrl", baseUrl);
    project.provide("bootstrapToken", bootstrapToken);
    project.provide("wranglerLogPath", logPath);
  } catch (error) {
    await stop();
    throw error;
  }

  return stop;
}

/**
 * Runs wrangler on this Node (22, from node_modules) rather than whatever `node` is on PATH.
 * `detached` makes it the leader of a process group, so that teardown can stop the workerd
 * processes it spawns together with it.
 */
function spawnWrangler(args: string[], log: number): ChildProcess {
  return spawn(process.execPath, [WRANGLER, ...args], {
    cwd: ROOT,
    detached: true,
    stdio: ["ignore", log, log],
    // CI=true keeps wrangler from prompting, and from drawing for a terminal nobody watches.
    env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false" },
  });
}

async function runWrangler(args: string[], log: number): Promise<void> {
  const [code] = await once(spawnWrangler(args, log), "exit");
  if (code !== 0) throw new Error(`wrangler ${args.join(" ")} exited with ${code}`);
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", resolve);
  });
  const address = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  if (address === null || typeof address === "string") throw new Error("No port was assigned");
  return address.port;
}

/** Polls the OpenAPI document, which needs the Worker built and loaded, until it answers 200. */
async function waitUntilServing(baseUrl: string, server: ChildProcess, logPath: string) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (server.exitCode !== null || server.signalCode !== null) {
      throw new Error(`wrangler dev exited early:\n${tail(logPath)}`);
    }
    try {
      const response = await fetch(`${baseUrl}/v1/openapi.json`);
      await response.body?.cancel();
      if (response.status === 200) return;
    } catch {
      // Not listening yet.
    }
    await sleep(250);
  }
  throw new Error(`wrangler dev did not answer within ${READY_TIMEOUT_MS} ms:\n${tail(logPath)}`);
}

/** Sends SIGTERM to the whole process group, then SIGKILL to whatever is left. */
async function stopProcessGroup(child: ChildProcess) {
  // Without a pid the spawn failed; and -0 would signal this process's own group.
  if (child.pid === undefined) return;
  const group = -child.pid;
  if (!signalGroup(group, "SIGTERM")) return;
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!signalGroup(group, 0)) return;
    await sleep(100);
  }
  signalGroup(group, "SIGKILL");
}

/** Returns false once the group has no processes left. */
function signalGroup(group: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(group, signal);
    return true;
  } catch {
    return false;
  }
}

function tail(path: string, lines = 40): string {
  return readFileSync(path, "utf8").split("\n").slice(-lines).join("\n");
}
