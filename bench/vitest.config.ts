import { fileURLToPath } from "node:url";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

/** The bindings' counters and the sweep's timings run on this config alone, never in `npm test`. */
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BOOTSTRAP_TOKEN = "bench-bootstrap-secret-0123456789";

// Wrangler reads required secrets from the environment; this silences its warning.
process.env.BOOTSTRAP_TOKEN ??= BOOTSTRAP_TOKEN;

export default defineConfig(async () => {
  const migrations = await readD1Migrations(`${ROOT}/migrations`);
  return {
    root: ROOT,
    plugins: [
      cloudflareTest({
        wrangler: { configPath: `${ROOT}/wrangler.toml` },
        miniflare: {
          // Vitest's runner inside workerd needs Node's APIs; the Worker itself does not.
          compatibilityFlags: ["nodejs_compat"],
          bindings: {
            TEST_MIGRATIONS: migrations,
            BOOTSTRAP_TOKEN,
            ...(process.env.BENCH_SWEEP_CAP_FACTOR && {
              BENCH_SWEEP_CAP_FACTOR: process.env.BENCH_SWEEP_CAP_FACTOR,
            }),
          },
        },
      }),
    ],
    test: {
      name: "bench",
      include: ["bench/workers/**/*.test.ts"],
      setupFiles: ["test/workers/apply-migrations.ts"],
      // One file at a time: the sweep's timing must not share the machine with the counters.
      fileParallelism: false,
      testTimeout: 900_000,
      hookTimeout: 120_000,
    },
  };
});
