import { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../http/app-env";
import { HttpProblem } from "../http/problems";
import { auditRoutes } from "./routes/audit";
import { bootstrapRoutes } from "./routes/bootstrap";
import { eventRoutes } from "./routes/events";
import { reportRoutes } from "./routes/reports";
import { sessionRoutes } from "./routes/sessions";
import { tokenRoutes } from "./routes/tokens";
import { userRoutes } from "./routes/users";
import { webhookRoutes } from "./routes/webhooks";

/** The management API, mounted at `/v1`; every input is checked by its zod schema. */
export const managementApi = new OpenAPIHono<AppEnv>({
  defaultHook: (result) => {
    if (result.success) return;
    const errors = result.error.issues.map((issue) => ({
      field: issue.path.length > 0 ? issue.path.join(".") : "(body)",
      message: issue.message,
    }));
    const fields = errors.map((error) => error.field).join(", ");
    throw new HttpProblem("validation_failed", `Invalid input: ${fields}.`, {
      extensions: { errors },
    });
  },
});

managementApi.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
  type: "http",
  scheme: "bearer",
  description: "A session token (`hgs_…`) or an integration token with `manage` (`hgi_…`)",
});
managementApi.openAPIRegistry.registerComponent("securitySchemes", "bootstrapToken", {
  type: "http",
  scheme: "bearer",
  description: "The deployment's `BOOTSTRAP_TOKEN` secret",
});

managementApi
  .route("/", bootstrapRoutes)
  .route("/", sessionRoutes)
  .route("/", userRoutes)
  .route("/", tokenRoutes)
  .route("/", webhookRoutes)
  .route("/", eventRoutes)
  .route("/", reportRoutes)
  .route("/", auditRoutes);

managementApi.doc31("/openapi.json", (c) => ({
  openapi: "3.1.0",
  info: {
    title: "hookgate management API",
    version: "1",
    description:
      "Accounts, webhooks and tokens for hookgate. Errors are `application/problem+json` " +
      "(RFC 9457) with a stable `code`. Lists take `limit` and an opaque `cursor`.",
  },
  servers: [{ url: `${new URL(c.req.url).origin}/v1` }],
}));
