import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../http/app-env";
import {
  createAppToken,
  createWebhook,
  deleteWebhook,
  describeWebhook,
  listWebhooks,
  updateWebhook,
} from "../../services/webhooks";
import { ANY_ACCOUNT, BEARER, json, jsonBody, noContent, problems, z } from "../openapi";
import { presentIssuedToken, presentWebhook, readyCredentials } from "../presenters";
import {
  FutureTimestamp,
  IdParam,
  PageQuery,
  pageOf,
  ReadyCredentialsSchema,
  TokenWithSecretSchema,
  WebhookSchema,
} from "../schemas";

const WebhookParams = IdParam("wh");
const WebhookName = z.string().trim().min(1).max(200);

const CreatedWebhook = z
  .object({
    webhook: WebhookSchema,
    token: TokenWithSecretSchema,
    credentials: ReadyCredentialsSchema,
  })
  .openapi("CreatedWebhook");

const create = createRoute({
  method: "post",
  path: "/webhooks",
  tags: ["Webhooks"],
  summary: "Create a webhook and its first app token",
  description:
    "Returns the webhook URL and ready-to-use credentials. `tokenOwnerId` (admins only) " +
    "puts the app token on another account, typically a service account.",
  middleware: ANY_ACCOUNT,
  security: BEARER,
  request: {
    body: jsonBody(
      z.object({
        name: WebhookName,
        authMethod: z.enum(["bearer", "basic"]),
        tokenOwnerId: z.string().min(1).max(64).optional(),
      }),
    ),
  },
  responses: {
    201: json(CreatedWebhook, "The webhook, its app token with the secret, and credentials"),
    ...problems(400, 401, 403, 413, 415),
  },
});

const list = createRoute({
  method: "get",
  path: "/webhooks",
  tags: ["Webhooks"],
  summary: "List webhooks",
  description: "Admins see every webhook, members their own.",
  middleware: ANY_ACCOUNT,
  security: BEARER,
  request: { query: PageQuery },
  responses: {
    200: json(pageOf(WebhookSchema, "WebhookPage"), "A page of webhooks, oldest first"),
    ...problems(400, 401, 403),
  },
});

const read = createRoute({
  method: "get",
  path: "/webhooks/{id}",
  tags: ["Webhooks"],
  summary: "Read a webhook with its credentials and health",
  middleware: ANY_ACCOUNT,
  security: BEARER,
  request: { params: WebhookParams },
  responses: { 200: json(WebhookSchema, "The webhook"), ...problems(400, 401, 403, 404) },
});

const update = createRoute({
  method: "patch",
  path: "/webhooks/{id}",
  tags: ["Webhooks"],
  summary: "Rename, enable or disable a webhook",
  middleware: ANY_ACCOUNT,
  security: BEARER,
  request: {
    params: WebhookParams,
    body: jsonBody(z.object({ name: WebhookName.optional(), enabled: z.boolean().optional() })),
  },
  responses: { 200: json(WebhookSchema, "The webhook"), ...problems(400, 401, 403, 404, 413, 415) },
});

const remove = createRoute({
  method: "delete",
  path: "/webhooks/{id}",
  tags: ["Webhooks"],
  summary: "Delete a webhook with its app tokens and stored events",
  middleware: ANY_ACCOUNT,
  security: BEARER,
  request: { params: WebhookParams },
  responses: { 204: noContent, ...problems(400, 401, 403, 404) },
});

const createToken = createRoute({
  method: "post",
  path: "/webhooks/{id}/tokens",
  tags: ["Webhooks", "Tokens"],
  summary: "Issue another app token",
  description:
    "With `ownerId` (admins only) the token belongs to another account: the way to move a " +
    "webhook onto a service account. Senders then switch to the new token.",
  middleware: ANY_ACCOUNT,
  security: BEARER,
  request: {
    params: WebhookParams,
    body: jsonBody(
      z.object({
        name: z.string().trim().min(1).max(200).optional(),
        ownerId: z.string().min(1).max(64).optional(),
        expiresAt: FutureTimestamp.optional(),
      }),
    ),
  },
  responses: {
    201: json(
      z
        .object({ token: TokenWithSecretSchema, credentials: ReadyCredentialsSchema })
        .openapi("CreatedAppToken"),
      "The new app token with its secret, and credentials",
    ),
    ...problems(400, 401, 403, 404, 413, 415),
  },
});

export const webhookRoutes = new OpenAPIHono<AppEnv>()
  .openapi(create, async (c) => {
    const services = c.get("services");
    const { webhook, issued, tokenOwner } = await createWebhook(
      services,
      c.get("actor"),
      c.req.valid("json"),
    );
    const view = await describeWebhook(services, c.get("actor"), webhook.id);
    return c.json(
      {
        webhook: presentWebhook(view, new URL(c.req.url).origin, services.config),
        token: presentIssuedToken(issued),
        credentials: readyCredentials(webhook.authMethod, tokenOwner.username, issued.secret),
      },
      201,
    );
  })
  .openapi(list, async (c) => {
    const services = c.get("services");
    const page = await listWebhooks(services, c.get("actor"), c.req.valid("query"));
    const origin = new URL(c.req.url).origin;
    return c.json(
      {
        items: page.items.map((view) => presentWebhook(view, origin, services.config)),
        nextCursor: page.nextCursor,
      },
      200,
    );
  })
  .openapi(read, async (c) => {
    const services = c.get("services");
    const view = await describeWebhook(services, c.get("actor"), c.req.valid("param").id);
    return c.json(presentWebhook(view, new URL(c.req.url).origin, services.config), 200);
  })
  .openapi(update, async (c) => {
    const services = c.get("services");
    const { id } = c.req.valid("param");
    await updateWebhook(services, c.get("actor"), id, c.req.valid("json"));
    const view = await describeWebhook(services, c.get("actor"), id);
    return c.json(presentWebhook(view, new URL(c.req.url).origin, services.config), 200);
  })
  .openapi(remove, async (c) => {
    await deleteWebhook(c.get("services"), c.get("actor"), c.req.valid("param").id);
    return c.body(null, 204);
  })
  .openapi(createToken, async (c) => {
    const { webhook, issued, tokenOwner } = await createAppToken(
      c.get("services"),
      c.get("actor"),
      c.req.valid("param").id,
      c.req.valid("json"),
    );
    return c.json(
      {
        token: presentIssuedToken(issued),
        credentials: readyCredentials(webhook.authMethod, tokenOwner.username, issued.secret),
      },
      201,
    );
  });
