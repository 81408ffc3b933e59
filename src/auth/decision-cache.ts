import { eq } from "drizzle-orm";
import type { Database } from "../data/db";
import { tokens, users, webhooks } from "../data/schema";
import { errorSummary, log } from "../shared/log";
import { IsolateCache } from "./isolate-cache";

/**
 * What the ingress needs to decide on a genuine token. Cached under the SHA-256 of the
 * token in two layers: this isolate's memory (seconds) and Workers KV
 * (`AUTH_CACHE_TTL_SECONDS`). A cache dump therefore reveals no secret.
 */
export interface TokenFacts {
  tokenId: string;
  kind: "app" | "integration" | "session";
  webhookId: string | null;
  canSend: boolean;
  userId: string;
  username: string;
  ownerActive: boolean;
  revoked: boolean;
  /** Milliseconds since the epoch, or null for no expiry. */
  expiresAt: number | null;
}

export type WebhookFacts =
  | { exists: true; authMethod: "bearer" | "basic"; enabled: boolean }
  | { exists: false };

/**
 * Isolates are evicted at any moment and cannot be purged from elsewhere, so their cache
 * is short-lived and bounded: it bounds how stale another isolate can be, and saves the
 * KV read on a warm path.
 */
export const ISOLATE_TTL_MS = 5_000;
const ISOLATE_MAX_ENTRIES = 10_000;
/** After a purge, stale facts from a lookup already in flight are deleted again. */
export const REPURGE_DELAY_MS = 10_000;

export const tokenFactsCache = new IsolateCache<TokenFacts>(ISOLATE_MAX_ENTRIES, ISOLATE_TTL_MS);
export const webhookFactsCache = new IsolateCache<WebhookFacts>(
  ISOLATE_MAX_ENTRIES,
  ISOLATE_TTL_MS,
);

export const tokenCacheKey = (tokenHash: string) => `token:${tokenHash}`;
export const webhookCacheKey = (webhookId: string) => `webhook:${webhookId}`;

export interface LookupOptions {
  env: Env;
  db: Database;
  ttlSeconds: number;
  /** Runs once before D1 is asked, for the rate limiter; a cached credential skips it. */
  beforeDatabase: () => Promise<void>;
  /** Defers the KV write past the response. */
  waitUntil: (promise: Promise<unknown>) => void;
}

/**
 * Finds a token's facts: isolate, then KV, then D1. A hash that matches no token is
 * never written anywhere, so a flood of made-up tokens causes no writes.
 */
export async function lookupTokenFacts(
  tokenHash: string,
  options: LookupOptions,
): Promise<TokenFacts | null> {
  const key = tokenCacheKey(tokenHash);
  const cached = await readCached(tokenFactsCache, options.env, key);
  if (cached) return cached;

  await options.beforeDatabase();
  const [row] = await options.db
    .select({ token: tokens, user: users })
    .from(tokens)
    .innerJoin(users, eq(tokens.userId, users.id))
    .where(eq(tokens.hash, tokenHash));
  if (!row) return null;

  const facts: TokenFacts = {
    tokenId: row.token.id,
    kind: row.token.kind,
    webhookId: row.token.webhookId,
    canSend: row.token.scopes.split(",").includes("send"),
    userId: row.user.id,
    username: row.user.username,
    ownerActive: row.user.status === "active",
    revoked: row.token.revokedAt !== null,
    expiresAt: row.token.expiresAt?.getTime() ?? null,
  };
  cacheLookup(tokenFactsCache, key, facts, options);
  return facts;
}

/** Finds a webhook's facts: isolate, then KV, then D1. Unknown ids stay in this isolate. */
export async function lookupWebhookFacts(
  webhookId: string,
  options: LookupOptions,
): Promise<WebhookFacts> {
  const key = webhookCacheKey(webhookId);
  const cached = await readCached(webhookFactsCache, options.env, key);
  if (cached) return cached;

  await options.beforeDatabase();
  const row = await options.db.query.webhooks.findFirst({
    where: eq(webhooks.id, webhookId),
    columns: { authMethod: true, enabled: true },
  });
  const facts: WebhookFacts = row ? { exists: true, ...row } : { exists: false };
  if (row) cacheLookup(webhookFactsCache, key, facts, options);
  else webhookFactsCache.set(key, facts);
  return facts;
}

