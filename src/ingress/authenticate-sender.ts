import type { Context } from "hono";
import { equalInConstantTime } from "../auth/constant-time";
import {
  type LookupOptions,
  lookupTokenFacts,
  lookupWebhookFacts,
  type TokenFacts,
} from "../auth/decision-cache";
import { hashToken, parseToken } from "../auth/tokens";
import type { AppEnv } from "../http/app-env";
import { type Credential, parseAuthorization } from "../http/authorization";
import { clientAddress } from "../http/client";
import { HttpProblem } from "../http/problems";
import type { ErrorCode } from "../shared/errors";

/** The ingress limiter's period in wrangler.toml, in seconds. */
const LIMIT_PERIOD_SECONDS = 60;

type Scheme = "bearer" | "basic";

/** A caller that proved it holds a token that may post to this webhook. */
export interface Sender {
  facts: TokenFacts;
  webhookId: string;
}

function challenge(scheme: Scheme, error?: string): string {
  const base =
    scheme === "bearer" ? 'Bearer realm="hookgate"' : 'Basic realm="hookgate", charset="UTF-8"';
  return error ? `${base}, error="${error}"` : base;
}

function refuse(code: ErrorCode, detail: string, scheme: Scheme, error?: string): HttpProblem {
  return new HttpProblem(code, detail, {
    headers: { "WWW-Authenticate": challenge(scheme, error) },
  });
}

/**
 * Decides whether the caller may post to the webhook, cheapest checks first: header
 * syntax and the token's checksum cost no lookup; a cached token costs no KV or D1 read;
 * only an uncached token reaches D1, and only after the rate limiter agreed. Every bad
 * credential answers alike before the webhook is known, so 401 bodies never reveal
 * whether a webhook exists; only the challenge to a call without a header names the
 * webhook's scheme, which tells nothing to whoever cannot guess its id.
 */
export async function authenticateSender(c: Context<AppEnv>, webhookId: string): Promise<Sender> {
  const lookup = rateLimitedLookup(c);
  const parsed = parseAuthorization(c.req.header("Authorization"));
  if (parsed.kind === "missing") {
    const webhook = await lookupWebhookFacts(webhookId, lookup);
    const scheme = webhook.exists ? webhook.authMethod : "bearer";
    throw refuse("unauthenticated", "This webhook needs an Authorization header.", scheme);
  }
  if (parsed.kind === "malformed") {
    const scheme = /^basic\b/i.test(c.req.header("Authorization") ?? "") ? "basic" : "bearer";
    throw refuse("invalid_request", parsed.reason, scheme, "invalid_request");
  }

  const { credential } = parsed;
  const secret = credential.scheme === "bearer" ? credential.token : credential.password;
  const kind = parseToken(secret);
  if (kind === null || kind === "session") throw invalidCredentials(credential);
  const facts = await lookupTokenFacts(await hashToken(secret), lookup);
  if (!facts) throw invalidCredentials(credential);
  assertMaySend(facts, credential, webhookId, c.get("services").now);

  // The caller proved it holds a genuine token: the limiter, meant for guessers, stays out
  // of the webhook's lookup even when its facts are no longer cached.
  const webhook = await lookupWebhookFacts(webhookId, { ...lookup, beforeDatabase: unlimited });
  if (!webhook.exists || !webhook.enabled) {
    throw new HttpProblem("not_found", "This webhook does not exist or is disabled.");
  }
  assertScheme(credential, webhook.authMethod);
  return { facts, webhookId };
}

/** Lookup options whose first D1 read of a request waits for the ingress limiter. */
function rateLimitedLookup(c: Context<AppEnv>): LookupOptions {
  const services = c.get("services");
  let limited = false;
  return {
    env: c.env,
    db: services.db,
    ttlSeconds: services.config.authCacheTtlSeconds,
    waitUntil: services.waitUntil,
    beforeDatabase: async () => {
      if (limited) return;
      limited = true;
      const { success } = await c.env.INGRESS_LIMITER.limit({ key: `ingress:${clientAddress(c)}` });
      if (!success) {
        throw new HttpProblem(
          "rate_limited",
          "Too many uncached token lookups from this address; wait and try again.",
          { headers: { "Retry-After": String(LIMIT_PERIOD_SECONDS) } },
        );
      }
    },
  };
}

function invalidCredentials(credential: Credential): HttpProblem {
  return refuse(
    "invalid_credentials",
    "The credentials are not valid.",
    credential.scheme,
    "invalid_token",
  );
}

/**
 * What a genuine token must also be to post to this webhook: presented with its owner's
 * username (Basic), live, owned by an active account, this webhook's if it is an app
 * token, and allowed to send.
 */
function assertMaySend(
  facts: TokenFacts,
  credential: Credential,
  webhookId: string,
  now: Date,
): void {
  if (credential.scheme === "basic" && !equalInConstantTime(credential.username, facts.username)) {
    throw invalidCredentials(credential);
  }
  if (facts.revoked || (facts.expiresAt !== null && facts.expiresAt <= now.getTime())) {
    throw invalidCredentials(credential);
  }
  if (!facts.ownerActive) {
    throw refuse(
      "account_inactive",
      "The account that owns this token is inactive after a long idle period; " +
        "an admin can reactivate it.",
      credential.scheme,
      "invalid_token",
    );
  }
  if (facts.kind === "app" && facts.webhookId !== webhookId) {
    throw refuse(
      "token_not_valid_for_webhook",
      "This app token belongs to another webhook.",
      credential.scheme,
      "invalid_token",
    );
  }
  if (!facts.canSend) {
    throw refuse(
      "insufficient_scope",
      "This integration token lacks the `send` scope.",
      credential.scheme,
      "insufficient_scope",
    );
  }
}

async function unlimited() {}

function assertScheme(credential: Credential, expected: Scheme) {
  if (credential.scheme === expected) return;
  throw refuse(
    "wrong_auth_scheme",
    `This webhook takes ${expected === "bearer" ? "Bearer" : "Basic"} authentication.`,
    expected,
  );
}
