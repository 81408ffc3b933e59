import { closeSync, openSync, readSync, statSync } from "node:fs";

/** One run of a queue consumer, as `wrangler dev` reports it when the batch is settled. */
export interface ConsumerInvocation {
  /** When the report reached the log, in epoch milliseconds: the invocation's end. */
  endedAt: number;
  durationMs: number;
}

export interface ConsumerFigures {
  invocations: number;
  meanMs: number | null;
  longestMs: number | null;
  /** Of the answers at or above the scenario's p99, the share that overlapped a run. */
  slowestOverlapping: number | null;
  /** The same share among the faster half of the answers, for comparison. */
  fasterHalfOverlapping: number | null;
}

const POLL_MS = 5;
const CHUNK_BYTES = 64 * 1024;

/**
 * Follows a `wrangler dev` log and notes each `QUEUE <queue> <acked>/<total> (<n>ms)` line
 * as it arrives, polling every few milliseconds, so that the bench can tell which requests
 * were in flight while the consumer ran in the same workerd process.
 */
export function followConsumer(logPath: string, queue: string) {
  const report = new RegExp(`QUEUE ${queue} \\d+/\\d+ \\((\\d+)ms\\)`);
  const fd = openSync(logPath, "r");
  const buffer = Buffer.alloc(CHUNK_BYTES);
  const seen: ConsumerInvocation[] = [];
  let offset = statSync(logPath).size;
  let partial = "";
  const poll = () => {
    for (;;) {
      const read = readSync(fd, buffer, 0, CHUNK_BYTES, offset);
      if (read === 0) return;
      offset += read;
      const lines = (partial + buffer.toString("utf8", 0, read)).split("\n");
      partial = lines.pop() ?? "";
      const now = Date.now();
      for (const line of lines) {
        const match = report.exec(line);
        if (match) seen.push({ endedAt: now, durationMs: Number(match[1]) });
      }
    }
  };
  const timer = setInterval(poll, POLL_MS);
  return {
    stop(): ConsumerInvocation[] {
      clearInterval(timer);
      poll();
      closeSync(fd);
      return seen;
    },
  };
}

/**
 * How the consumer's runs line up with the answers of a load: requests are given by when
 * they were sent and how long they took, both in milliseconds.
 */
export function consumerFigures(
  invocations: readonly ConsumerInvocation[],
  sentAt: readonly number[],
  latencies: readonly number[],
): ConsumerFigures {
  const durations = invocations.map((run) => run.durationMs);
  const windows = invocations.map((run) => [run.endedAt - run.durationMs, run.endedAt] as const);
  const latency = (index: number) => latencies[index] ?? 0;
  const overlaps = (index: number) => {
    const start = sentAt[index] ?? 0;
    const end = start + latency(index);
    return windows.some(([from, to]) => start < to && end > from);
  };
  const order = latencies.map((_, index) => index).sort((a, b) => latency(a) - latency(b));
  const share = (indices: number[]) =>
    indices.length === 0 ? null : indices.filter(overlaps).length / indices.length;
  // From the nearest-rank p99 up, as `quantile` picks it.
  const slowest = order.slice(Math.max(0, Math.ceil(order.length * 0.99) - 1));
  const fasterHalf = order.slice(0, Math.floor(order.length / 2));
  return {
    invocations: invocations.length,
    meanMs: durations.length === 0 ? null : durations.reduce((a, b) => a + b, 0) / durations.length,
    longestMs: durations.length === 0 ? null : Math.max(...durations),
    slowestOverlapping: share(slowest),
    fasterHalfOverlapping: share(fasterHalf),
  };
}
