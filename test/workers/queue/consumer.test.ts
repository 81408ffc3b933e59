import {
  createExecutionContext,
  createMessageBatch,
  getQueueResult,
  waitOnExecutionContext,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { app } from "../../../src/app";
import worker from "../../../src/index";
import { retryDelaySeconds } from "../../../src/queue/consumer";
import { type EventEnvelope, exceedsMessageBudget } from "../../../src/queue/envelope";
import {
  bootstrapAdmin,
  call,
  createService,
  createWebhook,
  envelopeFor,
  expectStatus,
  markInactive,
  ORIGIN,
  setLastActive,
} from "../helpers";
import { instrumentedEnv } from "../support/instrumented-env";

let admin: Awaited<ReturnType<typeof bootstrapAdmin>>;
let hook: Awaited<ReturnType<typeof createWebhook>>;

beforeAll(async () => {
  admin = await bootstrapAdmin();
  hook = await createWebhook(admin.session);
});

function envelope(overrides: Partial<EventEnvelope> = {}): EventEnvelope {
  return envelopeFor(hook, admin.user.id, overrides);
}

async function deliver(queue: string, bodies: unknown[], bindings: Env = env, attempts = 1) {
  const batch = createMessageBatch(
    queue,
    bodies.map((body, index) => ({ id: `msg-${index}`, timestamp: new Date(), attempts, body })),
  );
  // getQueueResult leaves each retry's delaySeconds out (vitest-plugin 1.5.0), so every
  // message's own retry() notes the delay it was asked for on the way through.
  const delays = new Map<string, number | undefined>();
  for (const message of batch.messages) {
    const retry = message.retry.bind(message);
    message.retry = (options?: QueueRetryOptions) => {
      delays.set(message.id, options?.delaySeconds);
      retry(options);
    };
  }
  const ctx = createExecutionContext();
  await worker.queue(batch, bindings);
  const result = await getQueueResult(batch, ctx);
  return {
    ...result,
    retryMessages: result.retryMessages.map((retry) => ({
      ...retry,
      delaySeconds: retry.delaySeconds ?? delays.get(retry.msgId),
    })),
  };
}

async function eventRow(id: string) {
  return env.DB.prepare("select * from events where id = ?").bind(id).first<{
    status: string;
    attempts: number;
    body: string | null;
    last_error: string | null;
  }>();
}

/**
 * D1 refusing writes of events, alone or in a batch, when `refuses` says so of the bound
 * values (every write, unless told otherwise); other statements go through.
 */
function failingEventWrites(refuses: (values: unknown[]) => boolean = () => true): Env {
  const failOn = (sql: string) => /insert into events/i.test(sql);
  const broken = new WeakSet<object>();
  const db = new Proxy(env.DB, {
    get(target, property) {
      if (property === "prepare") {
        return (sql: string) => {
          const statement = target.prepare(sql);
          if (!failOn(sql)) return statement;
          const bind = statement.bind.bind(statement);
          statement.bind = (...values: unknown[]) => {
            if (!refuses(values)) return bind(...values);
            const refused = {
              run: () => Promise.reject(new Error("D1_ERROR: database is locked")),
            } as unknown as D1PreparedStatement;
            broken.add(refused);
            return refused;
          };
          return statement;
        };
      }
      if (property === "batch") {
        return (statements: D1PreparedStatement[]) =>
          statements.some((statement) => broken.has(statement))
            ? Promise.reject(new Error("D1_ERROR: database is locked"))
            : target.batch(statements);
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { ...env, DB: db };
}

/**
 * The real bindings, with the events queue keeping a copy of each message before passing
 * it on, so that a test can deliver exactly what a request put on the queue.
 */
function recordingQueue(): { env: Env; sent: unknown[] } {
  const sent: unknown[] = [];
  const events = {
    send: (body: unknown, options?: QueueSendOptions) => {
      sent.push(body);
      return env.EVENTS.send(body, options);
    },
    sendBatch: (messages: Iterable<MessageSendRequest>, options?: QueueSendBatchOptions) => {
      const list = [...messages];
      sent.push(...list.map((message) => message.body));
      return env.EVENTS.sendBatch(list, options);
    },
  } as Queue;
  return { env: { ...env, EVENTS: events }, sent };
}

/** Calls the app on the given bindings, as the runtime would, waiting for its background work. */
async function callOn(bindings: Env, path: string, init: RequestInit) {
  const ctx = createExecutionContext();
  const response = await app.fetch(new Request(`${ORIGIN}${path}`, init), bindings, ctx);
  await waitOnExecutionContext(ctx);
  return response;
}

describe("the events consumer", () => {
  it("stores every message of a batch and acknowledges each", async () => {
    const messages = [envelope(), envelope({ body: "a=1", contentType: "text/plain" })];

    const result = await deliver("hookgate-events", messages);

    expect(result.explicitAcks.sort()).toEqual(["msg-0", "msg-1"]);
    expect(result.retryMessages).toEqual([]);
    for (const message of messages) {
      expect(await eventRow(message.eventId)).toMatchObject({
        status: "stored",
        body: message.body,
      });
    }
  });

  it("stores a full batch of events without idempotency keys in one query", async () => {
    const { env: counted, counts } = instrumentedEnv();
    const messages = Array.from({ length: 100 }, (_, index) =>
      envelope({ body: `{"n":${index}}`, bodySize: `{"n":${index}}`.length }),
    );

    const result = await deliver("hookgate-events", messages, counted);

    expect(result.explicitAcks).toHaveLength(100);
    // One insert, then the account's and the token's activity, all in one D1 batch.
    expect(counts.d1Queries).toBe(3);
    const { results } = await env.DB.prepare(
      "select id, body from events where id in (select value from json_each(?1))",
    )
      .bind(JSON.stringify(messages.map((message) => message.eventId)))
      .all<{ id: string; body: string }>();
    expect(new Map(results.map((row) => [row.id, row.body]))).toEqual(
      new Map(messages.map((message) => [message.eventId, message.body])),
    );
  });

  it("splits a batch of large events across inserts that D1 accepts", async () => {
    // The largest bodies a queue message carries, with characters of three UTF-8 bytes.
    const body = "€".repeat(20_000) + "x".repeat(60_000);
    const messages = Array.from({ length: 30 }, () =>
      envelope({ body, bodySize: new TextEncoder().encode(body).byteLength }),
    );
    expect(exceedsMessageBudget(messages[0] as EventEnvelope)).toBe(false);
    const { env: counted, counts } = instrumentedEnv();

    const result = await deliver("hookgate-events", messages, counted);

    expect(result.explicitAcks).toHaveLength(30);
    // Had an insert bound more than D1's 2,000,000 bytes, the batch would have failed and
    // each event been stored alone: 30 inserts and more.
    expect(counts.d1Queries).toBeLessThan(30);
    for (const message of messages) {
      expect((await eventRow(message.eventId))?.body).toBe(body);
    }
  });

  it("stores a redelivered message once", async () => {
    const message = envelope();

    await deliver("hookgate-events", [message]);
    const again = await deliver("hookgate-events", [message], env, 2);

    expect(again.explicitAcks).toEqual(["msg-0"]);
    const count = await env.DB.prepare("select count(*) as n from events where id = ?")
      .bind(message.eventId)
      .first<{ n: number }>();
    expect(count?.n).toBe(1);
  });

  it("stores two events with the same idempotency key on a webhook once", async () => {
    const first = envelope({ idempotencyKey: "invoice-7" });
    const second = envelope({ idempotencyKey: "invoice-7", receivedAt: Date.now() + 1000 });

    await deliver("hookgate-events", [first, second]);

    expect(await eventRow(first.eventId)).not.toBeNull();
    expect(await eventRow(second.eventId)).toBeNull();
  });

  it("stores events with the same idempotency key on two webhooks, one each", async () => {
    const other = await createWebhook(admin.session, { name: "Invoices" });
    const here = envelope({ idempotencyKey: "invoice-8" });
    const there = envelopeFor(other, admin.user.id, { idempotencyKey: "invoice-8" });

    await deliver("hookgate-events", [here]);
    await deliver("hookgate-events", [there]);

    expect(await eventRow(here.eventId)).not.toBeNull();
    expect(await eventRow(there.eventId)).not.toBeNull();
  });

  it("drops events of a deleted webhook, as deleting the webhook dropped its events", async () => {
    const gone = envelope({ webhookId: "wh_deleted00000000000000" });

    const result = await deliver("hookgate-events", [gone]);

    expect(result.explicitAcks).toEqual(["msg-0"]);
    expect(await eventRow(gone.eventId)).toBeNull();
  });

  it("deletes the R2 body of an event it drops, and keeps a stored event's", async () => {
    const stored = envelope({ body: null, bodyKey: `payloads/${hook.webhook.id}/kept` });
    const redelivered = { ...stored };
    const gone = envelope({
      webhookId: "wh_deleted00000000000000",
      body: null,
      bodyKey: "payloads/wh_deleted00000000000000/orphan",
    });
    const original = envelope({ idempotencyKey: "order-7" });
    const duplicate = envelope({
      idempotencyKey: "order-7",
      body: null,
      bodyKey: `payloads/${hook.webhook.id}/duplicate`,
    });
    for (const { bodyKey } of [stored, gone, duplicate]) {
      await env.PAYLOADS.put(bodyKey as string, "large body");
    }

    await deliver("hookgate-events", [stored, original]);
    await deliver("hookgate-events", [redelivered, gone, duplicate]);

    expect(await env.PAYLOADS.head(stored.bodyKey as string)).not.toBeNull();
    expect(await env.PAYLOADS.head(gone.bodyKey as string)).toBeNull();
    expect(await env.PAYLOADS.head(duplicate.bodyKey as string)).toBeNull();
    expect(await eventRow(duplicate.eventId)).toBeNull();
  });

  it("records a webhook call as activity at most once per interval", async () => {
    const longAgo = Date.now() - 30 * 86_400_000;
    await setLastActive(admin.user.id, longAgo);
    await env.DB.prepare("update tokens set last_used_at = null where id = ?")
      .bind(hook.token.id)
      .run();
    const now = Date.now();

    await deliver("hookgate-events", [envelope({ receivedAt: now })]);
    await deliver("hookgate-events", [envelope({ receivedAt: now + 60_000 })]);

    const user = await env.DB.prepare("select last_active_at as at from users where id = ?")
      .bind(admin.user.id)
      .first<{ at: number }>();
    const token = await env.DB.prepare("select last_used_at as at from tokens where id = ?")
      .bind(hook.token.id)
      .first<{ at: number }>();
    expect(user?.at).toBe(now);
    expect(token?.at).toBe(now);
  });

  it("leaves an account the sweep switched off meanwhile as it was", async () => {
    const service = await createService(admin.session, "switched-off-meanwhile");
    const served = await createWebhook(admin.session, { tokenOwnerId: service.id });
    const longAgo = Date.now() - 61 * 86_400_000;
    await setLastActive(service.id, longAgo);
    await markInactive(service.id);
    const call = envelopeFor(served, service.id);

    const result = await deliver("hookgate-events", [call]);

    expect(result.explicitAcks).toEqual(["msg-0"]);
    expect(await eventRow(call.eventId)).toMatchObject({ status: "stored" });
    const user = await env.DB.prepare("select last_active_at as at from users where id = ?")
      .bind(service.id)
      .first<{ at: number }>();
    const token = await env.DB.prepare("select last_used_at as at from tokens where id = ?")
      .bind(served.token.id)
      .first<{ at: number }>();
    expect(user?.at).toBe(longAgo);
    expect(token?.at).toBe(call.receivedAt);
  });

  it("still stores events and activity when the configuration is unreadable", async () => {
    const longAgo = Date.now() - 30 * 86_400_000;
    await setLastActive(admin.user.id, longAgo);
    const message = envelope();
    const errors: string[] = [];
    const consoleError = console.error;
    console.error = (line: string) => errors.push(line);

    try {
      const result = await deliver("hookgate-events", [message], {
        ...env,
        INACTIVITY_DAYS: "sixty",
      });
      expect(result.explicitAcks).toEqual(["msg-0"]);
    } finally {
      console.error = consoleError;
    }

    expect(await eventRow(message.eventId)).toMatchObject({ status: "stored" });
    const user = await env.DB.prepare("select last_active_at as at from users where id = ?")
      .bind(admin.user.id)
      .first<{ at: number }>();
    expect(user?.at).toBe(message.receivedAt);
    expect(errors.some((line) => line.includes("config.invalid"))).toBe(true);
    expect(errors.some((line) => line.includes("INACTIVITY_DAYS"))).toBe(true);
  });

  it("retries a message that cannot be stored, with growing backoff", async () => {
    const message = envelope();
    const longAgo = Date.now() - 30 * 86_400_000;
    await setLastActive(admin.user.id, longAgo);

    const first = await deliver("hookgate-events", [message], failingEventWrites(), 1);
    const third = await deliver("hookgate-events", [message], failingEventWrites(), 3);

    expect(first.explicitAcks).toEqual([]);
    expect(first.retryMessages).toEqual([{ msgId: "msg-0", delaySeconds: 10 }]);
    expect(third.explicitAcks).toEqual([]);
    expect(third.retryMessages).toEqual([{ msgId: "msg-0", delaySeconds: 40 }]);
    expect([1, 2, 3, 4, 5, 6].map(retryDelaySeconds)).toEqual([10, 20, 40, 80, 160, 300]);
    expect(await eventRow(message.eventId)).toBeNull();
    // Not stored, so not yet activity.
    const user = await env.DB.prepare("select last_active_at as at from users where id = ?")
      .bind(admin.user.id)
      .first<{ at: number }>();
    expect(user?.at).toBe(longAgo);
  });

  it("stores the rest of a batch when one message fails, as activity too", async () => {
    const longAgo = Date.now() - 30 * 86_400_000;
    await setLastActive(admin.user.id, longAgo);
    const poison = envelope({ body: "poison" });
    const keyed = envelope({ idempotencyKey: "order-9" });
    const good = envelope();
    // The poison's body is bound alone, or inside the JSON rows of a batch's insert.
    const refuses = (values: unknown[]) =>
      values.some(
        (value) => typeof value === "string" && (value === "poison" || value.includes('"poison"')),
      );

    const result = await deliver(
      "hookgate-events",
      [poison, keyed, good],
      failingEventWrites(refuses),
    );

    expect(result.explicitAcks.sort()).toEqual(["msg-1", "msg-2"]);
    expect(result.retryMessages).toEqual([{ msgId: "msg-0", delaySeconds: 10 }]);
    expect(await eventRow(poison.eventId)).toBeNull();
    expect(await eventRow(keyed.eventId)).toMatchObject({ status: "stored" });
    expect(await eventRow(good.eventId)).toMatchObject({ status: "stored" });
    const user = await env.DB.prepare("select last_active_at as at from users where id = ?")
      .bind(admin.user.id)
      .first<{ at: number }>();
    expect(user?.at).toBe(Math.max(keyed.receivedAt, good.receivedAt));
  });

  it("retries an unreadable message so that it reaches the dead-letter queue", async () => {
    const result = await deliver("hookgate-events", [{ not: "an envelope" }], env, 2);

    expect(result.explicitAcks).toEqual([]);
    expect(result.retryMessages).toEqual([{ msgId: "msg-0", delaySeconds: 20 }]);
  });
});

describe("dead letters", () => {
  it("are recorded as dead with the last error, and a replay stores them", async () => {
    const message = envelope({ body: '{"order":7,"note":"ü"}', bodySize: 23 });
    await deliver("hookgate-events", [message], failingEventWrites(), 6);

    const dead = await deliver("hookgate-events-dlq", [message]);

    expect(dead.explicitAcks).toEqual(["msg-0"]);
    expect(await eventRow(message.eventId)).toMatchObject({
      status: "dead",
      attempts: 6,
      last_error: "Error: D1_ERROR: database is locked",
    });
    const listed = await expectStatus(
      call(`/v1/webhooks/${hook.webhook.id}/events`, { token: admin.session }),
      200,
    );
    expect(
      listed.items.find((event: { id: string }) => event.id === message.eventId),
    ).toMatchObject({ status: "dead", lastError: "Error: D1_ERROR: database is locked" });

    const queue = recordingQueue();
    const replayed = await expectStatus(
      callOn(queue.env, `/v1/events/${message.eventId}/replay`, {
        method: "POST",
        headers: { Authorization: `Bearer ${admin.session}` },
      }),
      202,
    );
    expect(replayed.status).toBe("dead");
    expect(queue.sent).toEqual([message]);
    // What the consumer receives went through the queue as JSON.
    const redelivered = await deliver("hookgate-events", [
      JSON.parse(JSON.stringify(queue.sent[0])),
    ]);

    expect(redelivered.explicitAcks).toEqual(["msg-0"]);
    expect(await eventRow(message.eventId)).toMatchObject({ status: "stored", last_error: null });
    const stored = await expectStatus(
      call(`/v1/webhooks/${hook.webhook.id}/events`, { token: admin.session }),
      200,
    );
    expect(
      stored.items.find((event: { id: string }) => event.id === message.eventId),
    ).toMatchObject({
      status: "stored",
      body: '{"order":7,"note":"ü"}',
      bodyEncoding: "utf8",
      contentType: "application/json",
      lastError: null,
    });
    const again = await expectStatus(
      call(`/v1/events/${message.eventId}/replay`, { method: "POST", token: admin.session }),
      409,
    );
    expect(again.code).toBe("event_not_dead");
  });

  it("answer a replay with the body even when it waits in R2", async () => {
    const bodyKey = `payloads/${hook.webhook.id}/replayed-large`;
    const message = envelope({ body: null, bodyKey, bodyEncoding: "base64", bodySize: 4 });
    await env.PAYLOADS.put(bodyKey, new Uint8Array([0, 255, 1, 254]));
    await deliver("hookgate-events-dlq", [message]);

    const replayed = await expectStatus(
      callOn(recordingQueue().env, `/v1/events/${message.eventId}/replay`, {
        method: "POST",
        headers: { Authorization: `Bearer ${admin.session}` },
      }),
      202,
    );

    expect(replayed).toMatchObject({ body: "AP8B/g==", bodyEncoding: "base64", bodySize: 4 });
  });

  it("record the new error when a replayed event dies again", async () => {
    const message = envelope();
    const failure = (error: string, attempts: number) =>
      env.AUTH_CACHE.put(`event-failure:${message.eventId}`, JSON.stringify({ error, attempts }));
    await failure("Error: first death", 6);
    await deliver("hookgate-events-dlq", [message]);

    await failure("Error: second death", 6);
    await deliver("hookgate-events-dlq", [message]);

    expect(await eventRow(message.eventId)).toMatchObject({
      status: "dead",
      attempts: 6,
      last_error: "Error: second death",
    });
  });

  it("answer 500 naming the event when its body has gone from R2", async () => {
    const bodyKey = `payloads/${hook.webhook.id}/gone`;
    const message = envelope({ body: null, bodyKey, bodyEncoding: "base64", bodySize: 4 });
    await env.PAYLOADS.put(bodyKey, new Uint8Array([1, 2, 3, 4]));
    await deliver("hookgate-events-dlq", [message]);
    await env.PAYLOADS.delete(bodyKey);

    const missing = await expectStatus(
      call(`/v1/events/${message.eventId}/body`, { token: admin.session }),
      500,
    );

    expect(missing).toMatchObject({ code: "internal_error" });
    expect(missing.detail).toContain(message.eventId);
  });

  it("never turn a stored event dead", async () => {
    const message = envelope();
    await deliver("hookgate-events", [message]);

    await deliver("hookgate-events-dlq", [message]);

    expect((await eventRow(message.eventId))?.status).toBe("stored");
  });
});
