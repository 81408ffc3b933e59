import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { tokenCacheKey } from "../../../src/auth/decision-cache";
import {
  bootstrapAdmin,
  call,
  createPerson,
  createService,
  createWebhook,
  expectStatus,
  login,
  ORIGIN,
  send,
  setLastActive,
  tokenHash,
} from "../helpers";
import { fetchWith } from "../support/d1-parameter-limit";

let admin: Awaited<ReturnType<typeof bootstrapAdmin>>;

beforeAll(async () => {
  admin = await bootstrapAdmin();
});

describe("accounts", () => {
  it("creates a service account without a password and refuses one with", async () => {
    const service = await createService(admin.session, "crm-sync");

    expect(service).toMatchObject({ username: "crm-sync", kind: "service", role: "member" });
    expect(service.id).toMatch(/^usr_[0-9A-Za-z]{22}$/);
    const problem = await expectStatus(
      call("/v1/users", {
        method: "POST",
        token: admin.session,
        body: { username: "svc-two", kind: "service", password: "a-long-enough-password" },
      }),
      400,
    );
    expect(problem.errors).toEqual([
      { field: "password", message: "Must be absent for a service account" },
    ]);
  });

  it("requires a password of at least 12 characters for a person", async () => {
    const problem = await expectStatus(
      call("/v1/users", {
        method: "POST",
        token: admin.session,
        body: { username: "pat", kind: "person", password: "short" },
      }),
      400,
    );

    expect(problem.code).toBe("validation_failed");
    expect(problem.errors[0]).toEqual({ field: "password", message: "At least 12 characters" });
  });

  it("answers 409 username_taken for a duplicate username", async () => {
    await createService(admin.session, "dup-name");

    const problem = await expectStatus(
      call("/v1/users", {
        method: "POST",
        token: admin.session,
        body: { username: "dup-name", kind: "service" },
      }),
      409,
    );

    expect(problem.code).toBe("username_taken");
  });

  it("lists accounts in pages, with filters and projected inactivity", async () => {
    for (const name of ["page-a", "page-b", "page-c"]) await createService(admin.session, name);

    const pages = [];
    let cursor: string | null = "";
    while (cursor !== null) {
      const query: string = cursor ? `&cursor=${cursor}` : "";
      const page = await expectStatus(
        call(`/v1/users?kind=service&limit=2${query}`, { token: admin.session }),
        200,
      );
      pages.push(page);
      cursor = page.nextCursor;
    }

    const names = pages.flatMap((page) =>
      page.items.map((user: { username: string }) => user.username),
    );
    expect(pages.every((page) => page.items.length <= 2)).toBe(true);
    expect(pages.length).toBeGreaterThanOrEqual(2);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual(expect.arrayContaining(["page-a", "page-b", "page-c"]));
    const first = pages[0];
    const user = first.items[0];
    expect(Date.parse(user.inactiveAt) - Date.parse(user.lastActiveAt)).toBe(60 * 86_400_000);
  });

  it("filters accounts that go idle within a number of days", async () => {
    const idle = await createService(admin.session, "nearly-idle");
    const fiftyFiveDaysAgo = Date.now() - 55 * 86_400_000;
    await setLastActive(idle.id, fiftyFiveDaysAgo);

    const soon = await expectStatus(
      call("/v1/users?idleWithinDays=7", { token: admin.session }),
      200,
    );

    expect(soon.items.map((user: { id: string }) => user.id)).toEqual([idle.id]);
  });

  it("rejects a cursor it did not issue", async () => {
    const problem = await expectStatus(
      call("/v1/users?cursor=bm90LWEtY3Vyc29y", { token: admin.session }),
      400,
    );

    expect(problem.errors).toEqual([{ field: "cursor", message: "Invalid cursor" }]);
  });

  it("updates display name and role, but never demotes the last admin", async () => {
    const person = await createPerson(admin.session, "robin");

    const updated = await expectStatus(
      call(`/v1/users/${person.user.id}`, {
        method: "PATCH",
        token: admin.session,
        body: { displayName: "Robin Example", role: "admin" },
      }),
      200,
    );
    expect(updated).toMatchObject({ displayName: "Robin Example", role: "admin" });

    await expectStatus(
      call(`/v1/users/${person.user.id}`, {
        method: "PATCH",
        token: admin.session,
        body: { role: "member" },
      }),
      200,
    );
    const lastAdmin = await expectStatus(
      call(`/v1/users/${admin.user.id}`, {
        method: "PATCH",
        token: admin.session,
        body: { role: "member" },
      }),
      409,
    );
    expect(lastAdmin.code).toBe("last_admin");
  });
});

