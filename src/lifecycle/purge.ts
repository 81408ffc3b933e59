import { and, asc, eq, gt, gte, inArray, isNotNull, lte, ne, or } from "drizzle-orm";
import { purgeCachedFacts, tokenCacheKey } from "../auth/decision-cache";
import type { Database } from "../data/db";
import { tokens, users } from "../data/schema";
import type { InvocationBudget } from "./budget";

/** Where a purge scan stands, carried by a continuation message. */
export interface PurgeScan {
  /** Accounts whose purge was requested up to this time (ms) belong to this scan. */
  requestedUpTo: number;
  /** The last token purged, in (owner, token) order; empty strings before the first. */
  afterUserId: string;
  afterTokenId: string;
}

/** Accounts taken at once: their ids stay well under D1's 100 bound parameters. */
const ACCOUNTS_PER_PAGE = 50;
const KV_DELETES_AT_ONCE = 50;

/**
 * Deletes the cached facts of every app and integration token of accounts whose purge was
 * requested (sessions are never cached), a page of accounts at a time, each page's tokens
 * found through the owner index. An account's request is cleared once all its tokens are
 * done. Returns the scan to continue with when the budget runs out, or null when done.
 */
export async function purgeRequestedFacts(
  env: Env,
  db: Database,
  budget: InvocationBudget,
  now: Date,
  scan: PurgeScan = { requestedUpTo: now.getTime(), afterUserId: "", afterTokenId: "" },
): Promise<{ keysDeleted: number; resume: PurgeScan | null }> {
  let keysDeleted = 0;
  let position = scan;
  const requested = and(
    isNotNull(users.purgeRequestedAt),
    lte(users.purgeRequestedAt, new Date(scan.requestedUpTo)),
  );

  for (;;) {
    const pageSize = Math.min(500, budget.kvLeft);
    if (pageSize < 1 || !budget.canAfford(3, 1)) return { keysDeleted, resume: position };

    budget.spend(1);
    const accounts = await db
      .select({ id: users.id })
      .from(users)
      .where(and(requested, gte(users.id, position.afterUserId)))
      .orderBy(asc(users.id))
      .limit(ACCOUNTS_PER_PAGE);
    if (accounts.length === 0) return { keysDeleted, resume: null };
    const ids = accounts.map((account) => account.id);

    budget.spend(1);
    const page = await db
      .select({ id: tokens.id, hash: tokens.hash, userId: tokens.userId })
      .from(tokens)
      .where(
        and(
          inArray(tokens.userId, ids),
          ne(tokens.kind, "session"),
          or(
            gt(tokens.userId, position.afterUserId),
            and(eq(tokens.userId, position.afterUserId), gt(tokens.id, position.afterTokenId)),
          ),
        ),
      )
      .orderBy(asc(tokens.userId), asc(tokens.id))
      .limit(pageSize);
    await deleteFacts(
      env,
      budget,
      page.map((token) => token.hash),
    );
    keysDeleted += page.length;

    // A full page may have stopped inside the last account: that one stays requested.
    const last = page.at(-1);
    const partial = page.length === pageSize && last ? last : null;
    const finished = partial ? ids.filter((id) => id < partial.userId) : ids;
    if (finished.length > 0) {
      budget.spend(1);
      await db
        .update(users)
        .set({ purgeRequestedAt: null })
        .where(and(inArray(users.id, finished), requested));
    }
    position = partial
      ? { ...scan, afterUserId: partial.userId, afterTokenId: partial.id }
      : { ...scan, afterUserId: "", afterTokenId: "" };
  }
}

/** Purges one account's tokens now, as the management API does when it reactivates one. */
export async function purgeAccountFacts(
  env: Env,
  db: Database,
  budget: InvocationBudget,
  userId: string,
): Promise<boolean> {
  budget.spend(1);
  const owned = await db
    .select({ hash: tokens.hash })
    .from(tokens)
    .where(and(eq(tokens.userId, userId), ne(tokens.kind, "session")))
    .limit(budget.kvLeft + 1);
  if (owned.length > budget.kvLeft) return false;

  await deleteFacts(
    env,
    budget,
    owned.map((token) => token.hash),
  );
  budget.spend(1);
  await db.update(users).set({ purgeRequestedAt: null }).where(eq(users.id, userId));
  return true;
}

async function deleteFacts(env: Env, budget: InvocationBudget, hashes: string[]) {
  for (let start = 0; start < hashes.length; start += KV_DELETES_AT_ONCE) {
    const chunk = hashes.slice(start, start + KV_DELETES_AT_ONCE).map(tokenCacheKey);
    budget.spend(0, chunk.length);
    await purgeCachedFacts(env, chunk);
  }
}
