import { ConfigError, DAY_MS, readConfig } from "../config";
import { errorSummary, log } from "../shared/log";
import { type EventEnvelope, EventEnvelopeSchema } from "./envelope";

/** An `Idempotency-Key` makes events on the same webhook duplicates within this window. */
const IDEMPOTENCY_WINDOW_MS = DAY_MS;
const FAILURE_TTL_SECONDS = 7 * 86_400;
const failureKey = (eventId: string) => `event-failure:${eventId}`;

/**
 * Stores an event once, in one statement, so that concurrent consumers and redelivered
 * messages cannot store it twice: the id is the primary key, and an event with the same
 * idempotency key on the same webhook within 24 hours stops the insert. A replayed dead
 * event turns into a stored one, or, dying again, records its new error. Events of a
 * deleted webhook are dropped, as its stored events were. drizzle's builder cannot express
 * this INSERT … SELECT … ON CONFLICT … WHERE, hence the SQL.
 */
const STORE_EVENT = `
  insert into events (id, webhook_id, token_id, account_id, received_at, idempotency_key,
                      content_type, body, body_encoding, body_key, body_size, status,
                      attempts, last_error)
  select ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14
  where exists (select 1 from webhooks where id = ?2)
    and (?6 is null or not exists (
      select 1 from events
      where webhook_id = ?2 and idempotency_key = ?6 and id != ?1
        and received_at > ?5 - ${IDEMPOTENCY_WINDOW_MS}
        and received_at < ?5 + ${IDEMPOTENCY_WINDOW_MS}))
  on conflict (id) do update
    set status = excluded.status, attempts = excluded.attempts, last_error = excluded.last_error
    where events.status = 'dead'`;

function storeStatement(
  db: D1Database,
  envelope: EventEnvelope,
  outcome: { status: "stored" | "dead"; attempts: number; lastError: string | null },
) {
  return db
    .prepare(STORE_EVENT)
    .bind(
      envelope.eventId,
      envelope.webhookId,
      envelope.tokenId,
      envelope.accountId,
      envelope.receivedAt,
      envelope.idempotencyKey,
      envelope.contentType,
      envelope.body,
      envelope.bodyEncoding,
      envelope.bodyKey,
      envelope.bodySize,
      outcome.status,
      outcome.attempts,
      outcome.lastError,
    );
}

/** Exponential backoff for a failed message: 10 s, 20 s, 40 s … at most 5 minutes. */
export function retryDelaySeconds(attempts: number): number {
  return Math.min(300, 10 * 2 ** Math.max(0, attempts - 1));
}

/**
 * Stores many envelopes without an idempotency key in one statement: their rows travel as
 * one JSON array in one parameter, so a batch of small events costs one query rather than
 * one per event, and `returning` names the rows it inserted or revived. With no key, an
 * event's insert depends on no other event of the batch. Otherwise it does what
 * `STORE_EVENT` does.
 */
const STORE_KEYLESS_EVENTS = `
  insert into events (id, webhook_id, token_id, account_id, received_at, idempotency_key,
                      content_type, body, body_encoding, body_key, body_size, status,
                      attempts, last_error)
  select row.value ->> 'eventId', row.value ->> 'webhookId', row.value ->> 'tokenId',
         row.value ->> 'accountId', row.value ->> 'receivedAt', null,
         row.value ->> 'contentType', row.value ->> 'body', row.value ->> 'bodyEncoding',
         row.value ->> 'bodyKey', row.value ->> 'bodySize', 'stored',
         row.value ->> 'attempts', null
  from json_each(?1) as row
  where exists (select 1 from webhooks where id = row.value ->> 'webhookId')
  on conflict (id) do update set status = 'stored', attempts = excluded.attempts, last_error = null
    where events.status = 'dead'
  returning id`;

/**
 * What one JSON parameter of `STORE_KEYLESS_EVENTS` may hold, below D1's 2,000,000-byte
 * cap on a value. Rows are measured at three bytes per UTF-16 unit, their UTF-8 maximum.
 */
const KEYLESS_CHUNK_BYTES = 1_900_000;

interface Delivery {
  message: Message<unknown>;
  envelope: EventEnvelope;
}

/**
 * The statements that store a batch in one D1 transaction: the keyless events in as few
 * statements as their size allows, then each event with an idempotency key on its own, in
 * delivery order, so that a later duplicate sees the earlier one. `changed` reads the ids
 * they stored from the results of a batch that begins with them.
 */
