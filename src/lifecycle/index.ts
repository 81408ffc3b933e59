import { DAY_MS, readConfig } from "../config";
import { openDatabase } from "../data/db";
import { log } from "../shared/log";
import { InvocationBudget } from "./budget";
import { type PurgeScan, purgeRequestedFacts } from "./purge";
import { removeExpiredEvents, removeExpiredSessions } from "./retention";
import { flagIdlePage, SWEEP_PAGE_QUERIES } from "./sweep";

/** A continuation of lifecycle work on the jobs queue. */
export interface LifecycleJob {
  type: "lifecycle";
  purge?: PurgeScan | null;
}

export interface LifecycleReport {
  flagged: number;
  factsPurged: number;
  eventsRemoved: number;
  sessionsRemoved: number;
  /** True when the budget ran out and a continuation message was sent. */
  continued: boolean;
  d1Queries: number;
  kvOperations: number;
}

/**
 * One invocation of the idle sweep: flags idle accounts page by page, purging each page's
 * cached token facts before the next, then removes expired events and sessions. Every
 * step is idempotent and its progress lives in D1, so when the invocation's budget runs
 * out it hands over to a continuation message, and an invocation cut off half way is
 * finished by the next one.
 */
export async function runLifecycle(
  env: Env,
  now: Date,
  job?: LifecycleJob,
): Promise<LifecycleReport> {
  const config = readConfig(env);
  const db = openDatabase(env.DB);
  const budget = new InvocationBudget();
  const cutoff = new Date(now.getTime() - config.inactivityMs);
  const inactivityDays = config.inactivityMs / DAY_MS;
  const report: LifecycleReport = {
    flagged: 0,
    factsPurged: 0,
    eventsRemoved: 0,
    sessionsRemoved: 0,
    continued: false,
    d1Queries: 0,
    kvOperations: 0,
  };
  const done = () => {
    report.d1Queries = budget.d1Queries;
    report.kvOperations = budget.kvOperations;
    log("info", "lifecycle.run", { ...report });
    return report;
  };
  /** The budget ran out: the next invocation resumes, within the purge scan if one is open. */
  const continueLater = async (purge: PurgeScan | null = null) => {
    await env.JOBS.send({ type: "lifecycle", purge } satisfies LifecycleJob);
    report.continued = true;
    return done();
  };

  let scan = job?.purge ?? undefined;
  for (;;) {
    const purge = await purgeRequestedFacts(env, db, budget, now, scan);
    report.factsPurged += purge.keysDeleted;
    if (purge.resume) return continueLater(purge.resume);
    scan = undefined;

    if (!budget.canAfford(SWEEP_PAGE_QUERIES + 2, 1)) return continueLater();
    const flagged = await flagIdlePage(db, budget, now, cutoff, inactivityDays);
    report.flagged += flagged;
    if (flagged === 0) break;
  }

  const eventCutoff = new Date(now.getTime() - config.eventRetentionMs);
  const expiredEvents = await removeExpiredEvents(env, db, budget, eventCutoff);
  report.eventsRemoved = expiredEvents.removed;
  if (!expiredEvents.done) return continueLater();
  const expiredSessions = await removeExpiredSessions(db, budget, now);
  report.sessionsRemoved = expiredSessions.removed;
  return expiredSessions.done ? done() : continueLater();
}
