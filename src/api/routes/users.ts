import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../http/app-env";
import { getVisibleUser } from "../../services/context";
import { createIntegrationToken, listUserTokens } from "../../services/tokens";
import {
  activeTokenCounts,
  createUser,
  deleteUser,
  listUsers,
  reactivateUser,
  setPassword,
  updateUser,
} from "../../services/users";
import {
  ADMIN_ONLY,
  ANY_ACCOUNT,
  BEARER,
  json,
  jsonBody,
  noContent,
  problems,
  z,
} from "../openapi";
import { presentIssuedToken, presentToken, presentUser } from "../presenters";
import {
  DisplayName,
  FutureTimestamp,
  IdParam,
  PageQuery,
  Password,
  pageOf,
  Scope,
  TokenSchema,
  TokenWithSecretSchema,
  Username,
  UserSchema,
} from "../schemas";

const UserParams = IdParam("usr");

const me = createRoute({
  method: "get",
  path: "/me",
  tags: ["Users"],
  summary: "The calling account",
  middleware: ANY_ACCOUNT,
  security: BEARER,
  responses: { 200: json(UserSchema, "The calling account"), ...problems(400, 401, 403) },
});

const create = createRoute({
  method: "post",
  path: "/users",
  tags: ["Users"],
  summary: "Create a person or a service account",
  description:
    "A person logs in with a password; a service account has none and exists to own tokens.",
  middleware: ADMIN_ONLY,
  security: BEARER,
  request: {
    body: jsonBody(
      z
        .object({
          username: Username,
          displayName: DisplayName.optional(),
          kind: z.enum(["person", "service"]),
          role: z.enum(["admin", "member"]).default("member"),
          password: Password.optional(),
        })
        // Checked here as well as in the service, so that one answer lists every bad field.
        .superRefine((user, ctx) => {
          if (user.kind === "service" && user.password !== undefined) {
            ctx.addIssue({
              code: "custom",
              path: ["password"],
              message: "Must be absent for a service account",
            });
          }
          if (user.kind === "person" && user.password === undefined) {
            ctx.addIssue({
              code: "custom",
              path: ["password"],
              message: "Required for a person account",
            });
          }
        })
        .openapi("NewUser"),
    ),
  },
  responses: {
    201: json(UserSchema, "The new account"),
    ...problems(400, 401, 403, 409, 413, 415),
  },
});

const list = createRoute({
  method: "get",
  path: "/users",
  tags: ["Users"],
  summary: "List accounts",
  middleware: ADMIN_ONLY,
  security: BEARER,
  request: {
    query: PageQuery.extend({
      status: z.enum(["active", "inactive"]).optional(),
      kind: z.enum(["person", "service"]).optional(),
      idleWithinDays: z.coerce.number().min(0).max(3650).optional().openapi({
        description: "Only active accounts that go inactive within this many days",
      }),
    }),
  },
  responses: {
    200: json(pageOf(UserSchema, "UserPage"), "A page of accounts, oldest first"),
    ...problems(400, 401, 403),
  },
});

const read = createRoute({
  method: "get",
  path: "/users/{id}",
  tags: ["Users"],
  summary: "Read an account",
  middleware: ADMIN_ONLY,
  security: BEARER,
  request: { params: UserParams },
  responses: { 200: json(UserSchema, "The account"), ...problems(400, 401, 403, 404) },
});

const update = createRoute({
  method: "patch",
  path: "/users/{id}",
  tags: ["Users"],
  summary: "Change an account's display name or role",
  middleware: ADMIN_ONLY,
  security: BEARER,
  request: {
    params: UserParams,
    body: jsonBody(
      z.object({
        displayName: DisplayName.optional(),
        role: z.enum(["admin", "member"]).optional(),
      }),
    ),
  },
  responses: {
    200: json(UserSchema, "The account"),
    ...problems(400, 401, 403, 404, 409, 413, 415),
  },
});

const password = createRoute({
  method: "put",
  path: "/users/{id}/password",
  tags: ["Users"],
  summary: "Set a password",
  description:
    "The account stays active and its app and integration tokens keep working; its " +
    "sessions are revoked. An admin uses this to lock a person out without breaking webhooks.",
  middleware: ANY_ACCOUNT,
  security: BEARER,
  request: { params: UserParams, body: jsonBody(z.object({ password: Password })) },
  responses: { 204: noContent, ...problems(400, 401, 403, 404, 413, 415) },
});

const createToken = createRoute({
  method: "post",
  path: "/users/{id}/tokens",
  tags: ["Tokens"],
  summary: "Create an integration token",
  description:
    "An integration token opens every webhook. `send` lets it post to webhooks; `manage` " +
    "lets it call this API with its owner's role. The secret is in this response only.",
  middleware: ANY_ACCOUNT,
  security: BEARER,
  request: {
    params: UserParams,
    body: jsonBody(
      z.object({
        name: z.string().trim().min(1).max(200),
        scopes: z
          .array(Scope)
          .min(1)
          .default(["send"])
          .transform((scopes) => [...new Set(scopes)]),
        expiresAt: FutureTimestamp.optional(),
      }),
    ),
  },
  responses: {
    201: json(TokenWithSecretSchema, "The new token with its secret"),
    ...problems(400, 401, 403, 404, 413, 415),
  },
});

