import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import {
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { constants } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { freePort, signalGroup, stopProcessGroup, tail } from "../test/e2e/processes.ts";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = join(ROOT, "node_modules", ".bin");
const READY_TIMEOUT_MS = 90_000;

/** Every process group this bench started and has not stopped yet. */
const groups = new Set<ChildProcess>();

/**
 * Stops every group on Ctrl-C or `kill`, then runs `cleanUp`, and kills what is left if this
 * process exits by any other path, so that no workerd outlives the bench.
 */
export function stopEverythingOnExit(cleanUp: () => void) {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, async () => {
      console.error(`\n${signal}: stopping the servers…`);
      await Promise.all([...groups].map(stopGroup));
      cleanUp();
      process.exit(128 + constants.signals[signal]);
    });
  }
  process.once("exit", () => {
    for (const child of groups) signalGroup(child.pid, "SIGKILL");
  });
}

/**
 * Runs a tool from node_modules/.bin on this Node (22, chosen by npm) in its own process
 * group, so that stopping it also stops the workerd processes it starts.
 */
export function spawnTool(
  tool: string,
  args: string[],
  logPath: string,
  env: Record<string, string> = {},
): ChildProcess {
  const log = openSync(logPath, "a");
  const child = spawn(process.execPath, [join(BIN, tool), ...args], {
    cwd: ROOT,
    detached: true,
    stdio: ["ignore", log, log],
    // CI=true keeps wrangler from prompting and from drawing for a terminal nobody watches.
    env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false", ...env },
  });
  closeSync(log);
  groups.add(child);
  return child;
}

/** Runs a tool to its end; throws with the log's tail if it fails. */
export async function runTool(tool: string, args: string[], logPath: string) {
  const child = spawnTool(tool, args, logPath);
  const [code] = await once(child, "exit");
  await stopGroup(child);
  if (code !== 0)
    throw new Error(`${tool} ${args.join(" ")} exited with ${code}:\n${tail(logPath)}`);
}

/** Stops a group this bench started, and forgets it. */
export async function stopGroup(child: ChildProcess) {
  groups.delete(child);
  await stopProcessGroup(child.pid);
}

export interface DevServer {
  baseUrl: string;
  logPath: string;
  /** CPU its processes have used so far, or null where /proc is missing. */
  cpu(): ServerCpu | null;
  stop(): Promise<void>;
}

export interface DevServerOptions {
  /** Names the server's log file and persist directory inside `dir`. */
  label: string;
  dir: string;
  configPath: string;
  /** A Worker entry to run in place of the configuration's `main`. */
  script?: string;
  /** Passed as `--var NAME:value`. */
  vars?: Record<string, string>;
  /** Applies the D1 migrations to the fresh persist directory first. */
  migrate?: boolean;
  /** Resolves true once the Worker answers as expected. */
  isReady: (baseUrl: string) => Promise<boolean>;
  /** Keeps wrangler's local trace recorder on; `startDevServer` turns it off otherwise. */
  localTraces?: boolean;
}

/** How often a start that lost its port to another process is tried again. */
const PORT_RACE_RETRIES = 2;

/** wrangler could not bind a port that was free a moment before. */
class PortTaken extends Error {
  override name = "PortTaken";
}

/**
 * Starts a dev server, again on new ports when another process took one of them between
 * `freePort` and wrangler's bind: the bench starts seven servers at once, every round.
 */
export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await startOnce(options);
    } catch (error) {
      if (!(error instanceof PortTaken) || attempt >= PORT_RACE_RETRIES) throw error;
      console.error(`${options.label}: a port was taken meanwhile; starting again`);
    }
  }
}

/**
 * Whether wrangler reported a port already in use since `offset` in its log. Such a
 * wrangler does not always exit: its esbuild can deadlock and leave it hanging.
 */
function lostPort(logPath: string, offset: number): boolean {
  return readFileSync(logPath).subarray(offset).includes("Address already in use");
}

