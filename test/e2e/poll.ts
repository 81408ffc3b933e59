import { setTimeout as sleep } from "node:timers/promises";

/**
 * Calls `attempt` every `intervalMs` until it returns something other than undefined,
 * and returns that. Fails naming `what` once `timeoutMs` passed, with the last `attempt`'s
 * error if it threw.
 */
export async function eventually<T>(
  what: string,
  attempt: () => Promise<T | undefined>,
  { timeoutMs = 20_000, intervalMs = 250 } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let last: unknown;
    try {
      const result = await attempt();
      if (result !== undefined) return result;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`Not ${what} within ${timeoutMs} ms`, { cause: last });
    }
    await sleep(intervalMs);
  }
}
