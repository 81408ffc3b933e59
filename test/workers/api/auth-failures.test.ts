import { beforeAll, describe, expect, it } from "vitest";
import { generateToken } from "../../../src/auth/tokens";
import {
  bootstrapAdmin,
  call,
  createPerson,
  createWebhook,
  expectStatus,
  markInactive,
  send,
  tableCounts,
  waitForStoredEvent,
} from "../helpers";

/**
 * Every protected operation of the OpenAPI document runs through the same failures. The
 * list comes from the document itself, so a new route cannot skip these checks; the table
 * of admin-only routes is kept by hand, and a test below keeps it in step with the routes.
 */
const ADMIN_ONLY = new Set([
  "POST /users",
  "GET /users",
  "GET /users/{id}",
  "PATCH /users/{id}",
  "POST /tokens/{id}/transfer",
  "GET /audit",
  "POST /events/{id}/replay",
  "POST /users/{id}/reactivate",
  "DELETE /users/{id}",
  "GET /reports/at-risk",
]);

interface Operation {
  method: string;
  path: string;
  key: string;
}

const operations: Operation[] = [];
let fixtures: {
  adminSession: string;
  memberSession: string;
  sendOnlyToken: string;
  appToken: string;
  inactiveOwnerToken: string;
  inactiveOwnerSendOnlyToken: string;
  other: { userId: string; tokenId: string; webhookId: string; eventId: string };
};

beforeAll(async () => {
  const admin = await bootstrapAdmin();
  const member = await createPerson(admin.session, "member-one");
  const other = await createPerson(admin.session, "member-two");
  const otherWebhook = await createWebhook(other.session);
  const memberWebhook = await createWebhook(member.session);
  const sent = await send(otherWebhook.webhook.id, {
    authorization: otherWebhook.credentials.authorization,
  });
  const { id: eventId } = (await sent.json()) as { id: string };
  await waitForStoredEvent(eventId);
  const sendOnly = await expectStatus(
    call(`/v1/users/${member.user.id}/tokens`, {
      method: "POST",
      token: member.session,
      body: { name: "crm", scopes: ["send"] },
    }),
    201,
  );
  const idle = await createPerson(admin.session, "member-idle");
  const idleToken = await expectStatus(
    call(`/v1/users/${idle.user.id}/tokens`, {
      method: "POST",
      token: idle.session,
      body: { name: "automation", scopes: ["send", "manage"] },
    }),
    201,
  );
  const idleSendOnly = await expectStatus(
    call(`/v1/users/${idle.user.id}/tokens`, {
      method: "POST",
      token: idle.session,
      body: { name: "crm", scopes: ["send"] },
    }),
    201,
  );
  await markInactive(idle.user.id);
  fixtures = {
    inactiveOwnerToken: idleToken.secret,
    inactiveOwnerSendOnlyToken: idleSendOnly.secret,
    adminSession: admin.session,
    memberSession: member.session,
    sendOnlyToken: sendOnly.secret,
    appToken: memberWebhook.token.secret,
    other: {
      userId: other.user.id,
      tokenId: otherWebhook.token.id,
      webhookId: otherWebhook.webhook.id,
      eventId,
    },
  };

  const document = await expectStatus(call("/v1/openapi.json"), 200);
  for (const [path, item] of Object.entries(document.paths as Record<string, object>)) {
    for (const [method, operation] of Object.entries(
      item as Record<string, { security?: Record<string, string[]>[] }>,
    )) {
      // Bootstrap takes the deployment's secret instead, and has tests of its own.
      if (!operation.security?.some((scheme) => "bearer" in scheme)) continue;
      operations.push({
        method: method.toUpperCase(),
        path,
        key: `${method.toUpperCase()} ${path}`,
      });
    }
  }
});

/** The path with `{id}` pointing at a record of another member of the right kind. */
function concretePath(operation: Operation): string {
  const ids: Record<string, string> = {
    users: fixtures.other.userId,
    tokens: fixtures.other.tokenId,
    webhooks: fixtures.other.webhookId,
    events: fixtures.other.eventId,
  };
  const id = ids[operation.path.split("/")[1] as string] as string;
  return `/v1${operation.path.replace("{id}", id)}`;
}

/** A syntactically valid body, so that failures come from authentication, not validation. */
function plausibleBody(operation: Operation): unknown {
  if (operation.method === "GET" || operation.method === "DELETE") return undefined;
  return {
    name: "x",
    authMethod: "bearer",
    kind: "service",
    username: "zed",
    userId: "usr_x",
    password: "long-enough-password",
  };
}

async function expectRefused(
  operation: Operation,
  auth: { token?: string; authorization?: string },
  status: number,
  code: string,
) {
  const before = await tableCounts();
  const res = await call(concretePath(operation), {
    method: operation.method,
    body: plausibleBody(operation),
    ...auth,
  });
  const body = (await res.json()) as { code: string };
  expect(`${operation.key} → ${res.status} ${body.code}`).toBe(
    `${operation.key} → ${status} ${code}`,
  );
  expect(res.headers.get("Content-Type")).toBe("application/problem+json");
  expect(await tableCounts(), `${operation.key} must not change anything`).toEqual(before);
  return res;
}

describe("every protected route", () => {
  it("is found in the OpenAPI document", () => {
    expect(operations.length).toBeGreaterThanOrEqual(16);
    for (const key of ADMIN_ONLY) expect(operations.map((op) => op.key)).toContain(key);
  });

  it("answers 401 unauthenticated with a Bearer challenge when no credential is sent", async () => {
    for (const operation of operations) {
      const res = await expectRefused(operation, {}, 401, "unauthenticated");
      expect(res.headers.get("WWW-Authenticate")).toBe('Bearer realm="hookgate"');
    }
  });

  it("answers 400 invalid_request to a malformed Authorization header", async () => {
    for (const operation of operations) {
      const res = await expectRefused(
        operation,
        { authorization: "Bearer two words" },
        400,
        "invalid_request",
      );
      expect(res.headers.get("WWW-Authenticate")).toContain('error="invalid_request"');
    }
  });

  it("answers 401 invalid_credentials to junk and to well-formed unknown tokens", async () => {
    const unknown = (await generateToken("session")).secret;
    for (const operation of operations) {
      await expectRefused(operation, { token: "junk-token" }, 401, "invalid_credentials");
      await expectRefused(operation, { token: unknown }, 401, "invalid_credentials");
    }
  });

  it("answers 403 insufficient_scope to app tokens and send-only integration tokens", async () => {
    for (const operation of operations) {
      await expectRefused(operation, { token: fixtures.appToken }, 403, "insufficient_scope");
      await expectRefused(operation, { token: fixtures.sendOnlyToken }, 403, "insufficient_scope");
    }
  });

  it("answers 401 account_inactive to a genuine token whose owner is inactive", async () => {
    for (const operation of operations) {
      await expectRefused(
        operation,
        { token: fixtures.inactiveOwnerToken },
        401,
        "account_inactive",
      );
      // The account's state comes first: a scope would not help it.
      await expectRefused(
        operation,
        { token: fixtures.inactiveOwnerSendOnlyToken },
        401,
        "account_inactive",
      );
    }
  });

  it("answers 403 forbidden to a member on admin-only routes, 404 on others' records", async () => {
    for (const operation of operations) {
      if (ADMIN_ONLY.has(operation.key)) {
        await expectRefused(operation, { token: fixtures.memberSession }, 403, "forbidden");
      } else if (operation.path.includes("{id}")) {
        await expectRefused(operation, { token: fixtures.memberSession }, 404, "not_found");
      }
    }
  });
});
