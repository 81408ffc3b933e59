import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { webhookCacheKey } from "../../../src/auth/decision-cache";
import {
  bootstrapAdmin,
  call,
  createPerson,
  createService,
  createWebhook,
  expectStatus,
  ORIGIN,
  send,
  waitForStoredEvent,
} from "../helpers";

let admin: Awaited<ReturnType<typeof bootstrapAdmin>>;
let member: Awaited<ReturnType<typeof createPerson>>;

beforeAll(async () => {
  admin = await bootstrapAdmin();
  member = await createPerson(admin.session, "morgan");
});

describe("POST /v1/webhooks", () => {
  it("creates a bearer webhook with its first app token and the exact header", async () => {
    const created = await createWebhook(member.session, { name: "Shop orders" });

    expect(created.webhook.id).toMatch(/^wh_[0-9A-Za-z]{22}$/);
    expect(created.webhook).toMatchObject({
      name: "Shop orders",
      authMethod: "bearer",
      ownerId: member.user.id,
      enabled: true,
      url: `${ORIGIN}/hooks/${created.webhook.id}`,
    });
    expect(created.token).toMatchObject({
      kind: "app",
      webhookId: created.webhook.id,
      userId: member.user.id,
    });
    expect(created.credentials).toEqual({
      scheme: "bearer",
      authorization: `Bearer ${created.token.secret}`,
    });
  });

  it("gives basic webhooks the token owner's username and the secret as password", async () => {
    const created = await createWebhook(member.session, { authMethod: "basic" });

    const { username, password, authorization } = created.credentials;
    expect(username).toBe("morgan");
    expect(password).toBe(created.token.secret);
    expect(atob(authorization.replace("Basic ", ""))).toBe(`morgan:${created.token.secret}`);
  });

  it("puts the app token on another account only for admins", async () => {
    const service = await createService(admin.session, "shop-sender");

    const byAdmin = await createWebhook(admin.session, {
      authMethod: "basic",
      tokenOwnerId: service.id,
    });
    const byMember = await expectStatus(
      call("/v1/webhooks", {
        method: "POST",
        token: member.session,
        body: { name: "x", authMethod: "bearer", tokenOwnerId: service.id },
      }),
      403,
    );

    expect(byAdmin.token.userId).toBe(service.id);
    expect(byAdmin.webhook.ownerId).toBe(admin.user.id);
    expect(byAdmin.credentials.username).toBe("shop-sender");
    expect(byMember.code).toBe("forbidden");
  });

  it("names every invalid field", async () => {
    const problem = await expectStatus(
      call("/v1/webhooks", {
        method: "POST",
        token: member.session,
        body: { name: "", authMethod: "digest" },
      }),
      400,
    );

    expect(problem.errors.map((error: { field: string }) => error.field).sort()).toEqual([
      "authMethod",
      "name",
    ]);
  });
});

