import { createMessageBatch, createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import worker from "../../../src/index";
import { newId } from "../../../src/shared/ids";
import { TEST_BOOTSTRAP_TOKEN } from "../constants";
import {
  bootstrapAdmin,
  call,
  createPerson,
  createService,
  createWebhook,
  expectStatus,
  setLastActive,
} from "../helpers";

type Role = "anonymous" | "junk" | "inactiveSession" | "member" | "owner" | "admin";
const ROLES: Role[] = ["anonymous", "junk", "inactiveSession", "member", "owner", "admin"];

/** Records one case needs, made fresh for each call so that no call depends on another. */
interface Fixtures {
  ownerId: string;
  webhook(): Promise<{ id: string; tokenId: string }>;
  event(dead?: boolean): Promise<string>;
  deletableUser(): Promise<string>;
  serviceAccount(): Promise<string>;
}

interface Case {
  method: string;
  path: string;
  url: (fixtures: Fixtures) => Promise<string>;
  body?: (fixtures: Fixtures) => Promise<unknown>;
  headers?: () => Record<string, string>;
  /** The status for each caller; a member is one who does not own the record. */
  expect: Record<Role, number>;
}

/** Callers without a working credential for the management API. */
const REFUSED = { anonymous: 401, junk: 401, inactiveSession: 401 };

const adminOnly = (admin: number) => ({ ...REFUSED, member: 403, owner: 403, admin });
const ownerOrAdmin = (status: number) => ({
  ...REFUSED,
  member: 404,
  owner: status,
  admin: status,
});
const anyAccount = (status: number) => ({
  ...REFUSED,
  member: status,
  owner: status,
  admin: status,
});
const everyCaller = (status: number) => ({
  anonymous: status,
  junk: status,
  inactiveSession: status,
  member: status,
  owner: status,
  admin: status,
});

/** A client address of its own per login, so that the login limiter never answers instead. */
let loginClients = 0;
const loginClient = () => ({ "CF-Connecting-IP": `198.51.100.${++loginClients}` });

const CASES: Case[] = [
  {
    // Only the BOOTSTRAP_TOKEN opens it: no account's credential does, an admin's neither.
    method: "POST",
    path: "/bootstrap",
    url: async () => "/v1/bootstrap",
    body: async () => ({ username: "second-admin", password: "a-long-enough-password" }),
    expect: everyCaller(401),
  },
  {
    // Login reads the body only: whatever Authorization comes with it changes nothing.
    method: "POST",
    path: "/sessions",
    url: async () => "/v1/sessions",
    body: async () => ({ username: "matrix-member", password: "a-long-enough-password" }),
    headers: loginClient,
    expect: everyCaller(200),
  },
  { method: "GET", path: "/me", url: async () => "/v1/me", expect: anyAccount(200) },
  {
    method: "POST",
    path: "/users",
    url: async () => "/v1/users",
    body: async () => ({ username: `u-${crypto.randomUUID().slice(0, 8)}`, kind: "service" }),
    expect: adminOnly(201),
  },
  { method: "GET", path: "/users", url: async () => "/v1/users", expect: adminOnly(200) },
  {
    method: "GET",
    path: "/users/{id}",
    url: async (f) => `/v1/users/${f.ownerId}`,
    expect: adminOnly(200),
  },
  {
    method: "PATCH",
    path: "/users/{id}",
    url: async (f) => `/v1/users/${f.ownerId}`,
    body: async () => ({ displayName: "Renamed" }),
    expect: adminOnly(200),
  },
  {
    method: "PUT",
    path: "/users/{id}/password",
    url: async (f) => `/v1/users/${f.ownerId}/password`,
    body: async () => ({ password: "owner-password-123" }),
    expect: ownerOrAdmin(204),
  },
  {
    method: "POST",
    path: "/users/{id}/reactivate",
    url: async (f) => `/v1/users/${f.ownerId}/reactivate`,
    expect: adminOnly(200),
  },
  {
    method: "DELETE",
    path: "/users/{id}",
    url: async (f) => `/v1/users/${await f.deletableUser()}`,
    expect: adminOnly(204),
  },
  {
    method: "POST",
    path: "/users/{id}/tokens",
    url: async (f) => `/v1/users/${f.ownerId}/tokens`,
    body: async () => ({ name: "matrix" }),
    expect: ownerOrAdmin(201),
  },
  {
    method: "GET",
    path: "/users/{id}/tokens",
    url: async (f) => `/v1/users/${f.ownerId}/tokens`,
    expect: ownerOrAdmin(200),
  },
  {
    method: "DELETE",
    path: "/tokens/{id}",
    url: async (f) => `/v1/tokens/${(await f.webhook()).tokenId}`,
    expect: ownerOrAdmin(204),
  },
  {
    method: "POST",
    path: "/tokens/{id}/roll",
    url: async (f) => `/v1/tokens/${(await f.webhook()).tokenId}/roll`,
    body: async () => ({ overlapSeconds: 60 }),
    expect: ownerOrAdmin(201),
  },
  {
    method: "POST",
    path: "/tokens/{id}/transfer",
    url: async (f) => `/v1/tokens/${(await f.webhook()).tokenId}/transfer`,
    body: async (f) => ({ userId: await f.serviceAccount() }),
    expect: adminOnly(200),
  },
  {
    method: "POST",
    path: "/webhooks",
    url: async () => "/v1/webhooks",
    body: async () => ({ name: "Matrix", authMethod: "bearer" }),
    expect: anyAccount(201),
  },
  { method: "GET", path: "/webhooks", url: async () => "/v1/webhooks", expect: anyAccount(200) },
  {
    method: "GET",
    path: "/webhooks/{id}",
    url: async (f) => `/v1/webhooks/${(await f.webhook()).id}`,
    expect: ownerOrAdmin(200),
  },
  {
    method: "PATCH",
    path: "/webhooks/{id}",
    url: async (f) => `/v1/webhooks/${(await f.webhook()).id}`,
    body: async () => ({ name: "Renamed" }),
    expect: ownerOrAdmin(200),
  },
  {
    method: "DELETE",
    path: "/webhooks/{id}",
    url: async (f) => `/v1/webhooks/${(await f.webhook()).id}`,
    expect: ownerOrAdmin(204),
  },
  {
    method: "POST",
    path: "/webhooks/{id}/tokens",
    url: async (f) => `/v1/webhooks/${(await f.webhook()).id}/tokens`,
    body: async () => ({}),
    expect: ownerOrAdmin(201),
  },
  {
    method: "GET",
    path: "/webhooks/{id}/events",
    url: async (f) => `/v1/webhooks/${(await f.webhook()).id}/events`,
    expect: ownerOrAdmin(200),
  },
  {
    method: "GET",
    path: "/events/{id}/body",
    url: async (f) => `/v1/events/${await f.event()}/body`,
    expect: ownerOrAdmin(200),
  },
  {
    method: "POST",
    path: "/events/{id}/replay",
    url: async (f) => `/v1/events/${await f.event(true)}/replay`,
    expect: adminOnly(202),
  },
  {
    method: "GET",
    path: "/reports/at-risk",
    url: async () => "/v1/reports/at-risk",
    expect: adminOnly(200),
  },
  { method: "GET", path: "/audit", url: async () => "/v1/audit", expect: adminOnly(200) },
];

let admin: Awaited<ReturnType<typeof bootstrapAdmin>>;
let member: Awaited<ReturnType<typeof createPerson>>;
let owner: Awaited<ReturnType<typeof createPerson>>;
let inactiveSession: string;
/**
 * The owner calls with an integration token that has `manage`: changing its own
 * password revokes its sessions, and the calls after that must still be the owner's.
 */
let ownerToken: string;

beforeAll(async () => {
  admin = await bootstrapAdmin();
  member = await createPerson(admin.session, "matrix-member");
  owner = await createPerson(admin.session, "matrix-owner");
  const automation = await expectStatus(
    call(`/v1/users/${owner.user.id}/tokens`, {
      method: "POST",
      token: owner.session,
      body: { name: "owner", scopes: ["manage"] },
    }),
    201,
  );
  ownerToken = automation.secret;
  const idle = await createPerson(admin.session, "matrix-idle");
  inactiveSession = idle.session;
  await setLastActive(idle.user.id, Date.now() - 61 * 86_400_000);
  await worker.scheduled(
    createScheduledController({ scheduledTime: Date.now(), cron: "17 * * * *" }),
    env,
  );
});

function fixtures(): Fixtures {
  let webhook: { id: string; tokenId: string } | undefined;
  const fixture: Fixtures = {
    ownerId: owner.user.id,
    async webhook() {
      if (!webhook) {
        const created = await createWebhook(ownerToken);
        webhook = { id: created.webhook.id, tokenId: created.token.id };
      }
      return webhook;
    },
    async event(dead = false) {
      const { id, tokenId } = await fixture.webhook();
      const eventId = newId("evt");
      const envelope = {
        version: 1,
        eventId,
        webhookId: id,
        tokenId,
        accountId: owner.user.id,
        receivedAt: Date.now(),
        idempotencyKey: null,
        contentType: "text/plain",
        body: "hello",
        bodyEncoding: "utf8",
        bodyKey: null,
        bodySize: 5,
      };
      const queue = dead ? "hookgate-events-dlq" : "hookgate-events";
      const batch = createMessageBatch(queue, [
        { id: "m", timestamp: new Date(), attempts: 1, body: envelope },
      ]);
      await worker.queue(batch, env);
      return eventId;
    },
    async deletableUser() {
      return (await createService(admin.session, `del-${crypto.randomUUID().slice(0, 8)}`)).id;
    },
    async serviceAccount() {
      return (await createService(admin.session, `svc-${crypto.randomUUID().slice(0, 8)}`)).id;
    },
  };
  return fixture;
}

function credential(role: Role): string | undefined {
  return {
    anonymous: undefined,
    junk: "hgs_notarealtoken",
    inactiveSession,
    member: member.session,
    owner: ownerToken,
    admin: admin.session,
  }[role];
}

describe("the authorization matrix", { timeout: 60_000 }, () => {
  it("covers every operation of the OpenAPI document", async () => {
    const document = await expectStatus(call("/v1/openapi.json"), 200);
    const documented = Object.entries(document.paths as Record<string, object>)
      .flatMap(([path, item]) =>
        Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`),
      )
      .sort();

    expect(CASES.map((testCase) => `${testCase.method} ${testCase.path}`).sort()).toEqual(
      documented,
    );
  });

  for (const testCase of CASES) {
    it(`${testCase.method} ${testCase.path}`, async () => {
      const outcomes: string[] = [];
      const wanted: string[] = [];

      for (const role of ROLES) {
        const f = fixtures();
        const url = await testCase.url(f);
        const body = testCase.body ? await testCase.body(f) : undefined;
        const headers = testCase.headers?.();
        const res = await call(url, {
          method: testCase.method,
          token: credential(role),
          body,
          headers,
        });
        await res.body?.cancel();
        outcomes.push(`${role} ${res.status}`);
        wanted.push(`${role} ${testCase.expect[role]}`);
      }

      expect(outcomes).toEqual(wanted);
    });
  }

  it("lets the BOOTSTRAP_TOKEN past POST /bootstrap, to its 409 once accounts exist", async () => {
    const bootstrap = CASES.find((testCase) => testCase.path === "/bootstrap") as Case;

    const res = await call(await bootstrap.url(fixtures()), {
      method: "POST",
      token: TEST_BOOTSTRAP_TOKEN,
      body: await bootstrap.body?.(fixtures()),
    });

    expect(res.status).toBe(409);
    expect(((await res.json()) as { code: string }).code).toBe("already_bootstrapped");
  });
});
