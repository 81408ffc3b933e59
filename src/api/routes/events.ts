import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import type { Event } from "../../data/schema";
import type { AppEnv } from "../../http/app-env";
import {
  getVisibleEvent,
  listEvents,
  PAGE_BODY_BUDGET_BYTES,
  readBody,
  readBodyBytes,
  replayEvent,
} from "../../services/events";
import { ADMIN_ONLY, ANY_ACCOUNT, BEARER, json, problems, z } from "../openapi";
import { EventSchema, IdParam, PageQuery, pageOf } from "../schemas";

const list = createRoute({
  method: "get",
  path: "/webhooks/{id}/events",
  tags: ["Events"],
  summary: "Stored events of a webhook, newest first",
  description:
    "Each event carries its exact body. A page ends after `limit` events or once its " +
    `bodies reach ${PAGE_BODY_BUDGET_BYTES} bytes, whichever comes first.`,
  middleware: ANY_ACCOUNT,
  security: BEARER,
  request: { params: IdParam("wh"), query: PageQuery },
  responses: {
    200: json(pageOf(EventSchema, "EventPage"), "A page of events"),
    ...problems(400, 401, 403, 404),
  },
});

const body = createRoute({
  method: "get",
  path: "/events/{id}/body",
  tags: ["Events"],
  summary: "An event's body as it was sent",
  description: "The exact bytes, with the `Content-Type` the sender gave.",
  middleware: ANY_ACCOUNT,
  security: BEARER,
  request: { params: IdParam("evt") },
  responses: {
    200: { description: "The body", content: { "application/octet-stream": { schema: z.any() } } },
    ...problems(400, 401, 403, 404),
  },
});

const replay = createRoute({
  method: "post",
  path: "/events/{id}/replay",
  tags: ["Events"],
  summary: "Put a dead event back on the queue",
  description: "The event turns `stored` once the consumer has stored it.",
  middleware: ADMIN_ONLY,
  security: BEARER,
  request: { params: IdParam("evt") },
  responses: {
    202: json(EventSchema, "The event, queued again"),
    ...problems(400, 401, 403, 404, 409),
  },
});

function presentEvent(event: Event, body: string) {
  return {
    id: event.id,
    webhookId: event.webhookId,
    tokenId: event.tokenId,
    receivedAt: event.receivedAt.toISOString(),
    status: event.status,
    contentType: event.contentType,
    body,
    bodyEncoding: event.bodyEncoding,
    bodySize: event.bodySize,
    idempotencyKey: event.idempotencyKey,
    attempts: event.attempts,
    lastError: event.lastError,
  };
}

export const eventRoutes = new OpenAPIHono<AppEnv>()
  .openapi(list, async (c) => {
    const page = await listEvents(
      c.get("services"),
      c.get("actor"),
      c.req.valid("param").id,
      c.req.valid("query"),
    );
    return c.json(
      {
        items: page.items.map(({ event, body }) => presentEvent(event, body)),
        nextCursor: page.nextCursor,
      },
      200,
    );
  })
  .openapi(body, async (c) => {
    const services = c.get("services");
    const event = await getVisibleEvent(services, c.get("actor"), c.req.valid("param").id);
    const bytes = await readBodyBytes(services, event);
    return c.body(bytes, 200, {
      "Content-Type": event.contentType ?? "application/octet-stream",
    });
  })
  .openapi(replay, async (c) => {
    const services = c.get("services");
    const event = await replayEvent(services, c.get("actor"), c.req.valid("param").id);
    return c.json(presentEvent(event, await readBody(services, event)), 202);
  });
