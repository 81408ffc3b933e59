import { rmSync } from "node:fs";
import type { TestProject } from "vitest/node";
import { makeRunDir, startServer, stopLeftoverServers } from "./server";

/**
 * Starts the `wrangler dev` that the test files share, in a fresh run directory under
 * `.e2e/`. A file that needs other settings starts its own server there with
 * `startServer`. Afterwards every server of the run is stopped, and the run directory
 * (state and logs) is removed unless a test failed or `E2E_KEEP_STATE=1`.
 */
export default async function setup(project: TestProject) {
  const runDir = makeRunDir();
  const teardown = async () => {
    const leftovers = await stopLeftoverServers(runDir);
    for (const dir of leftovers) console.warn(`Stopped a server left running in ${dir}`);
    // `state` is marked experimental in vitest; it is pinned, and this only decides cleanup.
    const failed = project.vitest.state.getCountOfFailedTests() > 0 || leftovers.length > 0;
    if (failed || process.env.E2E_KEEP_STATE === "1") {
      console.log(`wrangler's logs and state from the e2e run are kept in ${runDir}`);
    } else {
      rmSync(runDir, { recursive: true, force: true });
    }
  };

  try {
    const server = await startServer({ parentDir: runDir, label: "shared" });
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