/**
 * Starts `wrangler dev` on a free loopback port with its own persist directory. An env file
 * makes wrangler skip a developer's `.dev.vars`, so local settings stay out of the figures.
 */
async function startOnce(options: DevServerOptions): Promise<DevServer> {
  const logPath = join(options.dir, `${options.label}.log`);
  const envFile = join(options.dir, `${options.label}.env`);
  const vars = Object.entries(options.vars ?? {});
  writeFileSync(envFile, vars.map(([name, value]) => `${name}=${value}\n`).join(""), {
    mode: 0o600,
  });
  const persistDir = join(options.dir, `${options.label}-state`);
  if (options.migrate) {
    const migrate = ["d1", "migrations", "apply", "DB", "--local", "--persist-to", persistDir];
    await runTool("wrangler", [...migrate, "--config", options.configPath], logPath);
  }
  // The log holds earlier attempts too; only what this attempt writes tells of its port.
  const logOffset = existsSync(logPath) ? statSync(logPath).size : 0;
  const port = await freePort();
  const child = spawnTool(
    "wrangler",
    [
      "dev",
      options.script ? [options.script] : [],
      ["--config", options.configPath],
      ["--ip", "127.0.0.1"],
      ["--port", String(port)],
      // The inspector defaults to 9229, which a developer's own `wrangler dev` may hold.
      ["--inspector-port", String(await freePort())],
      ["--persist-to", persistDir],
      ["--env-file", envFile],
      vars.flatMap(([name, value]) => ["--var", `${name}:${value}`]),
      "--show-interactive-dev-session=false",
    ].flat(),
    logPath,
    { X_LOCAL_OBSERVABILITY: String(options.localTraces ?? false) },
  );
  const baseUrl = `http://127.0.0.1:${port}`;
  const server = {
    baseUrl,
    logPath,
    cpu: () => groupCpu(child.pid, port),
    stop: () => stopGroup(child),
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) break;
    if (lostPort(logPath, logOffset)) break;
    if (await options.isReady(baseUrl).catch(() => false)) return server;
    await sleep(250);
  }
  await server.stop();
  if (lostPort(logPath, logOffset))
    throw new PortTaken(`${options.label}: a port was taken before wrangler bound it`);
  throw new Error(`${options.label}: wrangler dev did not become ready:\n${tail(logPath)}`);
}

/** CPU seconds a dev server's processes have used, by what they do. */
export interface ServerCpu {
  /** The workerd that runs the Worker with its local bindings, queue simulator and consumer. */
  runtime: number;
  /** The workerd in front of it, through which `wrangler dev` proxies every request. */
  proxy: number;
  /** wrangler's Node process, which logs each request, and its esbuild. */
  tooling: number;
}

let clockTicksPerSecond: number | undefined;

/**
 * User and system CPU time of every live process in a server's process group, read from
 * /proc (so Linux only). The proxy is the workerd listening on the server's own port.
 */
function groupCpu(group: number | undefined, port: number): ServerCpu | null {
  if (group === undefined) return null;
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
    clockTicksPerSecond ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }));
  } catch {
    return null;
  }
  const listensOnPort = (arg: string) =>
    arg.startsWith("--socket-addr=entry=") && arg.endsWith(`:${port}`);
  const cpu: ServerCpu = { runtime: 0, proxy: 0, tooling: 0 };
  for (const pid of pids) {
    let fields: string[];
    let args: string[];
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      // Fields after the command name, which may itself hold spaces and parentheses.
      fields = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
      if (Number(fields[2]) !== group) continue;
      args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // exited meanwhile
    }
    const seconds = (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond;
    if (!args.some((arg) => arg.endsWith("/workerd"))) cpu.tooling += seconds;
    else if (args.some(listensOnPort)) cpu.proxy += seconds;
    else cpu.runtime += seconds;
  }
  return cpu;
}
