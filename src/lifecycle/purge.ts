import { and, asc, eq, gt, isNotNull, lte, ne } from "drizzle-orm";
import { purgeCachedFacts, tokenCacheKey } from "../auth/decision-cache";
import type { Database } from "../data/db";
import { tokens, users } from "../data/schema";
import type { InvocationBudget } from "./budget";

/** Where a purge scan stands, carried by a continuation message. */
export interface PurgeScan {
  /** Accounts whose purge was requested up to this time (ms) belong to this scan. */
  requestedUpTo: number;
  afterTokenId: string;
}

const KV_DELETES_AT_ONCE = 50;

/**
 * Deletes the cached facts of every app and integration token of accounts whose purge was
 * requested (sessions are never cached). Walks those tokens in id order within the budget;
 * returns the scan to continue with when the budget runs out, or null when done.
 */
export async function purgeRequestedFacts(
  env: Env,
  db: Database,
  budget: InvocationBudget,
  now: Date,
  scan: PurgeScan = { requestedUpTo: now.getTime(), afterTokenId: "" },
): Promise<{ keysDeleted: number; resume: PurgeScan | null }> {
  let keysDeleted = 0;
  let afterTokenId = scan.afterTokenId;
  const requested = and(
    isNotNull(users.purgeRequestedAt),
    lte(users.purgeRequestedAt, new Date(scan.requestedUpTo)),
  );

  for (;;) {
    const pageSize = Math.min(500, budget.kvLeft);
    if (pageSize < 1 || !budget.canAfford(2, 1)) {
      return { keysDeleted, resume: { ...scan, afterTokenId } };
    }
    budget.spend(1);
    const page = await db
      .select({ id: tokens.id, hash: tokens.hash })
      .from(tokens)
      .innerJoin(users, eq(tokens.userId, users.id))
      .where(and(requested, ne(tokens.kind, "session"), gt(tokens.id, afterTokenId)))
      .orderBy(asc(tokens.id))
      .limit(pageSize);

    await deleteFacts(
      env,
      budget,
      page.map((token) => token.hash),
    );
    keysDeleted += page.length;
    const last = page.at(-1);
    if (last) afterTokenId = last.id;
    if (page.length < pageSize) break;
  }

  budget.spend(1);
  await db.update(users).set({ purgeRequestedAt: null }).where(requested);
  return { keysDeleted, resume: null };
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
