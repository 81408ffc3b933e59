import { and, eq, lt } from "drizzle-orm";
import { tokens, users } from "../data/schema";
import type { Actor, ServiceContext } from "./context";
import { isLive } from "./tokens";

/** The live token with this hash and its account, whatever the account's status. */
export async function findActor(
  ctx: ServiceContext,
  tokenHash: string,
): Promise<Actor | undefined> {
  const [row] = await ctx.db
    .select({ token: tokens, user: users })
    .from(tokens)
    .innerJoin(users, eq(tokens.userId, users.id))
    .where(eq(tokens.hash, tokenHash));
  return row && isLive(row.token, ctx.now) ? row : undefined;
}

/**
 * A successful call is activity. Writes are coalesced: at most one per account and per
 * token every `ACTIVITY_WRITE_INTERVAL_SECONDS`, whatever the call rate.
 */
export async function recordActivity(ctx: ServiceContext, actor: Actor) {
  const { db, now, config } = ctx;
  const threshold = new Date(now.getTime() - config.activityWriteIntervalMs);
  const writes = [];
  if (actor.user.lastActiveAt <= threshold) {
    writes.push(
      db
        .update(users)
        .set({ lastActiveAt: now })
        // The sweep may have switched the account off since the call was authenticated.
        .where(
          and(eq(users.id, actor.user.id), eq(users.status, "active"), lt(users.lastActiveAt, now)),
        ),
    );
  }
  if (actor.token.lastUsedAt === null || actor.token.lastUsedAt <= threshold) {
    writes.push(db.update(tokens).set({ lastUsedAt: now }).where(eq(tokens.id, actor.token.id)));
  }
  const [first, ...rest] = writes;
  if (first) await db.batch([first, ...rest]);
}
