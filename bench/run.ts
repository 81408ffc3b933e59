// `npm run bench`: loads hookgate and a bare Worker under `wrangler dev`, counts binding calls
// and times the idle sweep inside workerd, measures the bundle, then prints the figures, the
// targets met or missed, and writes bench/results.json. Settings come from the environment:
// BENCH_ROUNDS, BENCH_CYCLES, BENCH_SECONDS, BENCH_CONNECTIONS, BENCH_COLD_TOKENS,
// BENCH_SWEEP_CAP_FACTOR, and BENCH_LOCAL_TRACES=1 to keep wrangler's local trace recorder on.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { tail } from "../test/e2e/processes.ts";
import { BARE, type LoadSettings, measureIngress, WARM_BEARER } from "./ingress.ts";
import { ROOT, runTool, stopEverythingOnExit } from "./processes.ts";
import {
  type BundleFigures,
  type Figures,
  findScenario,
  formatReport,
  judgeTargets,
} from "./report.ts";
import type { RequestCounts, SweepFigures, WorkerFigures } from "./workers/figures.ts";

const RESULTS_PATH = join(ROOT, "bench", "results.json");

function setting(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
}

/** Runs the workerd bench files and returns the figures they left in their tasks' meta. */
async function measureInWorkerd(dir: string) {
  const reportPath = join(dir, "workerd-figures.json");
  await runTool(
    "vitest",
    [
      ...["run", "--config", "bench/vitest.config.ts"],
      ...["--reporter=dot", "--reporter=json", `--outputFile.json=${reportPath}`],
    ],
    join(dir, "workerd.log"),
  );
  const report = JSON.parse(readFileSync(reportPath, "utf8")) as {
    testResults: { assertionResults: { meta: { figures?: WorkerFigures } }[] }[];
  };
  let requestCounts: Record<string, RequestCounts> = {};
  const sweeps: SweepFigures[] = [];
  for (const file of report.testResults) {
    for (const { meta } of file.assertionResults) {
      if (meta.figures?.requestCounts) requestCounts = meta.figures.requestCounts;
      if (meta.figures?.sweep) sweeps.push(meta.figures.sweep);
    }
  }
  sweeps.sort((a, b) => a.accounts - b.accounts);
  return { requestCounts, sweeps };
}

/** The Worker as `wrangler deploy` would upload it, without uploading anything. */
async function measureBundle(dir: string): Promise<BundleFigures> {
  const logPath = join(dir, "deploy-dry-run.log");
  await runTool("wrangler", ["deploy", "--dry-run", "--outdir", join(dir, "bundle")], logPath);
  const sizes = /Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/.exec(
    readFileSync(logPath, "utf8"),
  );
  if (!sizes) throw new Error(`No "Total Upload" line in wrangler's output:\n${tail(logPath)}`);
  return { totalUploadKiB: Number(sizes[1]), gzipKiB: Number(sizes[2]) };
}

/** The commit measured, and whether `src/` differed from it: others may be editing it. */
function sourceVersion() {
  const git = (...args: string[]) => execFileSync("git", args, { cwd: ROOT, encoding: "utf8" });
  return {
    commit: git("rev-parse", "HEAD").trim(),
    srcChanged: git("status", "--porcelain", "--", "src").trim() !== "",
  };
}

async function main() {
  const started = performance.now();
  const settings: LoadSettings = {
    // 8 rounds of 3 cycles over the 6 paired scenarios: 24 cycles, two full turns of
    // `cycleOrder`, so that every paired scenario runs in every place of a cycle alike.
    rounds: setting("BENCH_ROUNDS", 8),
    cyclesPerRound: setting("BENCH_CYCLES", 3),
    secondsPerSlice: setting("BENCH_SECONDS", 5),
    connections: setting("BENCH_CONNECTIONS", 16),
    coldTokens: setting("BENCH_COLD_TOKENS", 240),
    localTraces: process.env.BENCH_LOCAL_TRACES === "1",
  };
  const dir = mkdtempSync(join(tmpdir(), "hookgate-bench-"));
  stopEverythingOnExit(() => rmSync(dir, { recursive: true, force: true }));
  let succeeded = false;
  try {
    console.log(
      `Ingress: ${settings.rounds} rounds of ${settings.cyclesPerRound} cycles, ` +
        `slices of ${settings.secondsPerSlice} s, ${settings.connections} connections`,
    );
    const ingress = await measureIngress(dir, settings);
    console.log("Binding counts and the idle sweep inside workerd (the sweep takes minutes)…");
    const { requestCounts, sweeps } = await measureInWorkerd(dir);
    console.log("Bundle size…");
    const bundle = await measureBundle(dir);

    const figures: Figures = { ingress, requestCounts, sweeps, bundle };
    const targets = judgeTargets(figures);
    const ratio =
      findScenario(ingress, WARM_BEARER).requestsPerSecond /
      findScenario(ingress, BARE).requestsPerSecond;
    const seconds = (performance.now() - started) / 1000;
    const results = {
      measuredAt: new Date().toISOString(),
      machine: {
        cpus: availableParallelism(),
        memoryGiB: Math.round(totalmem() / 2 ** 30),
        node: process.version,
      },
      source: sourceVersion(),
      settings: { ...settings, sweepCapFactor: Number(process.env.BENCH_SWEEP_CAP_FACTOR ?? 12) },
      benchSeconds: Math.round(seconds),
      ...figures,
      targets,
      warmToBareThroughputRatio: Number(ratio.toFixed(2)),
    };
    writeFileSync(RESULTS_PATH, `${JSON.stringify(results, null, 2)}\n`);

    console.log(`\n${formatReport(figures, targets)}\n`);
    console.log(`The bench took ${seconds.toFixed(0)} s; figures written to bench/results.json`);
    console.log(`warm/bare throughput ratio: ${ratio.toFixed(2)}`);
    succeeded = true;
  } finally {
    if (succeeded) rmSync(dir, { recursive: true, force: true });
    else console.error(`Logs and state are kept in ${dir}`);
  }
}

await main();
