import { Scalar } from "@scalar/hono-api-reference";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { methodNotAllowed } from "hono/method-not-allowed";
import { requestId } from "hono/request-id";
import { secureHeaders } from "hono/secure-headers";
import { managementApi } from "./api";
import { readConfig } from "./config";
import { openDatabase } from "./data/db";
import type { AppEnv } from "./http/app-env";
import { handleError, problem } from "./http/problems";
import { ingress } from "./ingress";

const MAX_MANAGEMENT_BODY_BYTES = 64 * 1024;

export const app = new Hono<AppEnv>();

app.use(requestId({ headerName: "X-Request-Id" }));
app.use(
  methodNotAllowed({
    app,
    onMethodNotAllowed: (c, methods) =>
      problem(c, "method_not_allowed", `Use ${methods.join(", ")}.`, {
        headers: { Allow: methods.join(", ") },
      }),
  }),
);
// The management API carries secrets in some answers: no caching anywhere, no sniffing.
// It sends no CORS headers: it is for servers and scripts, and /docs is same-origin.
app.use(
  "/v1/*",
  secureHeaders(),
  async (c, next) => {
    await next();
    c.header("Cache-Control", "no-store");
  },
  // Management bodies are small JSON documents; a larger one is refused before it is read.
  bodyLimit({
    maxSize: MAX_MANAGEMENT_BODY_BYTES,
    onError: (c) =>
      problem(c, "payload_too_large", `The body exceeds ${MAX_MANAGEMENT_BODY_BYTES} bytes.`, {
        extensions: { maxBodyBytes: MAX_MANAGEMENT_BODY_BYTES },
      }),
  }),
);
app.use("*", async (c, next) => {
  c.set("services", {
    env: c.env,
    db: openDatabase(c.env.DB),
    config: readConfig(c.env),
    now: new Date(),
    waitUntil: (promise) => c.executionCtx.waitUntil(promise),
  });
  await next();
});

app.route("/", ingress);
app.route("/v1", managementApi);
app.get("/docs", Scalar({ url: "/v1/openapi.json", pageTitle: "hookgate API" }));

app.notFound((c) => problem(c, "not_found", `Nothing lives at ${c.req.path}.`));
app.onError(handleError);
