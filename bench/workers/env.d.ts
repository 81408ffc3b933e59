declare global {
  namespace Cloudflare {
    interface Env {
      /** Set by bench/vitest.config.ts from the environment variable of the same name. */
      BENCH_SWEEP_CAP_FACTOR?: string;
    }
  }
}

export {};
