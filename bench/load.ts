import { Agent, request } from "node:http";

/** One request as the load generator sends it. */
export interface Shot {
  path: string;
  headers: Record<string, string>;
  body: string;
}

export interface LoadOptions {
  baseUrl: string;
  connections: number;
  /** Builds the i-th request of this run. */
  shot: (index: number) => Shot;
  /** Statuses that count as success; anything else, or no answer, is a failure. */
  expected: readonly number[];
  /** Stop starting requests after this long... */
  durationMs?: number;
  /** ...or after this many, whichever comes first. */
  maxRequests: number;
}

export interface LoadResult {
  seconds: number;
  /** Answers with an expected status, by status. */
  statuses: Record<number, number>;
  /** Answers with an unexpected status, by status, and requests that got no answer. */
  unexpected: Record<number, number>;
  errors: number;
  /** Latencies of the expected answers only, in milliseconds. */
  latenciesMs: number[];
  /** When each of those requests was sent, in epoch milliseconds, in the same order. */
  sentAtMs: number[];
}

/** Past this a request counts as failed: a stuck server must not stall the bench. */
const REQUEST_TIMEOUT_MS = 10_000;

/**
 * Closed-loop load: `connections` keep-alive connections, each sending its next request as
 * soon as the previous answer has been read, so the server's speed sets the rate. Bounded by
 * time and by count; throughput and latency count only answers with an expected status.
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const url = new URL(options.baseUrl);
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections });
  const result: LoadResult = {
    seconds: 0,
    statuses: {},
    unexpected: {},
    errors: 0,
    latenciesMs: [],
    sentAtMs: [],
  };
  const started = performance.now();
  const deadline = started + (options.durationMs ?? Number.POSITIVE_INFINITY);
  let issued = 0;

  const loop = async () => {
    while (issued < options.maxRequests && performance.now() < deadline) {
      const shot = options.shot(issued++);
      const sentAt = Date.now();
      const sent = performance.now();
      const status = await send(agent, url, shot);
      const latency = performance.now() - sent;
      if (status === null) result.errors++;
      else if (options.expected.includes(status)) {
        result.statuses[status] = (result.statuses[status] ?? 0) + 1;
        result.latenciesMs.push(latency);
        result.sentAtMs.push(sentAt);
      } else result.unexpected[status] = (result.unexpected[status] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: options.connections }, loop));

  result.seconds = (performance.now() - started) / 1000;
  agent.destroy();
  return result;
}

/** Sends one request and reads its whole answer; resolves to the status, or null on error. */
function send(agent: Agent, url: URL, shot: Shot): Promise<number | null> {
  return new Promise((resolve) => {
    const outgoing = request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        method: "POST",
        path: shot.path,
        headers: { ...shot.headers, "Content-Length": Buffer.byteLength(shot.body) },
        timeout: REQUEST_TIMEOUT_MS,
      },
      (response) => {
        response.on("error", () => resolve(null));
        response.on("end", () => resolve(response.statusCode ?? null));
        response.resume();
      },
    );
    outgoing.on("timeout", () => outgoing.destroy(new Error("timed out")));
    outgoing.on("error", () => resolve(null));
    outgoing.end(shot.body);
  });
}

/** Adds one round's result into a running total; the round itself is left as it was. */
export function mergeLoad(total: LoadResult | undefined, round: LoadResult): LoadResult {
  if (!total) {
    return {
      ...round,
      statuses: { ...round.statuses },
      unexpected: { ...round.unexpected },
      latenciesMs: [...round.latenciesMs],
      sentAtMs: [...round.sentAtMs],
    };
  }
  const add = (into: Record<number, number>, from: Record<number, number>) => {
    for (const [status, count] of Object.entries(from)) {
      into[Number(status)] = (into[Number(status)] ?? 0) + count;
    }
  };
  add(total.statuses, round.statuses);
  add(total.unexpected, round.unexpected);
  total.errors += round.errors;
  total.seconds += round.seconds;
  for (const latency of round.latenciesMs) total.latenciesMs.push(latency);
  for (const sentAt of round.sentAtMs) total.sentAtMs.push(sentAt);
  return total;
}

/** The q-th quantile (0..1) of the samples by the nearest-rank method, or null if none. */
export function quantile(samples: readonly number[], q: number): number | null {
  if (samples.length === 0) return null;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1] ?? null;
}
