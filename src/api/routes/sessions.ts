import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../http/app-env";
import { clientAddress } from "../../http/client";
import { HttpProblem } from "../../http/problems";
import { login } from "../../services/users";
import { json, jsonBody, problems, z } from "../openapi";

/** The login limiter's period in wrangler.toml, in seconds. */
const LOGIN_LIMIT_PERIOD_SECONDS = 60;

const route = createRoute({
  method: "post",
  path: "/sessions",
  tags: ["Sessions"],
  summary: "Log in with a password",
  description:
    "Returns a session token for the management API. Wrong username and wrong password " +
    "answer alike (401); an inactive account answers 403 `account_inactive`.",
  request: {
    body: jsonBody(
      z.object({ username: z.string().min(1).max(64), password: z.string().min(1).max(1024) }),
    ),
  },
  responses: {
    200: json(
      z.object({ token: z.string(), expiresAt: z.iso.datetime() }).openapi("Session"),
      "A new session",
    ),
    ...problems(400, 401, 403, 413, 415, 429),
  },
});

export const sessionRoutes = new OpenAPIHono<AppEnv>().openapi(route, async (c) => {
  const { success } = await c.env.LOGIN_LIMITER.limit({ key: `login:${clientAddress(c)}` });
  if (!success) {
    throw new HttpProblem("rate_limited", "Too many login attempts; wait and try again.", {
      headers: { "Retry-After": String(LOGIN_LIMIT_PERIOD_SECONDS) },
    });
  }

  const result = await login(c.get("services"), c.req.valid("json"));

  if (result.outcome === "invalid_credentials") {
    throw new HttpProblem("invalid_credentials", "Wrong username or password.");
  }
  if (result.outcome === "account_inactive") {
    throw new HttpProblem(
      "account_inactive",
      "This account is inactive after a long idle period; an admin can reactivate it.",
      { status: 403 },
    );
  }
  return c.json({ token: result.secret, expiresAt: result.expiresAt.toISOString() }, 200);
});
