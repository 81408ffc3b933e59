import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { expect } from "vitest";
import { app } from "../../src/app";
import type { EventEnvelope } from "../../src/queue/envelope";
import { newId } from "../../src/shared/ids";
import { TEST_BOOTSTRAP_TOKEN } from "./constants";

export const ORIGIN = "https://hookgate.test";

export interface CallOptions {
  method?: string;
  token?: string;
  authorization?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

/** Calls the Worker's `fetch` as a client would, inside workerd. */
export function call(path: string, options: CallOptions = {}): Promise<Response> {
  const headers = new Headers(options.headers);
  if (options.token) headers.set("Authorization", `Bearer ${options.token}`);
  if (options.authorization) headers.set("Authorization", options.authorization);
  let body: BodyInit | undefined;
  if (options.body !== undefined) {
    headers.set("Content-Type", "application/json");
    body = JSON.stringify(options.body);
  }
  return exports.default.fetch(
    new Request(`${ORIGIN}${path}`, { method: options.method ?? "GET", headers, body }),
  );
}

/** Calls and asserts the status, returning the parsed JSON body (or null for no body). */
// biome-ignore lint/suspicious/noExplicitAny: test bodies are inspected field by field.
export async function expectStatus(response: Promise<Response>, status: number): Promise<any> {
  const res = await response;
  const text = await res.text();
  expect(res.status, text).toBe(status);
  return text === "" ? null : JSON.parse(text);
}

export async function bootstrapAdmin(username = "admin") {
  const body = await expectStatus(
    call("/v1/bootstrap", {
      method: "POST",
      token: TEST_BOOTSTRAP_TOKEN,
      body: { username, password: "correct-horse-battery" },
    }),
    201,
  );
  return {
    user: body.user as { id: string; username: string },
    session: body.sessionToken as string,
    integration: body.integrationToken as { id: string; secret: string },
  };
}

/** Creates a person with a password and logs in, returning the account and a session. */
export async function createPerson(
  adminSession: string,
  username: string,
  role: "admin" | "member" = "member",
) {
  const user = await expectStatus(
    call("/v1/users", {
      method: "POST",
      token: adminSession,
      body: { username, kind: "person", role, password: "a-long-enough-password" },
    }),
    201,
  );
  const session = await login(username, "a-long-enough-password");
  return { user: user as { id: string; username: string }, session };
}

export async function login(username: string, password: string): Promise<string> {
  const body = await expectStatus(
    call("/v1/sessions", { method: "POST", body: { username, password } }),
    200,
  );
  return body.token;
}

export async function createService(adminSession: string, username: string) {
  return expectStatus(
    call("/v1/users", { method: "POST", token: adminSession, body: { username, kind: "service" } }),
    201,
  );
}

export async function createWebhook(
  session: string,
  body: { name?: string; authMethod?: "bearer" | "basic"; tokenOwnerId?: string } = {},
) {
  return expectStatus(
    call("/v1/webhooks", {
      method: "POST",
      token: session,
      body: { name: "Orders", authMethod: "bearer", ...body },
    }),
    201,
  );
}

/** Row counts of every table: a request that was refused must leave all of them unchanged. */
export async function tableCounts(): Promise<Record<string, number>> {
  const tables = ["users", "webhooks", "tokens", "events", "audit_log"];
  const counts: Record<string, number> = {};
  for (const table of tables) {
    const row = await env.DB.prepare(`select count(*) as n from ${table}`).first<{ n: number }>();
    counts[table] = row?.n ?? 0;
  }
  return counts;
}

export interface SendOptions {
  authorization?: string;
  body?: BodyInit;
  contentType?: string;
  headers?: Record<string, string>;
  method?: string;
  /** Bindings to run against instead of the test's own, for counting or injected faults. */
  env?: Env;
}

/** Posts to the ingress as a sender would. */
export async function send(webhookId: string, options: SendOptions = {}): Promise<Response> {
  const headers = new Headers(options.headers);
  if (options.authorization) headers.set("Authorization", options.authorization);
  if (options.contentType) headers.set("Content-Type", options.contentType);
  const request = new Request(`${ORIGIN}/hooks/${webhookId}`, {
    method: options.method ?? "POST",
    headers,
    body: options.body ?? (options.method && options.method !== "POST" ? undefined : "{}"),
  });
  if (!options.env) return exports.default.fetch(request);

  const ctx = createExecutionContext();
  const response = await app.fetch(request, options.env, ctx);
  await waitOnExecutionContext(ctx);
  return response;
}

export function basicAuthorization(username: string, password: string): string {
  const bytes = new TextEncoder().encode(`${username}:${password}`);
  return `Basic ${btoa(String.fromCharCode(...bytes))}`;
}

/**
 * Waits until the queue consumer, run by the local runtime, has stored the event.
 * Polls D1: a consumer batch is delivered after `max_batch_timeout` seconds.
 */
export async function waitForStoredEvent(eventId: string, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const row = await env.DB.prepare("select * from events where id = ?").bind(eventId).first();
    if (row) return row;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`Event ${eventId} was not stored within ${timeoutMs} ms`);
}

/** The stored SHA-256 of a token, which keys its cached facts. */
export async function tokenHash(tokenId: string): Promise<string> {
  const row = await env.DB.prepare("select hash from tokens where id = ?")
    .bind(tokenId)
    .first<{ hash: string }>();
  if (!row) throw new Error(`No token ${tokenId}`);
  return row.hash;
}

/** Sets an account's last activity, as if it had been idle since then. */
export async function setLastActive(userId: string, at: number): Promise<void> {
  await env.DB.prepare("update users set last_active_at = ? where id = ?").bind(at, userId).run();
}

/**
 * Switches an account off in D1 only, without the sweep's cache purge: for tests whose
 * tokens were never used, so that nothing is cached yet.
 */
export async function markInactive(userId: string): Promise<void> {
  await env.DB.prepare("update users set status = 'inactive' where id = ?").bind(userId).run();
}

/** An envelope as the ingress makes it for a webhook's first token: a small JSON body. */
export function envelopeFor(
  hook: { webhook: { id: string }; token: { id: string } },
  accountId: string,
  overrides: Partial<EventEnvelope> = {},
): EventEnvelope {
  return {
    version: 1,
    eventId: newId("evt"),
    webhookId: hook.webhook.id,
    tokenId: hook.token.id,
    accountId,
    receivedAt: Date.now(),
    idempotencyKey: null,
    contentType: "application/json",
    body: '{"ok":true}',
    bodyEncoding: "utf8",
    bodyKey: null,
    bodySize: 11,
    ...overrides,
  };
}