function storeBatchStatements(db: D1Database, deliveries: Delivery[]) {
  const statements: D1PreparedStatement[] = [];
  const keyed: Delivery[] = [];
  let rows: string[] = [];
  let rowBytes = 0;
  const flush = () => {
    if (rows.length === 0) return;
    statements.push(db.prepare(STORE_KEYLESS_EVENTS).bind(`[${rows.join(",")}]`));
    rows = [];
    rowBytes = 0;
  };
  for (const delivery of deliveries) {
    const { envelope, message } = delivery;
    if (envelope.idempotencyKey !== null) {
      keyed.push(delivery);
      continue;
    }
    const row = JSON.stringify({ ...envelope, attempts: message.attempts });
    if (rowBytes + 3 * row.length > KEYLESS_CHUNK_BYTES) flush();
    rows.push(row);
    rowBytes += 3 * row.length;
  }
  flush();
  const bulk = statements.length;
  for (const { envelope, message } of keyed) {
    statements.push(
      storeStatement(db, envelope, {
        status: "stored",
        attempts: message.attempts,
        lastError: null,
      }),
    );
  }
  const count = statements.length;
  const changed = (results: D1Result[]) => {
    const ids = new Set<string>();
    for (const [index, result] of results.slice(0, count).entries()) {
      if (index < bulk) {
        for (const row of result.results as { id: string }[]) ids.add(row.id);
      } else if (result.meta.changes > 0) {
        ids.add((keyed[index - bulk] as Delivery).envelope.eventId);
      }
    }
    return ids;
  };
  return { statements, changed };
}

/**
 * The main consumer. A batch is stored in one D1 transaction with its activity; if that
 * fails, each message is tried alone so that one bad message cannot hold back the others.
 * A message that fails is retried with backoff and, after the retry limit, goes to the
 * dead-letter queue.
 */
export async function consumeEvents(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const interval = activityWriteInterval(env);
  const readable: Delivery[] = [];
  for (const message of batch.messages) {
    const parsed = EventEnvelopeSchema.safeParse(message.body);
    if (parsed.success) readable.push({ message, envelope: parsed.data });
    else await fail(env, message, null, `Unreadable envelope: ${parsed.error.message}`);
  }
  if (readable.length === 0) return;

  let ids: Set<string>;
  try {
    const { statements, changed } = storeBatchStatements(env.DB, readable);
    const activity = activityStatements(
      env.DB,
      interval,
      readable.map(({ envelope }) => envelope),
    );
    ids = changed(await env.DB.batch([...statements, ...activity]));
  } catch (batchError) {
    log("warn", "consumer.batch_failed", {
      size: readable.length,
      error: errorSummary(batchError),
    });
    return consumeOneByOne(env, interval, readable);
  }
  for (const { message } of readable) message.ack();
  await dropUnstoredBodies(
    env,
    readable.flatMap(({ envelope }) => (ids.has(envelope.eventId) ? [] : [envelope])),
  );
}

/** Stores each message in its own statement, then records the activity of those stored. */
async function consumeOneByOne(env: Env, interval: number, deliveries: Delivery[]) {
  const stored: EventEnvelope[] = [];
  const unchanged: EventEnvelope[] = [];
  for (const { message, envelope } of deliveries) {
    try {
      const result = await storeStatement(env.DB, envelope, {
        status: "stored",
        attempts: message.attempts,
        lastError: null,
      }).run();
      message.ack();
      stored.push(envelope);
      if (result.meta.changes === 0) unchanged.push(envelope);
    } catch (error) {
      await fail(env, message, envelope.eventId, errorSummary(error));
    }
  }
  await dropUnstoredBodies(env, unchanged);
  // A message that failed is no activity yet: it counts once it is stored.
  if (stored.length === 0) return;
  try {
    await env.DB.batch(activityStatements(env.DB, interval, stored));
  } catch (error) {
    // Losing an activity update delays nothing but the idle clock; the events are stored.
    log("warn", "consumer.activity_failed", { error: errorSummary(error) });
  }
}

/**
 * An envelope whose insert changed nothing was either stored before (a redelivery) or
 * dropped: a duplicate by `Idempotency-Key`, or an event of a deleted webhook. A dropped
 * event's large body would stay in R2 with no row to find it by, so it is deleted; a
 * body whose event row exists stays. Failing here loses nothing but storage.
 */
