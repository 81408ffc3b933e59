/** What one ingress request did to the bindings, counted on the real local ones. */
export interface RequestCounts {
  status: number;
  d1Queries: number;
  d1Writes: number;
  kvReads: number;
  kvWrites: number;
  queueSends: number;
  r2Writes: number;
  /** Calls to the ingress rate limiter (`INGRESS_LIMITER.limit`). */
  limiterCalls: number;
}

export interface SweepFigures {
  accounts: number;
  tokens: number;
  /** False when the run was stopped at its time cap; `wallMs` is then a lower bound. */
  finished: boolean;
  flaggedAccounts: number;
  wallMs: number;
  invocations: number;
  maxInvocationMs: number;
  maxD1Queries: number;
  maxKvOperations: number;
}

/**
 * The figures a bench file hands to the runner. Code inside workerd cannot write the
 * host's files, so each test puts its figures in its task's `meta`, which vitest's JSON
 * reporter writes out for `bench/run.ts` to read.
 */
export interface WorkerFigures {
  requestCounts?: Record<string, RequestCounts>;
  sweep?: SweepFigures;
}

declare module "@vitest/runner" {
  interface TaskMeta {
    figures?: WorkerFigures;
  }
}
