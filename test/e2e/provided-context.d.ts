// What global-setup.ts hands to the tests through `inject`.
declare module "vitest" {
  export interface ProvidedContext {
    /** The running `wrangler dev`, e.g. `http://127.0.0.1:40123`. */
    baseUrl: string;
    /** The BOOTSTRAP_TOKEN secret that server runs with. */
    bootstrapToken: string;
    /** Everything wrangler and the Worker printed, appended as it happens. */
    wranglerLogPath: string;
  }
}

export {};
