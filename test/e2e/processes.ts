// Process plumbing shared by the end-to-end harness and the benchmark, which both run
// `wrangler dev` in process groups of their own. Only node: imports, so that Node runs it
// as it is (the benchmark) as well as Vite (the tests).
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

const STOP_TIMEOUT_MS = 10_000;

/**
 * Signals every process in the group that `leader` started; returns false once none is
 * left. Without a pid the spawn failed, and -0 would signal the caller's own group.
 */
export function signalGroup(leader: number | undefined, signal: NodeJS.Signals | 0): boolean {
  if (leader === undefined || leader <= 0) return false;
  try {
    process.kill(-leader, signal);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM to the whole group, SIGKILL to whatever is left after a grace period. */
export async function stopProcessGroup(leader: number | undefined): Promise<void> {
  if (!signalGroup(leader, "SIGTERM")) return;
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!signalGroup(leader, 0)) return;
    await sleep(100);
  }
  signalGroup(leader, "SIGKILL");
}

/** A loopback port that was free a moment ago. */
export async function freePort(): Promise<number> {
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

/** The last lines of a log, for an error message. */
export function tail(path: string, lines = 40): string {
  try {
    return readFileSync(path, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}