/**
 * Keeps what D1 answered, here and in KV. A burst of calls with one uncached credential
 * all miss and all ask D1; the first answer to arrive writes KV and the later ones find
 * it here and write nothing, since KV takes one write per second per key.
 */
function cacheLookup<T>(cache: IsolateCache<T>, key: string, facts: T, options: LookupOptions) {
  const cachedMeanwhile = cache.get(key) !== undefined;
  cache.set(key, facts);
  if (!cachedMeanwhile) options.waitUntil(writeKv(options.env, key, facts, options.ttlSeconds));
}

/**
 * This isolate's entry, else KV's, which then starts a fresh isolate entry. A hit never
 * extends an entry's life: a busy token must still be read from KV every few seconds, or
 * an isolate would keep accepting it after a revocation made elsewhere.
 */
async function readCached<T>(cache: IsolateCache<T>, env: Env, key: string): Promise<T | null> {
  const held = cache.get(key);
  if (held !== undefined) return held;
  const stored = await readKv<T>(env, key);
  if (stored) cache.set(key, stored);
  return stored;
}

/** A KV failure is a cache miss: the decision falls back to D1. */
async function readKv<T>(env: Env, key: string): Promise<T | null> {
  try {
    return await env.AUTH_CACHE.get<T>(key, "json");
  } catch (error) {
    log("warn", "auth_cache.read_failed", { error: errorSummary(error) });
    return null;
  }
}

/** KV allows one write per second per key; a refused write only costs a later D1 read. */
async function writeKv(env: Env, key: string, value: unknown, ttlSeconds: number) {
  try {
    await env.AUTH_CACHE.put(key, JSON.stringify(value), { expirationTtl: ttlSeconds });
  } catch (error) {
    log("warn", "auth_cache.write_failed", { error: errorSummary(error) });
  }
}

/**
 * Forgets cached facts here and in KV, one KV operation per key, before the caller
 * answers. A lookup that read D1 just before the change could still write stale facts
 * back afterwards, so the same keys are deleted once more a few seconds later. A delete
 * KV refuses is logged and counted, never thrown: the change is already in D1, the repeat
 * tries again, and at worst the stale entry lives out its `AUTH_CACHE_TTL_SECONDS`.
 * Returns how many keys the first attempt failed to delete.
 */
export async function purgeCachedFacts(
  env: Env,
  keys: readonly string[],
  waitUntil?: (promise: Promise<unknown>) => void,
): Promise<number> {
  for (const key of keys) {
    tokenFactsCache.delete(key);
    webhookFactsCache.delete(key);
  }
  const deleteAll = async () => {
    const results = await Promise.allSettled(keys.map((key) => env.AUTH_CACHE.delete(key)));
    const refused = results.filter((result) => result.status === "rejected");
    if (refused[0]) {
      log("error", "auth_cache.purge_failed", {
        refused: refused.length,
        of: keys.length,
        error: errorSummary(refused[0].reason),
      });
    }
    return refused.length;
  };
  const refused = await deleteAll();
  waitUntil?.(new Promise((resolve) => setTimeout(resolve, REPURGE_DELAY_MS)).then(deleteAll));
  return refused;
}

export function purgeTokenFacts(
  env: Env,
  tokenHashes: readonly string[],
  waitUntil?: (promise: Promise<unknown>) => void,
) {
  return purgeCachedFacts(env, tokenHashes.map(tokenCacheKey), waitUntil);
}

export function purgeWebhookFacts(
  env: Env,
  webhookId: string,
  waitUntil?: (promise: Promise<unknown>) => void,
) {
  return purgeCachedFacts(env, [webhookCacheKey(webhookId)], waitUntil);
}
