/**
 * What one invocation may still spend. A Worker invocation, scheduled or queue, may run
 * 1,000 D1 queries and 1,000 KV operations; lifecycle work stops at 900 of each so that
 * its bookkeeping (the continuation message, the last status update) always fits.
 */
export class InvocationBudget {
  d1Queries = 0;
  kvOperations = 0;

  constructor(
    readonly maxD1Queries = 900,
    readonly maxKvOperations = 900,
  ) {}

  canAfford(d1Queries: number, kvOperations = 0): boolean {
    return (
      this.d1Queries + d1Queries <= this.maxD1Queries &&
      this.kvOperations + kvOperations <= this.maxKvOperations
    );
  }

  get kvLeft(): number {
    return this.maxKvOperations - this.kvOperations;
  }

  spend(d1Queries: number, kvOperations = 0): void {
    this.d1Queries += d1Queries;
    this.kvOperations += kvOperations;
  }
}
