import { and, desc, eq } from "drizzle-orm";
import { afterCursor, decodeCursor, encodeCursor, type Page } from "../data/pagination";
import { type Event, events, webhooks } from "../data/schema";
import { decodeBody, type EventEnvelope, encodeBodyAs } from "../queue/envelope";
import { DomainError, notFound } from "../shared/errors";
import { auditInsert } from "./audit";
import { type Actor, assertVisible, type ServiceContext } from "./context";
import { getVisibleWebhook } from "./webhooks";

/** An event with its body in hand, wherever it was stored. */
export interface StoredEvent {
  event: Event;
  body: string;
}

/**
 * Bodies can be up to `MAX_PAYLOAD_BYTES` each, so a page also stops once its bodies add
 * up to this many bytes (always after at least one event); `nextCursor` continues.
 */
export const PAGE_BODY_BUDGET_BYTES = 16 * 1024 * 1024;

export async function listEvents(
  ctx: ServiceContext,
  actor: Actor,
  webhookId: string,
  query: { limit: number; cursor?: string | undefined },
): Promise<Page<StoredEvent>> {
  await getVisibleWebhook(ctx, actor, webhookId);
  const cursor = decodeCursor(query.cursor);
  const rows = await ctx.db
    .select()
    .from(events)
    .where(
      and(
        eq(events.webhookId, webhookId),
        afterCursor(cursor, events.receivedAt, events.id, "desc"),
      ),
    )
    .orderBy(desc(events.receivedAt), desc(events.id))
    .limit(query.limit + 1);

  const items: StoredEvent[] = [];
  let budget = PAGE_BODY_BUDGET_BYTES;
  for (const event of rows.slice(0, query.limit)) {
    if (items.length > 0 && event.bodySize > budget) break;
    items.push({ event, body: await readBody(ctx, event) });
    budget -= event.bodySize;
  }
  const last = items.at(-1)?.event;
  const more = items.length < rows.length;
  return {
    items,
    nextCursor: more && last ? encodeCursor({ at: last.receivedAt.getTime(), id: last.id }) : null,
  };
}

/** The body as the API shows it: inline from D1, or fetched from R2 and encoded alike. */
export async function readBody(ctx: ServiceContext, event: Event): Promise<string> {
  if (event.bodyKey === null) return event.body ?? "";
  return encodeBodyAs(await readBodyBytes(ctx, event), event.bodyEncoding);
}

export async function readBodyBytes(
  ctx: ServiceContext,
  event: Event,
): Promise<Uint8Array<ArrayBuffer>> {
  if (event.bodyKey === null) return decodeBody(event.body ?? "", event.bodyEncoding);
  const object = await ctx.env.PAYLOADS.get(event.bodyKey);
  if (!object) {
    // Not a passing failure (R2 answered): retrying would not bring the body back.
    throw new DomainError("internal_error", `The body of ${event.id} is missing from storage.`);
  }
  return new Uint8Array(await object.arrayBuffer());
}

export async function getVisibleEvent(ctx: ServiceContext, actor: Actor, eventId: string) {
  const [row] = await ctx.db
    .select({ event: events, ownerId: webhooks.ownerId })
    .from(events)
    .innerJoin(webhooks, eq(events.webhookId, webhooks.id))
    .where(eq(events.id, eventId));
  if (!row) throw notFound("This event");
  assertVisible(actor, row.ownerId, "This event");
  return row.event;
}

/** Puts a dead event back on the queue; the consumer turns it into a stored one. */
export async function replayEvent(ctx: ServiceContext, actor: Actor, eventId: string) {
  const event = await getVisibleEvent(ctx, actor, eventId);
  if (event.status !== "dead") {
    throw new DomainError(
      "event_not_dead",
      "Only dead events can be replayed; this one is stored.",
    );
  }

  const envelope: EventEnvelope = {
    version: 1,
    eventId: event.id,
    webhookId: event.webhookId,
    tokenId: event.tokenId,
    accountId: event.accountId,
    receivedAt: event.receivedAt.getTime(),
    idempotencyKey: event.idempotencyKey,
    contentType: event.contentType,
    body: event.body,
    bodyEncoding: event.bodyEncoding,
    bodyKey: event.bodyKey,
    bodySize: event.bodySize,
  };
  await ctx.env.EVENTS.send(envelope, { contentType: "json" });
  await auditInsert(ctx.db, ctx.now, {
    actorId: actor.user.id,
    action: "event.replayed",
    targetType: "event",
    targetId: event.id,
    details: { webhookId: event.webhookId, lastError: event.lastError },
  });
  return event;
}
