import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import worker from "../../../src/index";
import { newId } from "../../../src/shared/ids";
import { TEST_BOOTSTRAP_TOKEN } from "../constants";
import {
  bootstrapAdmin,
  call,
  createPerson,
  createWebhook,
  expectStatus,
  ORIGIN,
  send,
} from "../helpers";

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
  /** The path as the OpenAPI document names it, e.g. `/tokens/{id}/roll`. */
  template: string;
  path: string;
}

/** Records the management fuzzing aims at, one of each kind an `{id}` can name. */
interface Targets {
  /** An integration token with `manage`: unlike a session, it survives a password change. */
  credential: string;
  ids: Record<"users" | "tokens" | "webhooks" | "events", string[]>;
  /** Real tokens that do not open the management API: an app token, a `send`-only one. */
  notForManagement: string[];
}

let targets: Targets;

/** Puts one message through the real consumer of `queue`: a stored event, or a dead one. */
async function storeEvent(queue: "hookgate-events" | "hookgate-events-dlq") {
  const eventId = newId("evt");
  const envelope = {
    version: 1,
    eventId,
    webhookId: bearerHook.webhook.id,
    tokenId: bearerHook.token.id,
    accountId: admin.user.id,
    receivedAt: Date.now(),
    idempotencyKey: null,
    contentType: "text/plain",
    body: "fuzz",
    bodyEncoding: "utf8",
    bodyKey: null,
    bodySize: 4,
  };
  const batch = createMessageBatch(queue, [
    { id: "m", timestamp: new Date(), attempts: 1, body: envelope },
  ]);
  await worker.queue(batch, env);
  expect((await getQueueResult(batch, createExecutionContext())).explicitAcks).toEqual(["m"]);
  return eventId;
}

async function createTargets(): Promise<Targets> {
  const target = await createPerson(admin.session, "fuzz-target");
  const managed = await createWebhook(admin.session, { name: "Fuzzed" });
  const targetToken = await expectStatus(
    call(`/v1/users/${target.user.id}/tokens`, {
      method: "POST",
      token: admin.session,
      body: { name: "fuzz", scopes: ["send"] },
    }),
    201,
  );
  const deadEvent = await storeEvent("hookgate-events-dlq");
  const storedEvent = await storeEvent("hookgate-events");
  return {
    credential: admin.integration.secret,
    ids: {
      users: [target.user.id],
      tokens: [managed.token.id, targetToken.id],
      webhooks: [managed.webhook.id],
      events: [deadEvent, storedEvent],
    },
    notForManagement: [managed.token.secret, targetToken.secret],
  };
}

/**
 * Every operation of the OpenAPI document, once for each record of the kind its `{id}`
 * names, so that each handler gets past its lookup and reaches its own logic.
 */
async function operations(): Promise<Operation[]> {
  const document = await expectStatus(call("/v1/openapi.json"), 200);
  const paths = document.paths as Record<string, Record<string, unknown>>;
  return Object.entries(paths).flatMap(([template, item]) =>
    Object.keys(item).flatMap((method) => {
      if (!template.includes("{id}")) {
        return [{ method: method.toUpperCase(), template, path: `/v1${template}` }];
      }
      const kind = template.split("/")[1] as keyof Targets["ids"];
      const ids = targets.ids[kind];
      if (!ids) throw new Error(`No record to fuzz ${template} with`);
      return ids.map((id) => ({
        method: method.toUpperCase(),
        template,
        path: `/v1${template.replace("{id}", id)}`,
      }));
    }),
  );
}

const TAKES_NO_BODY = ["GET", "HEAD", "DELETE"];

/** The Authorization an operation is called with: bootstrap takes its own secret. */
function credentialFor(operation: Operation) {
  const token = operation.template === "/bootstrap" ? TEST_BOOTSTRAP_TOKEN : targets.credential;
  return `Bearer ${token}`;
}

const OTHER_CONTENT_TYPES = [
  "application/json; charset=utf-8",
  "application/merge-patch+json",
  "text/plain",
  "text/json",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=fuzz",
  "application/octet-stream",
  "json",
  "",
];