describe("reading webhooks", () => {
  it("shows members their own webhooks and admins all of them", async () => {
    const own = await createWebhook(member.session, { name: "Mine" });
    const others = await createWebhook(admin.session, { name: "Admin's" });

    const memberList = await expectStatus(
      call("/v1/webhooks?limit=100", { token: member.session }),
      200,
    );
    const adminList = await expectStatus(
      call("/v1/webhooks?limit=100", { token: admin.session }),
      200,
    );

    const memberIds = memberList.items.map((webhook: { id: string }) => webhook.id);
    expect(memberIds).toContain(own.webhook.id);
    expect(memberIds).not.toContain(others.webhook.id);
    expect(adminList.items.map((webhook: { id: string }) => webhook.id)).toEqual(
      expect.arrayContaining([own.webhook.id, others.webhook.id]),
    );
    await expectStatus(call(`/v1/webhooks/${others.webhook.id}`, { token: member.session }), 404);
  });

  it("lists the credentials that open it, and warns of person-only health", async () => {
    const created = await createWebhook(member.session);

    const webhook = await expectStatus(
      call(`/v1/webhooks/${created.webhook.id}`, { token: member.session }),
      200,
    );

    const tokenIds = webhook.credentials.map(
      (credential: { tokenId: string }) => credential.tokenId,
    );
    expect(tokenIds).toEqual(expect.arrayContaining([created.token.id, admin.integration.id]));
    expect(
      webhook.credentials.find((c: { tokenId: string }) => c.tokenId === created.token.id),
    ).toMatchObject({
      kind: "app",
      owner: { id: member.user.id, kind: "person", status: "active" },
    });
    expect(webhook.health.status).toBe("at_risk");
    expect(webhook.health.reasons.join(" ")).toContain("Only person accounts");
  });

  it("is healthy once a service account holds an app token", async () => {
    const service = await createService(admin.session, "steady-sender");
    const created = await createWebhook(admin.session);

    const issued = await expectStatus(
      call(`/v1/webhooks/${created.webhook.id}/tokens`, {
        method: "POST",
        token: admin.session,
        body: { ownerId: service.id, name: "service" },
      }),
      201,
    );
    const webhook = await expectStatus(
      call(`/v1/webhooks/${created.webhook.id}`, { token: admin.session }),
      200,
    );

    expect(issued.token).toMatchObject({ kind: "app", userId: service.id });
    expect(issued.credentials.authorization).toBe(`Bearer ${issued.token.secret}`);
    expect(webhook.health).toEqual({ status: "ok", reasons: [] });
  });
});

describe("changing webhooks", () => {
  it("renames and disables, purging the cached webhook facts", async () => {
    const created = await createWebhook(member.session);
    const key = webhookCacheKey(created.webhook.id);
    await env.AUTH_CACHE.put(key, "{}");

    const renamed = await expectStatus(
      call(`/v1/webhooks/${created.webhook.id}`, {
        method: "PATCH",
        token: member.session,
        body: { name: "Renamed" },
      }),
      200,
    );
    expect(await env.AUTH_CACHE.get(key)).toBe("{}");
    const disabled = await expectStatus(
      call(`/v1/webhooks/${created.webhook.id}`, {
        method: "PATCH",
        token: member.session,
        body: { enabled: false },
      }),
      200,
    );

    expect(renamed.name).toBe("Renamed");
    expect(disabled.enabled).toBe(false);
    expect(disabled.health).toEqual({ status: "broken", reasons: ["The webhook is disabled."] });
    expect(await env.AUTH_CACHE.get(key)).toBeNull();
  });

  it("deletes a webhook with its app tokens, its events and their R2 bodies", async () => {
    const created = await createWebhook(member.session);
    const accepted = await send(created.webhook.id, {
      authorization: created.credentials.authorization,
      body: new Uint8Array(200_000),
    });
    const { id: eventId } = (await accepted.json()) as { id: string };
    await waitForStoredEvent(eventId);
    const prefix = `payloads/${created.webhook.id}/`;
    expect((await env.PAYLOADS.list({ prefix })).objects).toHaveLength(1);

    await expectStatus(
      call(`/v1/webhooks/${created.webhook.id}`, { method: "DELETE", token: member.session }),
      204,
    );

    await expectStatus(call(`/v1/webhooks/${created.webhook.id}`, { token: member.session }), 404);
    const left = await env.DB.prepare("select count(*) as n from tokens where webhook_id = ?")
      .bind(created.webhook.id)
      .first<{ n: number }>();
    expect(left?.n).toBe(0);
    expect(
      await env.DB.prepare("select id from events where id = ?").bind(eventId).first(),
    ).toBeNull();
    // The bodies go after the answer.
    for (let i = 0; i < 50 && (await env.PAYLOADS.list({ prefix })).objects.length > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect((await env.PAYLOADS.list({ prefix })).objects).toEqual([]);
  });
});
