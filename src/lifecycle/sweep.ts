import { and, asc, eq, inArray, isNull, lt, sql } from "drizzle-orm";
import type { Database } from "../data/db";
import { auditLog, tokens, users } from "../data/schema";
import { timeOrderedIdPrefix } from "../shared/ids";
import type { InvocationBudget } from "./budget";

/** Accounts flagged per page: 50 ids stay well under D1's 100 bound parameters. */
export const SWEEP_PAGE_SIZE = 50;
/** One page costs a select and a batch of three statements. */
export const SWEEP_PAGE_QUERIES = 4;

/**
 * `status` compared without its index, for rows already picked by id. Written plainly,
 * SQLite's planner prefers the (status, last activity) index to 50 primary-key lookups
 * and scans every account of that status on each page, which makes the sweep quadratic;
 * the unary `+` keeps the term off any index (https://sqlite.org/optoverview.html#uplus).
 */
function statusIs(status: "active" | "inactive") {
  return sql`+${users.status} = ${status}`;
}

/**
 * Flags one page of accounts idle since before `cutoff` as inactive, revokes their
 * sessions, requests the purge of their tokens' cached facts and audits each account, all
 * in one transaction. The update checks idleness again, so an account that became active
 * since the select is left alone, and a page that ran already changes nothing.
 * Returns how many accounts the page selected; 0 means none are left.
 */
export async function flagIdlePage(
  db: Database,
  budget: InvocationBudget,
  now: Date,
  cutoff: Date,
  inactivityDays: number,
): Promise<number> {
  budget.spend(1);
  const page = await db
    .select({ id: users.id })
    .from(users)
    .where(and(eq(users.status, "active"), lt(users.lastActiveAt, cutoff)))
    .orderBy(asc(users.lastActiveAt), asc(users.id))
    .limit(SWEEP_PAGE_SIZE);
  if (page.length === 0) return 0;
  const ids = page.map((user) => user.id);

  // The accounts of this page that the update below switched off, and no others.
  const flaggedHere = and(
    inArray(users.id, ids),
    statusIs("inactive"),
    eq(users.deactivatedAt, now),
  );
  budget.spend(SWEEP_PAGE_QUERIES - 1);
  await db.batch([
    db
      .update(users)
      .set({ status: "inactive", deactivatedAt: now, purgeRequestedAt: now })
      .where(and(inArray(users.id, ids), statusIs("active"), lt(users.lastActiveAt, cutoff))),
    db
      .update(tokens)
      .set({ revokedAt: now })
      .where(
        and(
          inArray(tokens.userId, db.select({ id: users.id }).from(users).where(flaggedHere)),
          eq(tokens.kind, "session"),
          isNull(tokens.revokedAt),
        ),
      ),
    // One audit entry per account this page flagged. Ids are made in SQL, time-ordered like
    // `newTimeOrderedId`'s with 14 random hex digits (56 bits), so that the whole page
    // stays one statement within the parameter limit.
    db.insert(auditLog).select(
      db
        .select({
          id: sql<string>`${timeOrderedIdPrefix("aud", now)} || lower(hex(randomblob(7)))`.as("id"),
          at: sql<number>`${now.getTime()}`.as("at"),
          actorId: sql<null>`null`.as("actor_id"),
          action: sql<string>`'user.deactivated'`.as("action"),
          targetType: sql<"user">`'user'`.as("target_type"),
          targetId: users.id,
          details: sql<string>`json_object(
            'username', ${users.username},
            'lastActiveAt',
              strftime('%Y-%m-%dT%H:%M:%fZ', ${users.lastActiveAt} / 1000.0, 'unixepoch'),
            'inactivityDays', ${inactivityDays})`.as("details"),
        })
        .from(users)
        .where(flaggedHere),
    ),
  ]);
  return page.length;
}
