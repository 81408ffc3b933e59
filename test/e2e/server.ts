import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { freePort, signalGroup, stopProcessGroup, tail } from "./processes";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const WRANGLER = join(ROOT, "node_modules", ".bin", "wrangler");
const READY_TIMEOUT_MS = 90_000;

export interface ServerOptions {
  /**
   * Where the server's own directory goes: the e2e run's directory, whose teardown stops
   * any server a test file left running (see `stopLeftoverServers`).
   */
  parentDir: string;
  /** Names the server's directory, so that a kept one says which server it was. */
  label: string;
  /** Passed as `--var NAME:value`, overriding `[vars]` in wrangler.toml. */
  vars?: Record<string, string>;
}

export interface Server {
  /** e.g. `http://127.0.0.1:40123`. */
  baseUrl: string;
  /** The BOOTSTRAP_TOKEN secret this server runs with. */
  bootstrapToken: string;
  /** Everything wrangler and the Worker printed, appended as it happens. */
  logPath: string;
  /** This server's directory: its state, its log, and room for the tests' own files. */
  dir: string;
  /**
   * Stops wrangler and every process it started. With `remove`, also deletes the server's
   * directory, unless `E2E_KEEP_STATE=1`.
   */
  stop(options: { remove: boolean }): Promise<void>;
}

/** A fresh directory for one e2e run under `.e2e/`, which git ignores. */
export function makeRunDir(): string {
  mkdirSync(join(ROOT, ".e2e"), { recursive: true });
  return mkdtempSync(join(ROOT, ".e2e", "run-"));
}

/**
 * Starts `wrangler dev --test-scheduled` on a free loopback port, with a fresh persist
 * directory (migrations applied) and a random bootstrap secret. Resolves once the Worker
 * answers; on any failure, nothing is left running.
 */
export async function startServer(options: ServerOptions): Promise<Server> {
  const dir = mkdtempSync(join(options.parentDir, `${options.label}-`));
  const persistDir = join(dir, "state");
  const logPath = join(dir, "wrangler.log");
  const bootstrapToken = randomBytes(32).toString("base64url");
  const log = openSync(logPath, "a");

  // Given an env file, wrangler skips .dev.vars, so a developer's local settings stay out.
  const envFile = join(dir, "e2e.env");
  writeFileSync(envFile, `BOOTSTRAP_TOKEN=${bootstrapToken}\n`, { mode: 0o600 });

  let server: ChildProcess | undefined;
  let stopped = false;
  const stop = async ({ remove }: { remove: boolean }) => {
    if (stopped) return;
    stopped = true;
    if (server) await stopTracked(dir, server);
    closeSync(log);
    if (remove && process.env.E2E_KEEP_STATE !== "1") rmSync(dir, { recursive: true, force: true });
  };

  try {
    await runWrangler(
      dir,
      ["d1", "migrations", "apply", "DB", "--local", "--persist-to", persistDir],
      log,
    );

    const port = await freePort();
    const vars = Object.entries(options.vars ?? {}).flatMap(([name, value]) => [
      "--var",
      `${name}:${value}`,
    ]);
    server = spawnWrangler(
      dir,
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
        vars,
        "--show-interactive-dev-session=false",
      ].flat(),
      log,
    );
    const baseUrl = `http://127.0.0.1:${port}`;
    await waitUntilServing(baseUrl, server, logPath);
    return { baseUrl, bootstrapToken, logPath, dir, stop };
  } catch (error) {
    await stop({ remove: false });
    throw error;
  }
}

/**
 * Runs wrangler on this Node (22, from node_modules) rather than whatever `node` is on PATH.
 * `detached` makes it the leader of a process group, so that teardown can stop the workerd
 * processes it spawns together with it.
 */
function spawnWrangler(dir: string, args: string[], log: number): ChildProcess {
  const child = spawn(process.execPath, [WRANGLER, ...args], {
    cwd: ROOT,
    detached: true,
    stdio: ["ignore", log, log],
    // CI=true keeps wrangler from prompting, and from drawing for a terminal nobody watches.
    env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false" },
  });
  if (child.pid !== undefined) writeFileSync(groupFile(dir, child.pid), "");
  return child;
}

/**
 * Each process group a server started is recorded as `<pid>.group` in its directory until
 * it is gone. A test worker that vitest kills (a timeout, a crash) runs no teardown of its
 * own, so the run's teardown, in vitest's main process, finds and stops what is left.
 */
const GROUP_SUFFIX = ".group";
const groupFile = (dir: string, pid: number) => join(dir, `${pid}${GROUP_SUFFIX}`);

async function stopTracked(dir: string, child: ChildProcess) {
  if (child.pid === undefined) return;
  await stopProcessGroup(child.pid);
  rmSync(groupFile(dir, child.pid), { force: true });
}

/** Stops every process group recorded under `runDir`; returns the directories they ran in. */
export async function stopLeftoverServers(runDir: string): Promise<string[]> {
  const stopped: string[] = [];
  for (const entry of readdirSync(runDir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const dir = join(runDir, entry.name);
    for (const name of readdirSync(dir)) {
      if (!name.endsWith(GROUP_SUFFIX)) continue;
      const pid = Number(name.slice(0, -GROUP_SUFFIX.length));
      if (Number.isSafeInteger(pid) && pid > 0 && signalGroup(pid, 0)) {
        await stopProcessGroup(pid);
        stopped.push(dir);
      }
      rmSync(join(dir, name), { force: true });
    }
  }
  return stopped;
}

async function runWrangler(dir: string, args: string[], log: number): Promise<void> {
  const child = spawnWrangler(dir, args, log);
  const [code] = await once(child, "exit");
  await stopTracked(dir, child);
  if (code !== 0) throw new Error(`wrangler ${args.join(" ")} exited with ${code}`);
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