describe("PUT /v1/users/{id}/password", () => {
  it("revokes sessions but keeps app and integration tokens working", async () => {
    const person = await createPerson(admin.session, "leaver");
    const webhook = await createWebhook(person.session);
    const integration = await expectStatus(
      call(`/v1/users/${person.user.id}/tokens`, {
        method: "POST",
        token: person.session,
        body: { name: "automation", scopes: ["send", "manage"] },
      }),
      201,
    );

    await expectStatus(
      call(`/v1/users/${person.user.id}/password`, {
        method: "PUT",
        token: admin.session,
        body: { password: "a-brand-new-password" },
      }),
      204,
    );

    const stale = await expectStatus(call("/v1/me", { token: person.session }), 401);
    expect(stale.code).toBe("invalid_credentials");
    await expectStatus(call("/v1/me", { token: integration.secret }), 200);
    const status = await env.DB.prepare("select status from users where id = ?")
      .bind(person.user.id)
      .first<{ status: string }>();
    expect(status?.status).toBe("active");
    const appToken = await env.DB.prepare("select revoked_at from tokens where id = ?")
      .bind(webhook.token.id)
      .first<{ revoked_at: number | null }>();
    expect(appToken?.revoked_at).toBeNull();
    const delivery = await send(webhook.webhook.id, {
      authorization: webhook.credentials.authorization,
    });
    expect(delivery.status).toBe(202);
    expect(await login("leaver", "a-brand-new-password")).toMatch(/^hgs_/);
  });

  it("lets members change their own password only", async () => {
    const member = await createPerson(admin.session, "self-service");

    await expectStatus(
      call(`/v1/users/${member.user.id}/password`, {
        method: "PUT",
        token: member.session,
        body: { password: "my-own-new-password" },
      }),
      204,
    );
    const fresh = await login("self-service", "my-own-new-password");
    await expectStatus(
      call(`/v1/users/${admin.user.id}/password`, {
        method: "PUT",
        token: fresh,
        body: { password: "taking-over-admin" },
      }),
      404,
    );
  });
});

describe("DELETE /v1/users/{id}", () => {
  it("purges the cached decisions of the tokens it deletes", async () => {
    const leaver = await createPerson(admin.session, "cached-leaver");
    const hook = await createWebhook(leaver.session);
    await expectStatus(
      call(`/v1/tokens/${hook.token.id}`, { method: "DELETE", token: admin.session }),
      204,
    );
    const authorization = hook.credentials.authorization;
    expect((await send(hook.webhook.id, { authorization, env })).status).toBe(401);
    const key = tokenCacheKey(await tokenHash(hook.token.id));
    expect(await env.AUTH_CACHE.get(key)).not.toBeNull();

    await expectStatus(
      call(`/v1/users/${leaver.user.id}`, { method: "DELETE", token: admin.session }),
      204,
    );

    expect(await env.AUTH_CACHE.get(key)).toBeNull();
  });

  it("keeps everything when a live token appears between its check and the delete", async () => {
    const leaver = await createService(admin.session, "racing-leaver");
    const hook = await createWebhook(admin.session, { tokenOwnerId: leaver.id });
    await expectStatus(
      call(`/v1/tokens/${hook.token.id}`, { method: "DELETE", token: admin.session }),
      204,
    );
    const lateToken = "tok_createdduringdelete";

    const refused = await expectStatus(
      fetchWith(
        tokenCreatedBeforeBatch(leaver.id, lateToken),
        new Request(`${ORIGIN}/v1/users/${leaver.id}`, {
          method: "DELETE",
          headers: { Authorization: `Bearer ${admin.session}` },
        }),
      ),
      409,
    );

    expect(refused.code).toBe("user_has_active_tokens");
    expect(refused.tokens.map((token: { id: string }) => token.id)).toEqual([lateToken]);
    const left = await env.DB.prepare("select id from tokens where user_id = ? order by id")
      .bind(leaver.id)
      .all<{ id: string }>();
    expect(left.results.map((row) => row.id).sort()).toEqual([hook.token.id, lateToken].sort());
    await expectStatus(call(`/v1/users/${leaver.id}`, { token: admin.session }), 200);
  });
});

/**
 * The test's bindings, where the first batch (the deletion's) runs only after a live
 * integration token was added to the account, as a concurrent request could do.
 */
function tokenCreatedBeforeBatch(userId: string, tokenId: string): Env {
  let pending = true;
  const db = new Proxy(env.DB, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (property !== "batch") return typeof value === "function" ? value.bind(target) : value;
      return async (statements: D1PreparedStatement[]) => {
        if (pending) {
          pending = false;
          await target
            .prepare(
              `insert into tokens (id, kind, hash, prefix, scopes, user_id, created_at)
               values (?, 'integration', ?, 'hgi_xxxxxx', 'send', ?, ?)`,
            )
            .bind(tokenId, `hash-of-${tokenId}`, userId, Date.now())
            .run();
        }
        return target.batch(statements);
      };
    },
  });
  return { ...env, DB: db };
}

describe("activity", () => {
  it("counts a management call, writing at most once per interval", async () => {
    const member = await createPerson(admin.session, "active-one");
    const longAgo = Date.now() - 10 * 86_400_000;
    await setLastActive(member.user.id, longAgo);
    const lastUsed = () =>
      env.DB.prepare("select last_used_at as at from tokens where user_id = ? and kind = 'session'")
        .bind(member.user.id)
        .first<{ at: number | null }>();

    await expectStatus(call("/v1/me", { token: member.session }), 200);
    const first = await lastActive(member.user.id);
    const firstUse = await lastUsed();
    await new Promise((resolve) => setTimeout(resolve, 20));
    await expectStatus(call("/v1/me", { token: member.session }), 200);
    const second = await lastActive(member.user.id);

    expect(first).toBeGreaterThan(Date.now() - 60_000);
    expect(second).toBe(first);
    expect(firstUse?.at).toBeGreaterThan(Date.now() - 60_000);
    expect((await lastUsed())?.at).toBe(firstUse?.at);
  });
});

async function lastActive(userId: string) {
  const row = await env.DB.prepare("select last_active_at as at from users where id = ?")
    .bind(userId)
    .first<{ at: number }>();
  return row?.at;
}
