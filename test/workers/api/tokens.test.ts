import { env, exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { tokenCacheKey } from "../../../src/auth/decision-cache";
import {
  basicAuthorization,
  bootstrapAdmin,
  call,
  createPerson,
  createService,
  createWebhook,
  expectStatus,
  markInactive,
  ORIGIN,
  send,
  tokenHash,
} from "../helpers";

let admin: Awaited<ReturnType<typeof bootstrapAdmin>>;
let member: Awaited<ReturnType<typeof createPerson>>;

beforeAll(async () => {
  admin = await bootstrapAdmin();
  member = await createPerson(admin.session, "casey");
});

async function createIntegration(
  session: string,
  userId: string,
  body: Record<string, unknown> = {},
) {
  return expectStatus(
    call(`/v1/users/${userId}/tokens`, {
      method: "POST",
      token: session,
      body: { name: "automation", scopes: ["send", "manage"], ...body },
    }),
    201,
  );
}

/** Rolls a token as the member, expecting `status`. */
function roll(tokenId: string, body: Record<string, unknown>, status: number) {
  return expectStatus(
    call(`/v1/tokens/${tokenId}/roll`, { method: "POST", token: member.session, body }),
    status,
  );
}

describe("integration tokens", () => {
  it("shows the secret once and only prefixes afterwards", async () => {
    const created = await createIntegration(member.session, member.user.id, { scopes: ["send"] });

    expect(created).toMatchObject({ kind: "integration", scopes: ["send"], webhookId: null });
    expect(created.secret).toMatch(/^hgi_/);
    expect(created.prefix).toBe(created.secret.slice(0, 10));
    const listed = await expectStatus(
      call(`/v1/users/${member.user.id}/tokens?kind=integration`, { token: member.session }),
      200,
    );
    expect(listed.items.map((token: { id: string }) => token.id)).toContain(created.id);
    expect(JSON.stringify(listed)).not.toContain(created.secret);
    expect(listed.items.every((token: object) => !("secret" in token))).toBe(true);
  });

  it("defaults to the send scope and rejects unknown scopes and past expiries", async () => {
    const plain = await expectStatus(
      call(`/v1/users/${member.user.id}/tokens`, {
        method: "POST",
        token: member.session,
        body: { name: "defaults" },
      }),
      201,
    );
    expect(plain.scopes).toEqual(["send"]);

    const bad = await expectStatus(
      call(`/v1/users/${member.user.id}/tokens`, {
        method: "POST",
        token: member.session,
        body: { name: "bad", scopes: ["root"], expiresAt: "2001-01-01T00:00:00Z" },
      }),
      400,
    );
    expect(bad.errors.map((error: { field: string }) => error.field)).toEqual([
      "scopes.0",
      "expiresAt",
    ]);
    const past = await expectStatus(
      call(`/v1/users/${member.user.id}/tokens`, {
        method: "POST",
        token: member.session,
        body: { name: "past", expiresAt: "2001-01-01T00:00:00Z" },
      }),
      400,
    );
    expect(past.errors).toEqual([{ field: "expiresAt", message: "Must be in the future" }]);
  });

  it("lets an admin create a token on a service account", async () => {
    const service = await createService(admin.session, "etl-bot");

    const created = await createIntegration(admin.session, service.id, { scopes: ["send"] });

    expect(created.userId).toBe(service.id);
  });
});

describe("DELETE /v1/tokens/{id}", () => {
  it("revokes at once, purges the cached decision, and is idempotent", async () => {
    const token = await createIntegration(member.session, member.user.id);
    const key = tokenCacheKey(await tokenHash(token.id));
    await env.AUTH_CACHE.put(key, "{}");
    await expectStatus(call("/v1/me", { token: token.secret }), 200);

    await expectStatus(
      call(`/v1/tokens/${token.id}`, { method: "DELETE", token: member.session }),
      204,
    );

    expect(await env.AUTH_CACHE.get(key)).toBeNull();
    const refused = await expectStatus(call("/v1/me", { token: token.secret }), 401);
    expect(refused.code).toBe("invalid_credentials");
    await expectStatus(
      call(`/v1/tokens/${token.id}`, { method: "DELETE", token: member.session }),
      204,
    );
    const audit = await expectStatus(call("/v1/audit", { token: admin.session }), 200);
    const revocations = audit.items.filter(
      (entry: { action: string; targetId: string }) =>
        entry.action === "token.revoked" && entry.targetId === token.id,
    );
    expect(revocations).toHaveLength(1);
  });
});

describe("POST /v1/tokens/{id}/roll", () => {
  it("issues a new secret and keeps the old one for the overlap", async () => {
    const token = await createIntegration(member.session, member.user.id);

    const rolled = await roll(token.id, { overlapSeconds: 3600 }, 201);

    expect(rolled.token.secret).not.toBe(token.secret);
    expect(rolled.token).toMatchObject({
      kind: "integration",
      userId: member.user.id,
      name: "automation",
    });
    expect(rolled.token.scopes).toEqual(["send", "manage"]);
    const overlap = Date.parse(rolled.previous.expiresAt) - Date.now();
    expect(overlap).toBeGreaterThan(3_500_000);
    expect(overlap).toBeLessThanOrEqual(3_600_000);
    await expectStatus(call("/v1/me", { token: token.secret }), 200);
    await expectStatus(call("/v1/me", { token: rolled.token.secret }), 200);
  });

  it("stops the old secret at once without an overlap", async () => {
    const token = await createIntegration(member.session, member.user.id);

    const rolled = await roll(token.id, {}, 201);

    await expectStatus(call("/v1/me", { token: token.secret }), 401);
    await expectStatus(call("/v1/me", { token: rolled.token.secret }), 200);
  });

  it("keeps the expiry for the new secret and refuses to roll the old one again", async () => {
    const expiresAt = new Date(Date.now() + 30 * 86_400_000).toISOString();
    const token = await createIntegration(member.session, member.user.id, { expiresAt });
    const rolled = await roll(token.id, { overlapSeconds: 3600 }, 201);

    const again = await roll(token.id, {}, 409);
    const rolledOn = await roll(rolled.token.id, {}, 201);

    expect(rolled.token.expiresAt).toBe(expiresAt);
    expect(rolled.previous.replacedBy).toBe(rolled.token.id);
    expect(again).toMatchObject({ code: "token_unavailable", replacedBy: rolled.token.id });
    expect(rolledOn.token.expiresAt).toBe(expiresAt);
    await expectStatus(call("/v1/me", { token: token.secret }), 200);
  });

  it("treats a missing body, an empty object and an empty untyped body as no overlap", async () => {
    const requests: Record<string, RequestInit> = {
      "no body": {},
      "empty JSON object": { body: "{}", headers: { "Content-Type": "application/json" } },
      // A stream gets no Content-Type from the runtime, unlike a string body.
      "empty body without Content-Type": { body: new Blob([]).stream() },
    };

    for (const [label, init] of Object.entries(requests)) {
      const token = await createIntegration(member.session, member.user.id);
      const res = await exports.default.fetch(
        new Request(`${ORIGIN}/v1/tokens/${token.id}/roll`, {
          method: "POST",
          ...init,
          headers: { Authorization: `Bearer ${member.session}`, ...init.headers },
        }),
      );
      const rolled = await res.json<{ previous: { expiresAt: string } }>();

      expect(res.status, label).toBe(201);
      expect(Date.parse(rolled.previous.expiresAt), label).toBeLessThanOrEqual(Date.now());
      await expectStatus(call("/v1/me", { token: token.secret }), 401);
    }
  });

  it("refuses a JSON body without Content-Type rather than ignore its overlap", async () => {
    const token = await createIntegration(member.session, member.user.id);

    const res = await exports.default.fetch(
      new Request(`${ORIGIN}/v1/tokens/${token.id}/roll`, {
        method: "POST",
        headers: { Authorization: `Bearer ${member.session}` },
        body: new Blob(['{"overlapSeconds":3600}']).stream(),
      }),
    );

    expect(res.status).toBe(415);
    await expectStatus(call("/v1/me", { token: token.secret }), 200);
  });

  it("refuses to roll a revoked token or a session, and overlaps beyond 7 days", async () => {
    const token = await createIntegration(member.session, member.user.id);
    await expectStatus(
      call(`/v1/tokens/${token.id}`, { method: "DELETE", token: member.session }),
      204,
    );

    const revoked = await roll(token.id, {}, 409);
    const tooLong = await roll(token.id, { overlapSeconds: 8 * 86_400 }, 400);

    expect(revoked.code).toBe("token_unavailable");
    expect(tooLong.errors[0].field).toBe("overlapSeconds");
  });
});

describe("POST /v1/tokens/{id}/transfer", () => {
  it("moves a token to an active account without changing its secret", async () => {
    const service = await createService(admin.session, "owner-to-be");
    const token = await createIntegration(member.session, member.user.id);

    const moved = await expectStatus(
      call(`/v1/tokens/${token.id}/transfer`, {
        method: "POST",
        token: admin.session,
        body: { userId: service.id },
      }),
      200,
    );

    expect(moved.token.userId).toBe(service.id);
    expect(moved.notice).toContain("still use it");
    expect(moved.notice).toContain('Basic authentication must now send the username "owner-to-be"');
    const me = await expectStatus(call("/v1/me", { token: token.secret }), 200);
    expect(me.id).toBe(service.id);
    const audit = await expectStatus(call("/v1/audit", { token: admin.session }), 200);
    expect(audit.items[0]).toMatchObject({
      action: "token.transferred",
      actorId: admin.user.id,
      targetId: token.id,
      details: { fromUserId: member.user.id, toUserId: service.id },
    });
  });

  it("tells that Basic senders must switch to the new owner's username", async () => {
    const service = await createService(admin.session, "basic-heir");
    const basic = await createWebhook(member.session, { authMethod: "basic" });
    const bearer = await createWebhook(member.session);
    const transfer = (tokenId: string) =>
      expectStatus(
        call(`/v1/tokens/${tokenId}/transfer`, {
          method: "POST",
          token: admin.session,
          body: { userId: service.id },
        }),
        200,
      );

    const movedBasic = await transfer(basic.token.id);
    const movedBearer = await transfer(bearer.token.id);

    expect(movedBasic.notice).toContain('Senders must now send the username "basic-heir"');
    expect(movedBearer.notice).toContain("Senders need no change.");
    const password = basic.credentials.password;
    const before = basicAuthorization(member.user.username, password);
    const after = basicAuthorization("basic-heir", password);
    expect((await send(basic.webhook.id, { authorization: before })).status).toBe(401);
    expect((await send(basic.webhook.id, { authorization: after })).status).toBe(202);
  });

  it("refuses to move a token to the account that holds it", async () => {
    const token = await createIntegration(member.session, member.user.id);

    const same = await expectStatus(
      call(`/v1/tokens/${token.id}/transfer`, {
        method: "POST",
        token: admin.session,
        body: { userId: member.user.id },
      }),
      400,
    );

    expect(same.errors).toEqual([{ field: "userId", message: "Already the token's owner" }]);
    const audit = await expectStatus(call("/v1/audit", { token: admin.session }), 200);
    expect(
      audit.items.filter(
        (entry: { action: string; targetId: string }) =>
          entry.action === "token.transferred" && entry.targetId === token.id,
      ),
    ).toEqual([]);
  });

  it("refuses an inactive or unknown target", async () => {
    const idle = await createService(admin.session, "idle-target");
    await markInactive(idle.id);
    const token = await createIntegration(member.session, member.user.id);

    const inactive = await expectStatus(
      call(`/v1/tokens/${token.id}/transfer`, {
        method: "POST",
        token: admin.session,
        body: { userId: idle.id },
      }),
      409,
    );
    const unknown = await expectStatus(
      call(`/v1/tokens/${token.id}/transfer`, {
        method: "POST",
        token: admin.session,
        body: { userId: "usr_doesnotexist" },
      }),
      400,
    );

    expect(inactive.code).toBe("target_account_inactive");
    expect(unknown.errors).toEqual([{ field: "userId", message: "No such account" }]);
  });
});
