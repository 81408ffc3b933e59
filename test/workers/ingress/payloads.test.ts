import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import worker from "../../../src/index";
import type { EventEnvelope } from "../../../src/queue/envelope";
import { sha256Hex } from "../../../src/shared/encoding";
import {
  bootstrapAdmin,
  call,
  createWebhook,
  envelopeFor,
  expectStatus,
  send,
  tableCounts,
  waitForStoredEvent,
} from "../helpers";
import { instrumentedEnv } from "../support/instrumented-env";

let admin: Awaited<ReturnType<typeof bootstrapAdmin>>;
let hook: Awaited<ReturnType<typeof createWebhook>>;

beforeAll(async () => {
  admin = await bootstrapAdmin();
  hook = await createWebhook(admin.session);
});

async function accept(body: BodyInit, contentType?: string, headers: Record<string, string> = {}) {
  const res = await send(hook.webhook.id, {
    authorization: hook.credentials.authorization,
    body,
    headers: { ...headers, ...(contentType ? { "Content-Type": contentType } : {}) },
  });
  const receipt = (await res.json()) as { id: string; receivedAt: string };
  expect(res.status, JSON.stringify(receipt)).toBe(202);
  await waitForStoredEvent(receipt.id);
  return receipt;
}

async function readBack(eventId: string) {
  const res = await call(`/v1/events/${eventId}/body`, { token: admin.session });
  expect(res.status).toBe(200);
  return {
    bytes: new Uint8Array(await res.arrayBuffer()),
    contentType: res.headers.get("Content-Type"),
  };
}

async function listed(eventId: string) {
  const page = await expectStatus(
    call(`/v1/webhooks/${hook.webhook.id}/events?limit=100`, { token: admin.session }),
    200,
  );
  return page.items.find((event: { id: string }) => event.id === eventId);
}

function randomBytes(size: number) {
  const bytes = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += 65_536) {
    crypto.getRandomValues(bytes.subarray(offset, Math.min(size, offset + 65_536)));
  }
  return bytes;
}

describe("payloads are carried unchanged", () => {
  it("keeps JSON and form bodies as text with their content type", async () => {
    const json = await accept('{"a":[1,2,{"b":"ü"}]}', "application/json; charset=utf-8");
    const form = await accept("name=Ada+Lovelace&city=London", "application/x-www-form-urlencoded");

    expect(await listed(json.id)).toMatchObject({
      body: '{"a":[1,2,{"b":"ü"}]}',
      bodyEncoding: "utf8",
      contentType: "application/json; charset=utf-8",
      status: "stored",
      tokenId: hook.token.id,
    });
    expect(await listed(form.id)).toMatchObject({
      body: "name=Ada+Lovelace&city=London",
      contentType: "application/x-www-form-urlencoded",
    });
  });

  it("keeps bytes that are not UTF-8 as base64, and a BOM as sent", async () => {
    const binary = Uint8Array.from([0, 255, 254, 10, 13, 128, 65]);
    const withBom = Uint8Array.from([0xef, 0xbb, 0xbf, 0x68, 0x69]);

    const stored = await accept(binary, "application/octet-stream");
    const bom = await accept(withBom, "text/plain");

    const event = await listed(stored.id);
    expect(event.bodyEncoding).toBe("base64");
    expect(Uint8Array.from(atob(event.body), (char) => char.charCodeAt(0))).toEqual(binary);
    expect((await readBack(stored.id)).bytes).toEqual(binary);
    expect((await readBack(bom.id)).bytes).toEqual(withBom);
    expect((await listed(bom.id)).bodyEncoding).toBe("utf8");
  });

  it("keeps an empty body and a missing content type", async () => {
    const empty = await accept("");

    expect(await listed(empty.id)).toMatchObject({ body: "", bodySize: 0 });
  });

  it("puts a body too large for a message in R2 first, and reads it back exactly", async () => {
    const bytes = randomBytes(300 * 1024);

    const receipt = await accept(bytes, "application/pdf");

    const event = await listed(receipt.id);
    expect(event.bodySize).toBe(300 * 1024);
    expect(event.bodyEncoding).toBe("base64");
    const row = await env.DB.prepare("select body, body_key from events where id = ?")
      .bind(receipt.id)
      .first<{ body: string | null; body_key: string }>();
    expect(row?.body).toBeNull();
    expect(row?.body_key).toBe(`payloads/${hook.webhook.id}/${receipt.id}`);
    expect(await readBack(receipt.id)).toEqual({ bytes, contentType: "application/pdf" });
  });

  it("sends a text body near the message limit to R2 when escaping would overflow it", async () => {
    const text = '"'.repeat(100_000);

    const receipt = await accept(text, "text/plain");

    const row = await env.DB.prepare("select body_key from events where id = ?")
      .bind(receipt.id)
      .first<{ body_key: string | null }>();
    expect(row?.body_key).not.toBeNull();
    expect((await listed(receipt.id)).body).toBe(text);
  });

  it("accepts a body of exactly MAX_PAYLOAD_BYTES and refuses one byte more with 413", async () => {
    const limit = 6 * 1024 * 1024;

    const atLimit = await accept(randomBytes(limit), "application/octet-stream");
    const before = await tableCounts();
    const over = await send(hook.webhook.id, {
      authorization: hook.credentials.authorization,
      body: randomBytes(limit + 1),
    });
    const problem = (await over.json()) as { code: string; maxPayloadBytes: number };

    expect((await listed(atLimit.id)).bodySize).toBe(limit);
    expect(over.status).toBe(413);
    expect(problem).toMatchObject({ code: "payload_too_large", maxPayloadBytes: limit });
    expect(await tableCounts()).toEqual(before);
  });
});

