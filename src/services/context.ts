import { eq } from "drizzle-orm";
import type { Config } from "../config";
import type { Database } from "../data/db";
import { type Token, type User, users } from "../data/schema";
import { DomainError, notFound } from "../shared/errors";

/** What every service call needs: the bindings, the database, the configuration, the time. */
export interface ServiceContext {
  env: Env;
  db: Database;
  config: Config;
  now: Date;
  /** Extends the invocation past the response, for follow-up cache purges. */
  waitUntil: (promise: Promise<unknown>) => void;
}

/** The authenticated caller of the management API and the token it presented. */
export interface Actor {
  user: User;
  token: Token;
}

export const isAdmin = (actor: Actor) => actor.user.role === "admin";

/**
 * Members see only their own records; anything else answers as if it did not exist, so
 * that a member cannot learn which ids are taken.
 */
export function assertVisible(actor: Actor, ownerId: string, what: string): void {
  if (!isAdmin(actor) && actor.user.id !== ownerId) {
    throw notFound(what);
  }
}

export function assertAdmin(actor: Actor, action: string): void {
  if (!isAdmin(actor)) throw new DomainError("forbidden", `Only an admin can ${action}.`);
}

/** The moment an active account will be flagged idle if nothing happens before then. */
export function projectedInactiveAt(user: User, config: Config): Date | null {
  if (user.status !== "active") return null;
  return new Date(user.lastActiveAt.getTime() + config.inactivityMs);
}

/** The account with this id; any caller who may not act on it is told it does not exist. */
export async function requireUser(ctx: ServiceContext, id: string): Promise<User> {
  const user = await ctx.db.query.users.findFirst({ where: eq(users.id, id) });
  if (!user) throw notFound("This account");
  return user;
}

/** The account, if the actor may see it: its own, or any for an admin. */
export async function getVisibleUser(ctx: ServiceContext, actor: Actor, id: string) {
  assertVisible(actor, id, "This account");
  return requireUser(ctx, id);
}