async function dropUnstoredBodies(env: Env, envelopes: EventEnvelope[]) {
  const withBodies = envelopes.filter((envelope) => envelope.bodyKey !== null);
  if (withBodies.length === 0) return;
  try {
    const { results } = await env.DB.prepare(
      "select id from events where id in (select value from json_each(?1))",
    )
      .bind(JSON.stringify(withBodies.map((envelope) => envelope.eventId)))
      .all<{ id: string }>();
    const kept = new Set(results.map((row) => row.id));
    const orphans = withBodies.flatMap((envelope) =>
      !kept.has(envelope.eventId) && envelope.bodyKey ? [envelope.bodyKey] : [],
    );
    if (orphans.length > 0) await env.PAYLOADS.delete(orphans);
  } catch (error) {
    log("warn", "consumer.orphan_cleanup_failed", { error: errorSummary(error) });
  }
}

async function fail(env: Env, message: Message<unknown>, eventId: string | null, error: string) {
  log("error", "consumer.message_failed", { eventId, attempts: message.attempts, error });
  if (eventId) {
    // Kept for the dead-letter consumer, which records it as the event's last error.
    await env.AUTH_CACHE.put(
      failureKey(eventId),
      JSON.stringify({ error, attempts: message.attempts }),
      { expirationTtl: FAILURE_TTL_SECONDS },
    ).catch(() => undefined);
  }
  message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
}

/**
 * The configured activity interval. The queue holds payloads that were already accepted,
 * so an unreadable configuration must not stop them from being stored: it is logged as
 * an error naming the variable, as every request then answers, and activity is written
 * on every batch meanwhile, which is only more writes.
 */
function activityWriteInterval(env: Env): number {
  try {
    return readConfig(env).activityWriteIntervalMs;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    log("error", "config.invalid", { message: error.message });
    return 0;
  }
}

/**
 * A webhook call is activity for the token's owner. It is recorded by the consumer rather
 * than on the ingress path, and each update only writes when the stored time is older
 * than `ACTIVITY_WRITE_INTERVAL_SECONDS`: at most one write per account and per token per
 * interval, whatever the request rate. An account the sweep switched off while the call
 * waited in the queue stays as the sweep left it: only an admin brings it back.
 */
function activityStatements(
  db: D1Database,
  interval: number,
  envelopes: EventEnvelope[],
): D1PreparedStatement[] {
  const latestByAccount = new Map<string, number>();
  const latestByToken = new Map<string, number>();
  for (const { accountId, tokenId, receivedAt } of envelopes) {
    latestByAccount.set(accountId, Math.max(latestByAccount.get(accountId) ?? 0, receivedAt));
    latestByToken.set(tokenId, Math.max(latestByToken.get(tokenId) ?? 0, receivedAt));
  }
  return [
    ...[...latestByAccount].map(([id, at]) =>
      db
        .prepare(
          "update users set last_active_at = ?1 " +
            "where id = ?2 and status = 'active' and last_active_at <= ?1 - ?3",
        )
        .bind(at, id, interval),
    ),
    ...[...latestByToken].map(([id, at]) =>
      db
        .prepare(
          "update tokens set last_used_at = ?1 " +
            "where id = ?2 and (last_used_at is null or last_used_at <= ?1 - ?3)",
        )
        .bind(at, id, interval),
    ),
  ];
}

/**
 * The dead-letter consumer: a message that exhausted its retries is stored as a `dead`
 * event with its last error, for an admin to inspect and replay.
 */
export async function consumeDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const message of batch.messages) {
    const parsed = EventEnvelopeSchema.safeParse(message.body);
    if (!parsed.success) {
      log("error", "dead_letter.unreadable", {
        messageId: message.id,
        error: parsed.error.message,
      });
      message.ack();
      continue;
    }
    const envelope = parsed.data;
    const failure = await env.AUTH_CACHE.get<{ error: string; attempts: number }>(
      failureKey(envelope.eventId),
      "json",
    ).catch(() => null);
    try {
      const result = await storeStatement(env.DB, envelope, {
        status: "dead",
        attempts: failure?.attempts ?? 0,
        lastError: failure?.error ?? "Delivery failed after every retry.",
      }).run();
      if (result.meta.changes === 0) await dropUnstoredBodies(env, [envelope]);
      log("warn", "dead_letter.recorded", {
        eventId: envelope.eventId,
        webhookId: envelope.webhookId,
      });
      message.ack();
    } catch (error) {
      log("error", "dead_letter.store_failed", {
        eventId: envelope.eventId,
        error: errorSummary(error),
      });
      message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
    }
  }
}
