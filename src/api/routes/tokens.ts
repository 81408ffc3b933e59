import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../http/app-env";
import { revokeToken, rollToken, transferToken } from "../../services/tokens";
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
import { presentIssuedToken, presentToken } from "../presenters";
import { IdParam, TokenSchema, TokenWithSecretSchema } from "../schemas";

const TokenParams = IdParam("tok");
const SEVEN_DAYS_SECONDS = 7 * 86_400;

const RollBody = z.object({
  overlapSeconds: z.number().int().min(0).max(SEVEN_DAYS_SECONDS).default(0),
});

const revoke = createRoute({
  method: "delete",
  path: "/tokens/{id}",
  tags: ["Tokens"],
  summary: "Revoke a token",
  description: "Takes effect at once in this location; revoking twice is harmless.",
  middleware: ANY_ACCOUNT,
  security: BEARER,
  request: { params: TokenParams },
  responses: { 204: noContent, ...problems(400, 401, 403, 404) },
});

const roll = createRoute({
  method: "post",
  path: "/tokens/{id}/roll",
  tags: ["Tokens"],
  summary: "Replace a token's secret",
  description:
    "Issues a new secret with the same kind, owner, webhook, scopes and expiry. The old " +
    "secret keeps working for `overlapSeconds` (default 0: it stops now), then expires; " +
    "it cannot be rolled again (409), its replacement can.",
  middleware: ANY_ACCOUNT,
  security: BEARER,
  request: {
    params: TokenParams,
    body: {
      required: false,
      content: {
        "application/json": { schema: RollBody },
      },
    },
  },
  responses: {
    201: json(
      z.object({ token: TokenWithSecretSchema, previous: TokenSchema }).openapi("RolledToken"),
      "The new token with its secret, and the old one with its new expiry",
    ),
    ...problems(400, 401, 403, 404, 409, 413, 415),
  },
});

const transfer = createRoute({
  method: "post",
  path: "/tokens/{id}/transfer",
  tags: ["Tokens"],
  summary: "Move a token to another account",
  description:
    "The secret does not change, so Bearer senders need no change; Basic senders must " +
    "send the new owner's username with it. Whoever knew the secret still holds it: " +
    "roll the token as well if that matters.",
  middleware: ADMIN_ONLY,
  security: BEARER,
  request: { params: TokenParams, body: jsonBody(z.object({ userId: z.string().min(1).max(64) })) },
  responses: {
    200: json(
      z.object({ token: TokenSchema, notice: z.string() }).openapi("TransferredToken"),
      "The token on its new account",
    ),
    ...problems(400, 401, 403, 404, 409, 413, 415),
  },
});

export const tokenRoutes = new OpenAPIHono<AppEnv>()
  .openapi(revoke, async (c) => {
    await revokeToken(c.get("services"), c.get("actor"), c.req.valid("param").id);
    return c.body(null, 204);
  })
  .openapi(roll, async (c) => {
    // With no body, or no Content-Type, @hono/zod-openapi hands over `{}` without running
    // the schema, so its defaults are applied here; a validated body passes unchanged.
    const { overlapSeconds } = RollBody.parse(c.req.valid("json"));
    const { issued, previous } = await rollToken(
      c.get("services"),
      c.get("actor"),
      c.req.valid("param").id,
      overlapSeconds,
    );
    return c.json({ token: presentIssuedToken(issued), previous: presentToken(previous) }, 201);
  })
  .openapi(transfer, async (c) => {
    const moved = await transferToken(
      c.get("services"),
      c.get("actor"),
      c.req.valid("param").id,
      c.req.valid("json").userId,
    );
    return c.json({ token: presentToken(moved.token), notice: transferNotice(moved) }, 200);
  });

function transferNotice(moved: Awaited<ReturnType<typeof transferToken>>): string {
  const secret =
    "The secret is unchanged: whoever knew it before the transfer can still use it. " +
    "Roll the token if that is not intended.";
  const username = `the username "${moved.owner.username}"`;
  if (!moved.opensBasicWebhooks) return `${secret} Senders need no change.`;
  if (moved.token.kind === "app") {
    return `${secret} Senders must now send ${username} with the same secret as password.`;
  }
  return (
    `${secret} Senders that use it with Basic authentication must now send ${username}; ` +
    "Bearer senders need no change."
  );
}
