import { and, asc, eq, gt, inArray, isNotNull, lte, ne } from "drizzle-orm";
import { purgeCachedFacts, REPURGE_DELAY_MS, tokenCacheKey } from "../auth/decision-cache";
import type { Database } from "../data/db";
import { tokens, users } from "../data/schema";
import { errorSummary, log } from "../shared/log";
import type { InvocationBudget } from "./budget";

/** Where a purge scan stands, carried by a continuation message. */
export interface PurgeScan {
  /** Accounts whose purge was requested up to this time (ms) belong to this scan. */
  requestedUpTo: number;
  /** An account whose tokens did not all fit the last page, and the last token done. */
  partial: { userId: string; afterTokenId: string } | null;
}

/** Accounts taken at once: their ids stay well under D1's 100 bound parameters. */
const ACCOUNTS_PER_PAGE = 50;
/** Tokens whose facts one page deletes, and so what one repeat job deletes again. */
const TOKENS_PER_PAGE = 500;
const KV_DELETES_AT_ONCE = 50;

/**
 * Deletes the cached facts of every app and integration token of accounts whose purge was
 * requested (sessions are never cached): a page of requested accounts at a time, found
 * through the request index, their tokens through the owner index, so that each page
 * costs the same however many accounts exist. An account's request is cleared once all
 * its tokens are done. Returns the scan to continue with when the budget runs out, or
 * null when no requested account is left.
 */
export async function purgeRequestedFacts(
  env: Env,
  db: Database,
  budget: InvocationBudget,
  now: Date,
  scan: PurgeScan = { requestedUpTo: now.getTime(), partial: null },
): Promise<{ keysDeleted: number; resume: PurgeScan | null }> {
  let keysDeleted = 0;
  let partial = scan.partial;
  const requested = and(
    isNotNull(users.purgeRequestedAt),
    lte(users.purgeRequestedAt, new Date(scan.requestedUpTo)),
  );

  for (;;) {
    // A page's queries: the accounts, their tokens, and clearing the finished requests.
    const pageSize = Math.min(TOKENS_PER_PAGE, budget.kvLeft);
    if (pageSize < 1 || !budget.canAfford(3, 1)) {
      return { keysDeleted, resume: { ...scan, partial } };
    }

    let ids: string[];
    if (partial) {
      ids = [partial.userId];
    } else {
      budget.spend(1);
      const accounts = await db
        .select({ id: users.id })
        .from(users)
        .where(requested)
        .orderBy(asc(users.purgeRequestedAt))
        .limit(ACCOUNTS_PER_PAGE);
      if (accounts.length === 0) return { keysDeleted, resume: null };
      ids = accounts.map((account) => account.id);
    }

    budget.spend(1);
    const page = await cachedTokensOf(db, ids, partial, pageSize);
    const keys = page.map((token) => tokenCacheKey(token.hash));
    if (!(await deleteFacts(env, budget, keys))) {
      // The requests stay in D1: the queue's retry, or the next hourly run, resumes.
      throw new Error("KV refused deletes of cached facts; the purge resumes on a retry");
    }
    await repurgeLater(env, keys);
    keysDeleted += page.length;

    // A full page may stop inside an account: accounts before it in the page's order are
    // done, that one continues on the next page, and those after it wait for a later one.
    const last = page.length === pageSize ? page.at(-1) : undefined;
    partial = last ? { userId: last.userId, afterTokenId: last.id } : null;
    const finished = last ? ids.filter((id) => id < last.userId) : ids;
    if (finished.length > 0) {
      budget.spend(1);
      await db
        .update(users)
        .set({ purgeRequestedAt: null })
        .where(and(inArray(users.id, finished), requested));
    }
  }
}

/**
 * The app and integration tokens of these accounts (sessions are never cached), in the
 * order a partial page resumes in: by account, then by id after the last one done.
 */
function cachedTokensOf(
  db: Database,
  userIds: string[],
  partial: PurgeScan["partial"],
  limit: number,
) {
  return db
    .select({ id: tokens.id, hash: tokens.hash, userId: tokens.userId })
    .from(tokens)
    .where(
      and(
        inArray(tokens.userId, userIds),
        ne(tokens.kind, "session"),
        partial ? gt(tokens.id, partial.afterTokenId) : undefined,
      ),
    )
    .orderBy(asc(tokens.userId), asc(tokens.id))
    .limit(limit);
}

/**
 * A page's keys are deleted once more a few seconds later, by a job of their own: a lookup
 * that read the account as active just before the sweep flagged it may write its facts
 * back after the purge. A repeat that cannot be queued is logged; at worst the stale entry
 * lives out its `AUTH_CACHE_TTL_SECONDS`.
 */
async function repurgeLater(env: Env, keys: string[]) {
  try {
    await env.JOBS.send({ type: "repurge", keys } satisfies RepurgeJob, {
      delaySeconds: REPURGE_DELAY_MS / 1000,
    });
  } catch (error) {
    log("error", "lifecycle.repurge_not_queued", { keys: keys.length, error: errorSummary(error) });
  }
}

/** The repeat of one page's purge: at most 500 KV deletes, well inside one invocation. */
export interface RepurgeJob {
  type: "repurge";
  keys: string[];
}

export async function runRepurge(env: Env, job: RepurgeJob) {
  const refused = await purgeCachedFacts(env, job.keys);
  if (refused > 0) throw new Error(`KV refused ${refused} deletes of cached facts`);
}

/**
 * Purges one account's tokens now, as the management API does when it reactivates one,
 * and once more a few seconds later through `waitUntil`. When its tokens exceed the
 * budget, the first ones are purged and the account's purge request stays for the jobs
 * queue to finish; so it does when KV refused a delete. Returns whether all were purged.
 */
export async function purgeAccountFacts(
  env: Env,
  db: Database,
  budget: InvocationBudget,
  userId: string,
  waitUntil?: (promise: Promise<unknown>) => void,
): Promise<boolean> {
  budget.spend(1);
  const room = budget.kvLeft;
  const owned = await db
    .select({ hash: tokens.hash })
    .from(tokens)
    .where(and(eq(tokens.userId, userId), ne(tokens.kind, "session")))
    .limit(room + 1);
  const keys = owned.slice(0, room).map((token) => tokenCacheKey(token.hash));
  const deleted = await deleteFacts(env, budget, keys, waitUntil);
  if (owned.length > room || !deleted) return false;
  budget.spend(1);
  await db.update(users).set({ purgeRequestedAt: null }).where(eq(users.id, userId));
  return true;
}

/** Returns whether KV deleted every key. */
async function deleteFacts(
  env: Env,
  budget: InvocationBudget,
  keys: string[],
  waitUntil?: (promise: Promise<unknown>) => void,
) {
  let refused = 0;
  for (let start = 0; start < keys.length; start += KV_DELETES_AT_ONCE) {
    const chunk = keys.slice(start, start + KV_DELETES_AT_ONCE);
    budget.spend(0, chunk.length);
    refused += await purgeCachedFacts(env, chunk, waitUntil);
  }
  return refused === 0;
}