const listTokens = createRoute({
  method: "get",
  path: "/users/{id}/tokens",
  tags: ["Tokens"],
  summary: "List an account's tokens",
  description: "Prefixes and metadata only; secrets are never shown again.",
  middleware: ANY_ACCOUNT,
  security: BEARER,
  request: {
    params: UserParams,
    query: PageQuery.extend({ kind: z.enum(["app", "integration", "session"]).optional() }),
  },
  responses: {
    200: json(pageOf(TokenSchema, "TokenPage"), "A page of tokens, oldest first"),
    ...problems(400, 401, 403, 404),
  },
});

const reactivate = createRoute({
  method: "post",
  path: "/users/{id}/reactivate",
  tags: ["Users"],
  summary: "Reactivate an account",
  description:
    "Sets the account active with its last activity now. Its tokens work again at once: " +
    "their cached denials are purged before this answers.",
  middleware: ADMIN_ONLY,
  security: BEARER,
  request: { params: UserParams },
  responses: { 200: json(UserSchema, "The account"), ...problems(400, 401, 403, 404) },
});

const remove = createRoute({
  method: "delete",
  path: "/users/{id}",
  tags: ["Users"],
  summary: "Delete an account",
  description:
    "Refused with 409 `user_has_active_tokens`, listing them, while the account holds a " +
    "live app or integration token. Otherwise deletes it with its sessions and dead " +
    "tokens; the webhooks it owned pass to the deleting admin.",
  middleware: ADMIN_ONLY,
  security: BEARER,
  request: { params: UserParams },
  responses: { 204: noContent, ...problems(400, 401, 403, 404, 409) },
});

export const userRoutes = new OpenAPIHono<AppEnv>()
  .openapi(me, async (c) => {
    const services = c.get("services");
    const { user } = c.get("actor");
    const counts = await activeTokenCounts(services, [user.id]);
    return c.json(presentUser(user, services.config, counts.get(user.id) ?? 0), 200);
  })
  .openapi(create, async (c) => {
    const services = c.get("services");
    const user = await createUser(services, c.get("actor"), c.req.valid("json"));
    return c.json(presentUser(user, services.config, 0), 201);
  })
  .openapi(list, async (c) => {
    const services = c.get("services");
    const page = await listUsers(services, c.req.valid("query"));
    return c.json(
      {
        items: page.items.map(({ user, activeTokens }) =>
          presentUser(user, services.config, activeTokens),
        ),
        nextCursor: page.nextCursor,
      },
      200,
    );
  })
  .openapi(read, async (c) => {
    const services = c.get("services");
    const user = await getVisibleUser(services, c.get("actor"), c.req.valid("param").id);
    const counts = await activeTokenCounts(services, [user.id]);
    return c.json(presentUser(user, services.config, counts.get(user.id) ?? 0), 200);
  })
  .openapi(update, async (c) => {
    const services = c.get("services");
    const { id } = c.req.valid("param");
    const user = await updateUser(services, c.get("actor"), id, c.req.valid("json"));
    const counts = await activeTokenCounts(services, [user.id]);
    return c.json(presentUser(user, services.config, counts.get(user.id) ?? 0), 200);
  })
  .openapi(password, async (c) => {
    const { id } = c.req.valid("param");
    await setPassword(c.get("services"), c.get("actor"), id, c.req.valid("json").password);
    return c.body(null, 204);
  })
  .openapi(createToken, async (c) => {
    const { id } = c.req.valid("param");
    const issued = await createIntegrationToken(
      c.get("services"),
      c.get("actor"),
      id,
      c.req.valid("json"),
    );
    return c.json(presentIssuedToken(issued), 201);
  })
  .openapi(reactivate, async (c) => {
    const services = c.get("services");
    const user = await reactivateUser(services, c.get("actor"), c.req.valid("param").id);
    const counts = await activeTokenCounts(services, [user.id]);
    return c.json(presentUser(user, services.config, counts.get(user.id) ?? 0), 200);
  })
  .openapi(remove, async (c) => {
    await deleteUser(c.get("services"), c.get("actor"), c.req.valid("param").id);
    return c.body(null, 204);
  })
  .openapi(listTokens, async (c) => {
    const { id } = c.req.valid("param");
    const page = await listUserTokens(c.get("services"), c.get("actor"), id, c.req.valid("query"));
    return c.json({ items: page.items.map(presentToken), nextCursor: page.nextCursor }, 200);
  });
