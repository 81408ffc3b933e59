import { exports } from "cloudflare:workers";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { bootstrapAdmin, call, createWebhook, ORIGIN, send } from "../helpers";

let admin: Awaited<ReturnType<typeof bootstrapAdmin>>;
let bearerHook: Awaited<ReturnType<typeof createWebhook>>;
let basicHook: Awaited<ReturnType<typeof createWebhook>>;

beforeAll(async () => {
  admin = await bootstrapAdmin();
  bearerHook = await createWebhook(admin.session);
  basicHook = await createWebhook(admin.session, { authMethod: "basic" });
});

function basic(text: string) {
  return `Basic ${btoa(String.fromCharCode(...new TextEncoder().encode(text)))}`;
}

/** Header values a client could send: printable ASCII, and what `fetch` lets through. */
const headerValue = fc
  .oneof(
    fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) }),
    fc.string({ maxLength: 60 }).map((value) => `Bearer ${value}`),
    fc.string({ maxLength: 60 }).map((value) => basic(value)),
    fc.string({ maxLength: 60 }).map((value) => `Basic ${value}`),
    fc.constantFrom("Bearer", "Basic", "Bearer  ", "Basic ===", "Basic Og==", "Negotiate abc"),
  )
  .map((value) => value.trim());

describe("the ingress, fed arbitrary credentials", { timeout: 120_000 }, () => {
  it("never answers 5xx and never accepts a credential that is not genuine", async () => {
    await fc.assert(
      fc.asyncProperty(
        headerValue,
        fc.constantFrom(bearerHook.webhook.id, basicHook.webhook.id, "wh_unknown", "%00"),
        async (authorization, webhookId) => {
          fc.pre(authorization !== "");
          const res = await send(webhookId, {
            authorization,
            headers: { "CF-Connecting-IP": `192.0.2.${authorization.length % 250}` },
          });
          expect(res.status).toBeLessThan(500);
          expect([202, 200, 201]).not.toContain(res.status);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("accepts a genuine credential only with its exact username", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ maxLength: 20 }).filter((name) => !name.includes(":") && name !== "admin"),
        async (username) => {
          const res = await send(basicHook.webhook.id, {
            authorization: basic(`${username}:${basicHook.token.secret}`),
          });
          expect(res.status).toBe(401);
        },
      ),
      { numRuns: 100 },
    );
  });
});

interface Operation {
  method: string;
  path: string;
}

/** Every operation of the OpenAPI document, with ids pointing at records that exist. */
async function operations(): Promise<Operation[]> {
  const res = await call("/v1/openapi.json");
  const document = (await res.json()) as { paths: Record<string, Record<string, unknown>> };
  const webhookId = bearerHook.webhook.id;
  return Object.entries(document.paths).flatMap(([path, item]) =>
    Object.keys(item).map((method) => ({
      method: method.toUpperCase(),
      path: `/v1${path.replace("{id}", path.startsWith("/users") ? admin.user.id : webhookId)}`,
    })),
  );
}

describe("the management API, fed arbitrary input", { timeout: 120_000 }, () => {
  it("answers every body with a status below 500", async () => {
    const all = await operations();
    const withBodies = all.filter((operation) => !["GET", "DELETE"].includes(operation.method));

    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...withBodies),
        fc.oneof(
          fc.jsonValue().map((value) => JSON.stringify(value)),
          fc.string({ maxLength: 200 }),
          fc
            .record({
              name: fc.anything(),
              username: fc.anything(),
              password: fc.anything(),
              kind: fc.anything(),
              authMethod: fc.anything(),
              scopes: fc.anything(),
              expiresAt: fc.anything(),
              overlapSeconds: fc.anything(),
            })
            .map((value) => JSON.stringify(value)),
        ),
        async (operation, body) => {
          const res = await exports.default.fetch(
            new Request(`${ORIGIN}${operation.path}`, {
              method: operation.method,
              headers: {
                Authorization: `Bearer ${admin.session}`,
                "Content-Type": "application/json",
                "CF-Connecting-IP": "192.0.2.200",
              },
              body,
            }),
          );
          const text = await res.text();
          expect(
            res.status,
            `${operation.method} ${operation.path} ${body} → ${text}`,
          ).toBeLessThan(500);
        },
      ),
      { numRuns: 400 },
    );
  });

  it("answers every query string with a status below 500", async () => {
    const lists = (await operations()).filter((operation) => operation.method === "GET");

    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...lists),
        fc.dictionary(
          fc.constantFrom("limit", "cursor", "status", "kind", "idleWithinDays", "withinDays", "x"),
          fc.oneof(fc.string({ maxLength: 40 }), fc.integer().map(String), fc.constant("")),
        ),
        async (operation, query) => {
          const search = new URLSearchParams(query).toString();
          const res = await call(`${operation.path}?${search}`, { token: admin.session });
          expect(res.status, `${operation.path}?${search}`).toBeLessThan(500);
          await res.body?.cancel();
        },
      ),
      { numRuns: 300 },
    );
  });
});
