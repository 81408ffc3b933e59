import { and, asc, eq, inArray, lt, sql } from "drizzle-orm";
import type { Database } from "../data/db";
import { events, tokens } from "../data/schema";
import type { InvocationBudget } from "./budget";

const EVENTS_PER_PAGE = 100;
const SESSIONS_PER_STATEMENT = 1_000;

/**
 * Removes events received before `cutoff`, their R2 bodies first so that no body is left
 * without its row to find it by. Returns whether everything due is gone.
 */
export async function removeExpiredEvents(
  env: Env,
  db: Database,
  budget: InvocationBudget,
  cutoff: Date,
): Promise<{ removed: number; done: boolean }> {
  let removed = 0;
  while (budget.canAfford(2)) {
    budget.spend(1);
    const page = await db
      .select({ id: events.id, bodyKey: events.bodyKey })
      .from(events)
      .where(lt(events.receivedAt, cutoff))
      .orderBy(asc(events.receivedAt))
      .limit(EVENTS_PER_PAGE);
    if (page.length === 0) return { removed, done: true };

    const keys = page.flatMap((event) => (event.bodyKey ? [event.bodyKey] : []));
    if (keys.length > 0) await env.PAYLOADS.delete(keys);
    budget.spend(1);
    await db.delete(events).where(
      inArray(
        events.id,
        page.map((event) => event.id),
      ),
    );
    removed += page.length;
  }
  return { removed, done: false };
}

/** Removes sessions past their expiry, a bounded statement at a time. */
export async function removeExpiredSessions(
  db: Database,
  budget: InvocationBudget,
  now: Date,
): Promise<{ removed: number; done: boolean }> {
  let removed = 0;
  while (budget.canAfford(1)) {
    budget.spend(1);
    const result = await db.run(sql`
      delete from tokens where id in (
        select id from tokens
        where ${and(eq(tokens.kind, "session"), lt(tokens.expiresAt, now))}
        limit ${SESSIONS_PER_STATEMENT})`);
    removed += result.meta.changes;
    if (result.meta.changes < SESSIONS_PER_STATEMENT) return { removed, done: true };
  }
  return { removed, done: false };
}
