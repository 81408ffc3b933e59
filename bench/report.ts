import {
  BARE,
  BARE_CONTROL,
  type IngressFigures,
  type ScenarioFigures,
  WARM_BASIC,
  WARM_BEARER,
} from "./ingress.ts";
import type { RequestCounts, SweepFigures } from "./workers/figures.ts";

export interface BundleFigures {
  /** As `wrangler deploy --dry-run` prints it: what Cloudflare's size limit applies to. */
  totalUploadKiB: number;
  gzipKiB: number;
}

export interface Figures {
  ingress: IngressFigures;
  requestCounts: Record<string, RequestCounts>;
  sweeps: SweepFigures[];
  bundle: BundleFigures;
}

export interface Target {
  name: string;
  met: boolean;
  measured: string;
}

/** hookgate's performance targets, judged on the figures; a miss is reported, not fatal. */
export function judgeTargets(figures: Figures): Target[] {
  const scenario = (name: string) => findScenario(figures.ingress, name);
  const bare = scenario(BARE);
  const targets: Target[] = [];
  for (const warm of [scenario(WARM_BEARER), scenario(WARM_BASIC)]) {
    const ratio = warm.requestsPerSecond / bare.requestsPerSecond;
    const spread = sliceRatios(warm.sliceRates, bare.sliceRates);
    const interval = meanRatioInterval(warm, bare);
    targets.push({
      name: `${warm.name}: throughput >= 0.90 x bare`,
      met: ratio >= 0.9,
      measured: `${ratio.toFixed(2)} x (${interval}; slices ${spread})`,
    });
    const p99Ratio = (warm.p99Ms ?? Number.POSITIVE_INFINITY) / (bare.p99Ms ?? 0);
    targets.push({
      name: `${warm.name}: p99 <= 1.2 x bare p99`,
      met: p99Ratio <= 1.2,
      measured:
        `${fixed(warm.p99Ms)} ms vs ${fixed(bare.p99Ms)} ms (${p99Ratio.toFixed(2)} x, ` +
        `slices ${sliceRatios(warm.sliceP99Ms, bare.sliceP99Ms)})`,
    });
  }

  const { warm, warmFromKv, garbage, garbageLimited } = figures.requestCounts;
  const warmQueries = (warm?.d1Queries ?? Number.NaN) + (warmFromKv?.d1Queries ?? Number.NaN);
  targets.push({
    name: "zero D1 queries on a warm request",
    met: warmQueries === 0,
    measured: `${warm?.d1Queries} (isolate cache), ${warmFromKv?.d1Queries} (KV)`,
  });
  const writes = [garbage, garbageLimited].map((counts) =>
    counts ? counts.kvWrites + counts.d1Writes : Number.NaN,
  );
  targets.push({
    name: "zero KV/D1 writes for a garbage token",
    met: writes.every((count) => count === 0),
    measured: `${writes[0]} (401), ${writes[1]} (429)`,
  });

  const [smaller, larger] = figures.sweeps;
  if (smaller && larger) {
    const factor = larger.wallMs / smaller.wallMs;
    targets.push({
      name: `sweep: ${larger.accounts / smaller.accounts} x accounts in <= 12 x time`,
      met: larger.finished && factor <= 12,
      measured: `${larger.finished ? "" : "> "}${factor.toFixed(1)} x`,
    });
  }
  targets.push({
    name: "bundle <= 150 KiB gzipped",
    met: figures.bundle.gzipKiB <= 150,
    measured: `${figures.bundle.gzipKiB.toFixed(2)} KiB`,
  });
  return targets;
}

/**
 * Each slice's ratio of a paired scenario's figure to the bare Worker's in the same cycle,
 * as "lowest-highest, median": how far the machine's drift moved one comparison.
 */