interface Payload {
  contentType?: string | undefined;
  /** Bytes, so that `fetch` adds no Content-Type of its own. */
  body?: Uint8Array | undefined;
}

/**
 * Request bodies: mostly JSON, so that most calls reach the handler, with field values it
 * might act on (`userIds` name real accounts); otherwise nothing, or anything.
 */
function payloads(userIds: string[]): fc.Arbitrary<Payload> {
  const someUser = fc.oneof(
    fc.constantFrom(...userIds, "usr_unknown"),
    fc.string({ maxLength: 70 }),
  );
  const plausibleFields = fc.record(
    {
      username: fc.oneof(fc.stringMatching(/^[a-z0-9._-]{3,12}$/), fc.string({ maxLength: 70 })),
      password: fc.string({ minLength: 10, maxLength: 14 }),
      displayName: fc.string({ maxLength: 20 }),
      name: fc.string({ maxLength: 20 }),
      kind: fc.constantFrom("person", "service", "app", "PERSON"),
      role: fc.constantFrom("admin", "member", "owner"),
      authMethod: fc.constantFrom("bearer", "basic", "digest"),
      scopes: fc.subarray(["send", "manage", "admin"]),
      enabled: fc.oneof(fc.boolean(), fc.constant("false")),
      overlapSeconds: fc.oneof(fc.integer({ min: -10, max: 8 * 86_400 }), fc.double()),
      expiresAt: fc.oneof(
        fc.date({ noInvalidDate: true }).map((date) => date.toISOString()),
        fc.constantFrom("2000-01-01T00:00:00Z", "2999-01-01T00:00:00+02:00", "tomorrow"),
      ),
      userId: someUser,
      ownerId: someUser,
      tokenOwnerId: someUser,
    },
    { requiredKeys: [] },
  );
  const text = fc.oneof(
    { weight: 4, arbitrary: plausibleFields.map((value) => JSON.stringify(value)) },
    fc.jsonValue().map((value) => JSON.stringify(value)),
    fc.string({ maxLength: 200 }),
    fc.constantFrom("", " ", "{", "null", "[]", '{"a":1}{"b":2}', "name=x&kind=service"),
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
  );
  const bytes = fc.oneof(
    { weight: 6, arbitrary: text.map((value) => new TextEncoder().encode(value)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  );
  return fc.oneof(
    {
      weight: 5,
      arbitrary: fc.record({ contentType: fc.constant("application/json"), body: bytes }),
    },
    { weight: 2, arbitrary: fc.constant({}) },
    {
      weight: 1,
      arbitrary: fc.constant({ contentType: "application/json", body: new Uint8Array() }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        contentType: fc.option(fc.constantFrom(...OTHER_CONTENT_TYPES), { nil: undefined }),
        body: fc.option(bytes, { nil: undefined }),
      }),
    },
  );
}

/** Gives each call its own client address, so that the login limiter lets it reach the logic. */
const clientAddress = fc.tuple(fc.nat(255), fc.nat(255)).map(([a, b]) => `198.51.${a}.${b}`);

function fetchOperation(
  operation: Operation,
  headers: Record<string, string>,
  body?: Uint8Array,
): Promise<Response> {
  return exports.default.fetch(
    new Request(`${ORIGIN}${operation.path}`, { method: operation.method, headers, body }),
  );
}

describe("the management API, fed arbitrary input", { timeout: 180_000 }, () => {
  beforeAll(async () => {
    targets = await createTargets();
  });

  it("answers every body and content type with a status below 500", async () => {
    const withBodies = (await operations()).filter(
      (operation) => !TAKES_NO_BODY.includes(operation.method),
    );

    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...withBodies),
        payloads([admin.user.id, ...targets.ids.users]),
        clientAddress,
        async (operation, { contentType, body }, address) => {
          const headers: Record<string, string> = {
            Authorization: credentialFor(operation),
            "CF-Connecting-IP": address,
          };
          if (contentType !== undefined) headers["Content-Type"] = contentType;

          const res = await fetchOperation(operation, headers, body);

          const text = await res.text();
          const sent = body === undefined ? "no body" : new TextDecoder().decode(body);
          const label = `${operation.method} ${operation.path} [${contentType}] ${sent} → ${text}`;
          expect(res.status, label).toBeLessThan(500);
          // An account exists, so no bootstrap may succeed, whatever its body.
          if (operation.template === "/bootstrap") expect(res.status, label).toBeGreaterThan(399);
        },
      ),
      { numRuns: 400 },
    );
  });

  it("answers every query string with a status below 500", async () => {
    const reads = (await operations()).filter((operation) => operation.method === "GET");

    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...reads),
        fc.dictionary(
          fc.constantFrom("limit", "cursor", "status", "kind", "idleWithinDays", "withinDays", "x"),
          fc.oneof(fc.string({ maxLength: 40 }), fc.integer().map(String), fc.constant("")),
        ),
        async (operation, query) => {
          const search = new URLSearchParams(query).toString();
          const res = await call(`${operation.path}?${search}`, {
            authorization: credentialFor(operation),
          });
          expect(res.status, `${operation.path}?${search}`).toBeLessThan(500);
          await res.body?.cancel();
        },
      ),
      { numRuns: 200 },
    );
  });

  it("never answers 5xx, nor 2xx to a credential that does not open it", async () => {
    // Login takes no credential; every other operation is called with a body it would
    // accept, so that only the Authorization header stands between the call and a 2xx.
    const guarded = (await operations()).filter((operation) => operation.template !== "/sessions");
    const validBodies: Record<string, unknown> = {
      "POST /bootstrap": { username: "second-admin", password: "a-long-enough-password" },
      "POST /users": { username: "fuzz-created", kind: "service" },
      "PATCH /users/{id}": { displayName: "Fuzzed" },
      "PUT /users/{id}/password": { password: "a-long-enough-password" },
      "POST /users/{id}/tokens": { name: "fuzz" },
      "POST /tokens/{id}/roll": { overlapSeconds: 60 },
      "POST /tokens/{id}/transfer": { userId: admin.user.id },
      "POST /webhooks": { name: "Fuzzed", authMethod: "bearer" },
      "PATCH /webhooks/{id}": { name: "Fuzzed" },
      "POST /webhooks/{id}/tokens": {},
    };
    const tokenLike = fc
      .tuple(fc.constantFrom("hgs_", "hgi_", "hga_", "hgx_"), fc.base64String({ maxLength: 60 }))
      .map(([prefix, rest]) => `Bearer ${prefix}${rest.replace(/[+/=]/g, "")}`);
    const nearlyGenuine = fc
      .tuple(
        fc.constantFrom(admin.session, targets.credential),
        fc.nat(),
        fc.integer({ min: 0x21, max: 0x7e }).map((code) => String.fromCharCode(code)),
      )
      .map(([secret, at, char]) => {
        const index = at % secret.length;
        const changed = secret[index] === char ? String.fromCharCode(char.charCodeAt(0) ^ 1) : char;
        return `Bearer ${secret.slice(0, index)}${changed}${secret.slice(index + 1)}`;
      });
    const authorization = fc.oneof(
      headerValue,
      tokenLike,
      nearlyGenuine,
      fc.constantFrom(
        ...targets.notForManagement.map((secret) => `Bearer ${secret}`),
        `bearer  ${admin.session}x`,
        `Basic ${btoa(`admin:${admin.session}`)}`,
        `Token ${targets.credential}`,
      ),
    );

    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...guarded), authorization, async (operation, value) => {
        fc.pre(value !== "");
        const body = validBodies[`${operation.method} ${operation.template}`];
        const headers: Record<string, string> = { Authorization: value };
        if (body !== undefined) headers["Content-Type"] = "application/json";

        const res = await fetchOperation(
          operation,
          headers,
          body === undefined ? undefined : new TextEncoder().encode(JSON.stringify(body)),
        );

        const text = await res.text();
        const label = `${operation.method} ${operation.path} Authorization: ${value} → ${text}`;
        expect(res.status, label).toBeLessThan(500);
        expect(res.status, label).toBeGreaterThan(399);
      }),
      { numRuns: 300 },
    );
  });
});
