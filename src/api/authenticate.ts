import { createMiddleware } from "hono/factory";
import { hashToken, parseToken } from "../auth/tokens";
import type { AppEnv } from "../http/app-env";
import { parseAuthorization } from "../http/authorization";
import { HttpProblem } from "../http/problems";
import { findActor, recordActivity } from "../services/actors";
import { scopesOf } from "../services/tokens";

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
 * so that revoking a session, changing a password and the idle sweep take effect at once.
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

export const requireAdmin = createMiddleware<AppEnv>(async (c, next) => {
  if (c.get("actor").user.role !== "admin") {
    throw new HttpProblem("forbidden", "This endpoint is for admins.");
  }
  await next();
});