function sliceRatios(figures: (number | null)[], bare: (number | null)[]): string {
  const ratios = figures
    .map((figure, slice) => (figure ?? Number.NaN) / (bare[slice] ?? Number.NaN))
    .filter((ratio) => Number.isFinite(ratio))
    .sort((a, b) => a - b);
  if (ratios.length === 0) return "-";
  const middle = ratios.length / 2;
  const median = Number.isInteger(middle)
    ? ((ratios[middle - 1] ?? 0) + (ratios[middle] ?? 0)) / 2
    : (ratios[Math.floor(middle)] ?? 0);
  const [lowest, highest] = [ratios[0] ?? 0, ratios[ratios.length - 1] ?? 0];
  return `${lowest.toFixed(2)}-${highest.toFixed(2)}, median ${median.toFixed(2)}`;
}

/** Student's t for a two-sided 95 % interval, by degrees of freedom (1 to 30). */
const T_95 = [
  12.71, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145,
  2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048,
  2.045, 2.042,
];

/**
 * The 95 % confidence interval of a paired scenario's mean throughput ratio to the bare
 * Worker, on a log scale so that 0.8 and 1.25 weigh alike: how far this run's ratio can be
 * from the one a longer run would find. Slices of one round share their servers, and one
 * copy of a Worker can run a little faster than another throughout, so the interval is
 * taken over the rounds' mean ratios rather than over slices, which would understate it.
 * Past 30 rounds it uses the t of 30, a little wider than exact.
 */
export function meanRatioInterval(scenario: ScenarioFigures, bare: ScenarioFigures): string {
  const byRound = new Map<number, number[]>();
  scenario.sliceRates.forEach((rate, slice) => {
    const logRatio = Math.log(rate / (bare.sliceRates[slice] ?? Number.NaN));
    const round = scenario.sliceRounds[slice];
    if (!Number.isFinite(logRatio) || round !== bare.sliceRounds[slice] || round === undefined) {
      return;
    }
    const logs = byRound.get(round) ?? [];
    logs.push(logRatio);
    byRound.set(round, logs);
  });
  const means = [...byRound.values()].map((logs) => logs.reduce((a, b) => a + b, 0) / logs.length);
  const n = means.length;
  if (n < 2) return "no interval from fewer than 2 rounds";
  const mean = means.reduce((sum, value) => sum + value, 0) / n;
  const variance = means.reduce((sum, value) => sum + (value - mean) ** 2, 0) / (n - 1);
  const t = T_95[Math.min(n - 1, T_95.length) - 1] as number;
  const half = t * Math.sqrt(variance / n);
  return `95 % CI ${Math.exp(mean - half).toFixed(2)}-${Math.exp(mean + half).toFixed(2)}`;
}

export function findScenario(ingress: IngressFigures, name: string): ScenarioFigures {
  const found = ingress.scenarios.find((scenario) => scenario.name === name);
  if (!found) throw new Error(`No figures for the scenario "${name}"`);
  return found;
}

/** The terminal report: one table per measurement, then the targets. */
export function formatReport(figures: Figures, targets: Target[]): string {
  const { ingress } = figures;
  const bare = findScenario(ingress, BARE);
  const control = findScenario(ingress, BARE_CONTROL);
  const lines = [
    `Ingress under wrangler dev (client address seen by the Worker: ${ingress.clientAddressSeen})`,
    ingressTable(ingress.scenarios),
    `Control: a second server of the bare Worker answered ` +
      `${(control.requestsPerSecond / bare.requestsPerSecond).toFixed(2)} x the first ` +
      `(${meanRatioInterval(control, bare)}); differences finer than that are beyond this run.`,
  ];
  const followed = ingress.scenarios.filter((s) => s.consumer);
  if (followed.length > 0) {
    lines.push(
      "",
      "Events consumer runs during the slices (same workerd process as the ingress)",
      consumerTable(followed),
    );
  }
  if (ingress.reloads > 0) {
    lines.push(
      `WARNING: a source file changed during the run and wrangler dev reloaded servers ${ingress.reloads} times.`,
    );
  }
  lines.push(
    "",
    "Binding calls per request (inside workerd, real app, counted local bindings)",
    requestCountsTable(figures.requestCounts),
    "",
    "Idle sweep (all accounts idle, 3 tokens each)",
    sweepTable(figures.sweeps),
    "",
    `Bundle: ${figures.bundle.totalUploadKiB.toFixed(2)} KiB, ${figures.bundle.gzipKiB.toFixed(2)} KiB gzipped`,
    "",
    "Targets",
    table(
      ["target", "measured", ""],
      targets.map((t) => [t.name, t.measured, t.met ? "met" : "MISSED"]),
    ),
  );
  return lines.join("\n");
}

