import { rmSync } from "node:fs";
import type { TestProject } from "vitest/node";
import { makeRunDir, type Server, startServer, stopLeftoverServers } from "./server";

/**
 * Starts the `wrangler dev` that the test files share, in a fresh run directory under
 * `.e2e/`. A file that needs other settings starts its own server there with
 * `startServer`. Afterwards every server of the run is stopped, and the run directory
 * (state and logs) is removed unless a test failed or `E2E_KEEP_STATE=1`.
 */
export default async function setup(project: TestProject) {
  const runDir = makeRunDir();
  let server: Server | undefined;
  const teardown = async () => {
    await server?.stop({ remove: false });
    const leftovers = await stopLeftoverServers(runDir);
    // `state` is marked experimental in vitest; it is pinned, and this only decides cleanup.
    const failed = project.vitest.state.getCountOfFailedTests() > 0 || leftovers.length > 0;
    if (failed || process.env.E2E_KEEP_STATE === "1") {
      console.log(`wrangler's logs and state from the e2e run are kept in ${runDir}`);
    } else {
      rmSync(runDir, { recursive: true, force: true });
    }
    // A file that leaves its server running has a teardown bug: that fails the run (vitest
    // only logs an error thrown here).
    if (leftovers.length > 0) {
      console.error(`A test file left servers running; stopped them: ${leftovers.join(", ")}`);
      process.exitCode = 1;
    }
  };

  try {
    server = await startServer({ parentDir: runDir, label: "shared" });
    project.provide("baseUrl", server.baseUrl);
    project.provide("bootstrapToken", server.bootstrapToken);
    project.provide("wranglerLogPath", server.logPath);
    project.provide("sharedDir", server.dir);
    project.provide("runDir", runDir);
  } catch (error) {
    await teardown();
    throw error;
  }
  return teardown;
}
