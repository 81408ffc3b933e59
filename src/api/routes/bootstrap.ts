import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import { createMiddleware } from "hono/factory";
import { equalInConstantTime } from "../../auth/constant-time";
import type { AppEnv } from "../../http/app-env";
import { parseAuthorization } from "../../http/authorization";
import { HttpProblem } from "../../http/problems";
import { bootstrap } from "../../services/users";
import { json, jsonBody, problems, z } from "../openapi";
import { presentIssuedToken, presentUser } from "../presenters";
import { DisplayName, Password, TokenWithSecretSchema, Username, UserSchema } from "../schemas";

/** Checks `Authorization: Bearer <BOOTSTRAP_TOKEN>` in constant time. */
const requireBootstrapToken = createMiddleware<AppEnv>(async (c, next) => {
  const expected = c.env.BOOTSTRAP_TOKEN;
  if (!expected) {
    throw new HttpProblem(
      "forbidden",
      "Bootstrap is disabled: the BOOTSTRAP_TOKEN secret is unset.",
    );
  }
  const parsed = parseAuthorization(c.req.header("Authorization"));
  const presented =
    parsed.kind === "credential" && parsed.credential.scheme === "bearer"
      ? parsed.credential.token
      : "";
  if (!equalInConstantTime(presented, expected)) {
    throw new HttpProblem(
      "invalid_credentials",
      "Send `Authorization: Bearer <BOOTSTRAP_TOKEN>`.",
      {
        headers: { "WWW-Authenticate": 'Bearer realm="hookgate-bootstrap"' },
      },
    );
  }
  await next();
});

const route = createRoute({
  method: "post",
  path: "/bootstrap",
  tags: ["Setup"],
  summary: "Create the first admin",
  description:
    "Takes `Authorization: Bearer <BOOTSTRAP_TOKEN>`. Answers 409 once any account exists.",
  middleware: [requireBootstrapToken],
  security: [{ bootstrapToken: [] }],
  request: {
    body: jsonBody(
      z.object({ username: Username, password: Password, displayName: DisplayName.optional() }),
    ),
  },
  responses: {
    201: json(
      z
        .object({
          user: UserSchema,
          sessionToken: z.string(),
          integrationToken: TokenWithSecretSchema,
        })
        .openapi("Bootstrap"),
      "The first admin, a session token and an integration token (send, manage)",
    ),
    ...problems(400, 401, 403, 409, 413, 415),
  },
});

export const bootstrapRoutes = new OpenAPIHono<AppEnv>().openapi(route, async (c) => {
  const services = c.get("services");
  const result = await bootstrap(services, c.req.valid("json"));
  return c.json(
    {
      user: presentUser(result.user, services.config, 1),
      sessionToken: result.session.secret,
      integrationToken: presentIssuedToken(result.integration),
    },
    201,
  );
});