function ingressTable(scenarios: ScenarioFigures[]): string {
  return table(
    [
      "scenario",
      "req/s",
      "1/rate ms",
      "CPU ms/req",
      "runtime ms",
      "p50 ms",
      "p99 ms",
      "slices req/s",
      "slices p99 ms",
      "answers",
      "failed",
    ],
    scenarios.map((s) => [
      s.name,
      s.requestsPerSecond.toFixed(0),
      // With every connection busy, the inverse rate is the machine's time per request:
      // differences between scenarios price what one does more than another.
      (1000 / s.requestsPerSecond).toFixed(2),
      fixed(s.cpuMsPerRequest?.total ?? null, 2),
      fixed(s.cpuMsPerRequest?.runtime ?? null, 2),
      fixed(s.p50Ms),
      fixed(s.p99Ms),
      s.sliceRates.map((rate) => rate.toFixed(0)).join(" "),
      s.sliceP99Ms.map((p99) => fixed(p99, 0)).join(" "),
      statusList(s.statuses),
      failures(s),
    ]),
  );
}

function consumerTable(followed: ScenarioFigures[]): string {
  return table(
    ["scenario", "runs", "mean ms", "longest ms", "slowest 1% overlapping", "faster half"],
    followed.map(({ name, consumer }) => [
      name,
      String(consumer?.invocations ?? 0),
      fixed(consumer?.meanMs ?? null),
      fixed(consumer?.longestMs ?? null, 0),
      percent(consumer?.slowestOverlapping ?? null),
      percent(consumer?.fasterHalfOverlapping ?? null),
    ]),
  );
}

function requestCountsTable(counts: Figures["requestCounts"]): string {
  return table(
    [
      "request",
      "status",
      "D1 queries",
      "D1 writes",
      "KV reads",
      "KV writes",
      "queue sends",
      "limiter",
    ],
    Object.entries(counts).map(([name, c]) => [
      name,
      String(c.status),
      String(c.d1Queries),
      String(c.d1Writes),
      String(c.kvReads),
      String(c.kvWrites),
      String(c.queueSends),
      String(c.limiterCalls),
    ]),
  );
}

function sweepTable(sweeps: Figures["sweeps"]): string {
  return table(
    [
      "accounts",
      "tokens",
      "wall s",
      "finished",
      "invocations",
      "max s/inv",
      "max D1/inv",
      "max KV/inv",
    ],
    sweeps.map((s) => [
      String(s.accounts),
      String(s.tokens),
      (s.wallMs / 1000).toFixed(1),
      s.finished ? "yes" : `no (${s.flaggedAccounts} flagged)`,
      String(s.invocations),
      (s.maxInvocationMs / 1000).toFixed(2),
      String(s.maxD1Queries),
      String(s.maxKvOperations),
    ]),
  );
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? "").length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((width) => "-".repeat(width))), ...rows.map(line)].join(
    "\n",
  );
}

function fixed(value: number | null, digits = 1): string {
  return value === null ? "-" : value.toFixed(digits);
}

function percent(share: number | null): string {
  return share === null ? "-" : `${(share * 100).toFixed(0)} %`;
}

function statusList(statuses: Record<number, number>): string {
  return Object.entries(statuses)
    .map(([status, count]) => `${status}: ${count}`)
    .join(", ");
}

function failures(s: ScenarioFigures): string {
  const unexpected = Object.entries(s.unexpected).map(([status, count]) => `${status}: ${count}`);
  if (s.errors > 0) unexpected.push(`no answer: ${s.errors}`);
  return unexpected.length === 0 ? "0" : unexpected.join(", ");
}
