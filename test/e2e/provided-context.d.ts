// What global-setup.ts hands to the tests through `inject`.
declare module "vitest" {
  export interface ProvidedContext {
    /** The shared `wrangler dev`, e.g. `http://127.0.0.1:40123`. */
    baseUrl: string;
    /** The BOOTSTRAP_TOKEN secret that server runs with. */
    bootstrapToken: string;
    /** Everything wrangler and the Worker printed, appended as it happens. */
    wranglerLogPath: string;
    /** The shared server's directory, where test files leave records for each other. */
    sharedDir: string;
    /** This e2e run's directory, for servers a test file starts itself (`startServer`). */
    runDir: string;
  }
}

export {};