describe("Idempotency-Key", () => {
  it("gives a retry the same event id and stores the event once", async () => {
    const first = await accept('{"n":1}', "application/json", { "Idempotency-Key": "order-42" });
    const { env: counted, counts } = instrumentedEnv();
    const retry = await send(hook.webhook.id, {
      authorization: hook.credentials.authorization,
      body: '{"n":1}',
      headers: { "Idempotency-Key": "order-42" },
      env: counted,
    });

    expect(retry.status).toBe(202);
    expect(await retry.json()).toEqual({ ...first, webhookId: hook.webhook.id });
    // The ingress recalls the receipt and enqueues nothing; the consumer's check is the
    // second line, for a retry that reaches a location where KV has not caught up.
    expect(counts.queueSends).toBe(0);
    const rows = await env.DB.prepare("select count(*) as n from events where idempotency_key = ?")
      .bind("order-42")
      .first<{ n: number }>();
    expect(rows?.n).toBe(1);
  });

  it("rejects a key that is empty, too long or not printable", async () => {
    for (const key of ["", "x".repeat(256), "tab\there", "ünï"]) {
      const res = await send(hook.webhook.id, {
        authorization: hook.credentials.authorization,
        headers: { "Idempotency-Key": key },
      });
      expect(res.status, key).toBe(400);
    }
  });

  it("keeps a key's receipt in KV for 24 hours", async () => {
    const key = "receipt-ttl";
    const slot = `idempotency:${hook.webhook.id}:${await sha256Hex(key)}`;
    const sentAt = Math.floor(Date.now() / 1000);

    const receipt = await accept("{}", "application/json", { "Idempotency-Key": key });

    const { keys } = await env.AUTH_CACHE.list({ prefix: slot });
    expect(keys.map((entry) => entry.name)).toEqual([slot]);
    const expiration = keys[0]?.expiration ?? 0;
    expect(expiration - sentAt).toBeGreaterThanOrEqual(DAY_SECONDS);
    expect(expiration - sentAt).toBeLessThanOrEqual(DAY_SECONDS + 5);
    expect(await env.AUTH_CACHE.get(slot, "json")).toEqual(receipt);
  });

  it("stores a second event with the key once 24 hours have passed, not before", async () => {
    const first = await accept('{"n":1}', "application/json", { "Idempotency-Key": "daily" });
    const stored = await env.DB.prepare("select received_at from events where id = ?")
      .bind(first.id)
      .first<{ received_at: number }>();
    const firstAt = stored?.received_at ?? 0;
    // Redeliveries as the consumer would get them once the KV receipt has expired.
    const within = keyedEnvelope("daily", firstAt + DAY_SECONDS * 1000 - 60_000);
    const after = keyedEnvelope("daily", firstAt + DAY_SECONDS * 1000 + 60_000);

    const withinResult = await consume(within);
    const afterResult = await consume(after);

    expect(firstAt).toBe(Date.parse(first.receivedAt));
    expect(withinResult.explicitAcks).toEqual(["m"]);
    expect(afterResult.explicitAcks).toEqual(["m"]);
    const rows = await env.DB.prepare(
      "select id from events where webhook_id = ? and idempotency_key = ? order by received_at",
    )
      .bind(hook.webhook.id, "daily")
      .all<{ id: string }>();
    expect(rows.results.map((row) => row.id)).toEqual([first.id, after.eventId]);
    expect(await listed(after.eventId)).toMatchObject({
      status: "stored",
      idempotencyKey: "daily",
    });
  });
});

const DAY_SECONDS = 86_400;

/** An envelope as the ingress makes it, on the test's webhook, with a key and a time. */
function keyedEnvelope(idempotencyKey: string, receivedAt: number): EventEnvelope {
  return envelopeFor(hook, admin.user.id, { idempotencyKey, receivedAt });
}

/** Delivers one message to the real events consumer. */
async function consume(envelope: EventEnvelope) {
  const batch = createMessageBatch("hookgate-events", [
    { id: "m", timestamp: new Date(), attempts: 1, body: envelope },
  ]);
  const ctx = createExecutionContext();
  await worker.queue(batch, env);
  return getQueueResult(batch, ctx);
}
