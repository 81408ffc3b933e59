import { IsolateCache } from "./isolate-cache";

/**
 * Cached authentication facts live in two layers: this isolate's memory (seconds) and
 * Workers KV (`AUTH_CACHE_TTL_SECONDS`). Both are keyed by the SHA-256 of the token, so a
 * cache dump reveals no secret. Every change that alters a decision calls a purge below
 * before the management API answers.
 */
const ISOLATE_TTL_MS = 5_000;
const ISOLATE_MAX_ENTRIES = 10_000;

export const tokenFactsCache = new IsolateCache<unknown>(ISOLATE_MAX_ENTRIES, ISOLATE_TTL_MS);
export const webhookFactsCache = new IsolateCache<unknown>(ISOLATE_MAX_ENTRIES, ISOLATE_TTL_MS);

export const tokenCacheKey = (tokenHash: string) => `token:${tokenHash}`;
export const webhookCacheKey = (webhookId: string) => `webhook:${webhookId}`;

/** Forgets the cached facts of these tokens here and in KV. One KV operation per hash. */
export async function purgeTokenFacts(env: Env, tokenHashes: readonly string[]): Promise<void> {
  const keys = tokenHashes.map(tokenCacheKey);
  for (const key of keys) tokenFactsCache.delete(key);
  await Promise.all(keys.map((key) => env.AUTH_CACHE.delete(key)));
}

export async function purgeWebhookFacts(env: Env, webhookId: string): Promise<void> {
  const key = webhookCacheKey(webhookId);
  webhookFactsCache.delete(key);
  await env.AUTH_CACHE.delete(key);
}
