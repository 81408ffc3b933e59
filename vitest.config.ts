import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { TEST_BOOTSTRAP_TOKEN } from "./test/workers/constants.ts";

// Wrangler reads required secrets from the environment; this silences its warning in tests.
process.env.BOOTSTRAP_TOKEN ??= TEST_BOOTSTRAP_TOKEN;

export default defineConfig(async () => {
  const migrations = await readD1Migrations("migrations");
  return {
    test: {
      projects: [
        {
          plugins: [
            cloudflareTest({
              wrangler: { configPath: "./wrangler.toml" },
              miniflare: {
                // Queue and scheduled handlers are driven from tests through `exports`.
                compatibilityFlags: ["nodejs_compat", "service_binding_extra_handlers"],
                bindings: { TEST_MIGRATIONS: migrations, BOOTSTRAP_TOKEN: TEST_BOOTSTRAP_TOKEN },
              },
            }),
          ],
          // The same zod the Worker bundles (wrangler.toml's alias).
          resolve: { alias: { zod: new URL("./src/shared/zod.ts", import.meta.url).pathname } },
          test: {
            name: "workers",
            include: ["test/workers/**/*.test.ts"],
            setupFiles: ["test/workers/apply-migrations.ts"],
          },
        },
        {
          test: {
            name: "e2e",
            include: ["test/e2e/**/*.test.ts"],
            environment: "node",
            globalSetup: ["test/e2e/global-setup.ts"],
            testTimeout: 60_000,
            hookTimeout: 120_000,
            fileParallelism: false,
          },
        },
      ],
    },
  };
});
