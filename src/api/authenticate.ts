import { and, eq, lt } from "drizzle-orm";
import { createMiddleware } from "hono/factory";
import { hashToken, parseToken } from "../auth/tokens";
import { tokens, users } from "../data/schema";
import type { AppEnv } from "../http/app-env";
import { parseAuthorization } from "../http/authorization";
import { HttpProblem } from "../http/problems";
import type { Actor, ServiceContext } from "../services/context";
import { isLive, scopesOf } from "../services/tokens";

const CHALLENGE = 'Bearer realm="hookgate"';

function refuse(
  code: "unauthenticated" | "invalid_credentials" | "invalid_request" | "account_inactive",
  detail: string,
  error?: string,
) {
  const challenge = error ? `${CHALLENGE}, error="${error}"` : CHALLENGE;
  return new HttpProblem(code, detail, { headers: { "WWW-Authenticate": challenge } });
}

/**
 * Authenticates a management call: a Bearer session token, or an integration token with
 * the `manage` scope, of an active account. Sessions are checked against D1 on every call
 * so that logout, password changes and the idle sweep take effect at once.
 */
export const authenticate = createMiddleware<AppEnv>(async (c, next) => {
  const parsed = parseAuthorization(c.req.header("Authorization"));
  if (parsed.kind === "missing") {
    throw refuse("unauthenticated", "Send `Authorization: Bearer <session or integration token>`.");
  }
  if (parsed.kind === "malformed")
    throw refuse("invalid_request", parsed.reason, "invalid_request");
  if (parsed.credential.scheme !== "bearer") {
    throw refuse("invalid_credentials", "The management API takes Bearer tokens only.");
  }

  const secret = parsed.credential.token;
  const kind = parseToken(secret);
  if (kind === null)
    throw refuse("invalid_credentials", "The token is not valid.", "invalid_token");
  // No app token opens the API, so its prefix alone decides, without a lookup.
  if (kind === "app") {
    throw new HttpProblem("insufficient_scope", "An app token opens its webhook only.");
  }

  const services = c.get("services");
  const actor = await findActor(services, await hashToken(secret));
  if (!actor) throw refuse("invalid_credentials", "The token is not valid.", "invalid_token");
  // An inactive account's sessions and integration tokens stop working, whatever their
  // scopes: saying so is what tells the caller that an admin must reactivate the account.
  if (actor.user.status !== "active") {
    throw refuse("account_inactive", "The account that owns this token is inactive.");
  }
  if (!scopesOf(actor.token).includes("manage")) {
    throw new HttpProblem("insufficient_scope", "This token lacks the `manage` scope.");
  }

  c.set("actor", actor);
  await next();
  if (c.res.status < 400) await recordActivity(services, actor);
});

async function findActor(services: ServiceContext, hash: string): Promise<Actor | undefined> {
  const [row] = await services.db
    .select({ token: tokens, user: users })
    .from(tokens)
    .innerJoin(users, eq(tokens.userId, users.id))
    .where(eq(tokens.hash, hash));
  return row && isLive(row.token, services.now) ? row : undefined;
}

export const requireAdmin = createMiddleware<AppEnv>(async (c, next) => {
  if (c.get("actor").user.role !== "admin") {
    throw new HttpProblem("forbidden", "This endpoint is for admins.");
  }
  await next();
});

/**
 * A successful call is activity. Writes are coalesced: at most one per account and per
 * token every `ACTIVITY_WRITE_INTERVAL_SECONDS`, whatever the call rate.
 */
async function recordActivity(services: ServiceContext, actor: Actor) {
  const { db, now, config } = services;
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
