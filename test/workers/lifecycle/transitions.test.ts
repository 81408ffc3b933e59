import {
  createExecutionContext,
  createScheduledController,
  waitOnExecutionContext,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { app } from "../../../src/app";
import { tokenCacheKey } from "../../../src/auth/decision-cache";
import worker from "../../../src/index";
import { timeOrderedIdPrefix } from "../../../src/shared/ids";
import {
  bootstrapAdmin,
  call,
  createPerson,
  createService,
  createWebhook,
  expectStatus,
  ORIGIN,
  send,
  setLastActive,
  tokenHash,
} from "../helpers";

const DAY = 86_400_000;
let admin: Awaited<ReturnType<typeof bootstrapAdmin>>;

/**
 * The sweep runs at chosen future times, which also expires sessions; these tests call
 * the API with a manage-only integration token instead, which opens no webhook.
 */
beforeAll(async () => {
  const bootstrapped = await bootstrapAdmin();
  const manageOnly = await expectStatus(
    call(`/v1/users/${bootstrapped.user.id}/tokens`, {
      method: "POST",
      token: bootstrapped.session,
      body: { name: "tests", scopes: ["manage"] },
    }),
    201,
  );
  await expectStatus(
    call(`/v1/tokens/${bootstrapped.integration.id}`, {
      method: "DELETE",
      token: bootstrapped.session,
    }),
    204,
  );
  admin = { ...bootstrapped, session: manageOnly.secret };
});

/** Runs the hourly sweep as the Cron Trigger would, at a chosen time. */
async function sweepAt(time: number) {
  await worker.scheduled(
    createScheduledController({ scheduledTime: time, cron: "17 * * * *" }),
    env,
  );
}

async function waitUntilDeleted(key: string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while ((await env.AUTH_CACHE.get(key)) !== null) {
    if (Date.now() > deadline) throw new Error(`${key} is still cached after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function account(id: string) {
  return expectStatus(call(`/v1/users/${id}`, { token: admin.session }), 200);
}

describe("the idle sweep", () => {
  it("switches off an idle person's tokens; reactivation brings the same ones back", async () => {
    const person = await createPerson(admin.session, "idle-ida");
    const hook = await createWebhook(person.session);
    const authorization = hook.credentials.authorization;
    const integration = await expectStatus(
      call(`/v1/users/${person.user.id}/tokens`, {
        method: "POST",
        token: person.session,
        body: { name: "crm", scopes: ["send"] },
      }),
      201,
    );
    expect((await send(hook.webhook.id, { authorization })).status).toBe(202);
    const viaIntegration = { authorization: `Bearer ${integration.secret}` };
    expect((await send(hook.webhook.id, viaIntegration)).status).toBe(202);
    const cached = tokenCacheKey(await tokenHash(hook.token.id));
    const cachedIntegration = tokenCacheKey(await tokenHash(integration.id));
    expect(await env.AUTH_CACHE.get(cached)).not.toBeNull();
    expect(await env.AUTH_CACHE.get(cachedIntegration)).not.toBeNull();
    await setLastActive(person.user.id, Date.now() - 61 * DAY);

    await sweepAt(Date.now());

    const flagged = await account(person.user.id);
    expect(flagged).toMatchObject({ status: "inactive", inactiveAt: null });
    expect(Date.now() - Date.parse(flagged.deactivatedAt)).toBeLessThan(60_000);
    expect(await env.AUTH_CACHE.get(cached)).toBeNull();
    expect(await env.AUTH_CACHE.get(cachedIntegration)).toBeNull();
    const refused = await send(hook.webhook.id, { authorization });
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { code: string }).code).toBe("account_inactive");
    const session = await expectStatus(call("/v1/me", { token: person.session }), 401);
    expect(session.code).toBe("invalid_credentials");
    const login = await expectStatus(
      call("/v1/sessions", {
        method: "POST",
        body: { username: "idle-ida", password: "a-long-enough-password" },
      }),
      403,
    );
    expect(login.code).toBe("account_inactive");
    const audit = await expectStatus(call("/v1/audit", { token: admin.session }), 200);
    const entry = audit.items.find(
      (entry: { action: string; targetId: string }) =>
        entry.action === "user.deactivated" && entry.targetId === person.user.id,
    );
    expect(entry).toMatchObject({
      actorId: null,
      details: { username: "idle-ida", inactivityDays: 60 },
    });
    // Made in SQL, the id is time-ordered like those made in JavaScript.
    expect(entry.id).toMatch(/^aud_[0-9A-Za-z]{22}$/);
    expect(entry.id.startsWith(timeOrderedIdPrefix("aud", new Date(entry.at)))).toBe(true);

    const reactivated = await expectStatus(
      call(`/v1/users/${person.user.id}/reactivate`, { method: "POST", token: admin.session }),
      200,
    );

    expect(reactivated).toMatchObject({ status: "active", deactivatedAt: null });
    expect(Date.now() - Date.parse(reactivated.lastActiveAt)).toBeLessThan(60_000);
    expect((await send(hook.webhook.id, { authorization })).status).toBe(202);
    // Integration tokens open every webhook: this one would change the health tests' view.
    await expectStatus(
      call(`/v1/tokens/${integration.id}`, { method: "DELETE", token: admin.session }),
      204,
    );
  });

  it("deletes cached facts once more after a while, in case a lookup in flight wrote them back", {
    timeout: 40_000,
  }, async () => {
    const service = await createService(admin.session, "raced-ray");
    const hook = await createWebhook(admin.session, { tokenOwnerId: service.id });
    const key = tokenCacheKey(await tokenHash(hook.token.id));
    const staleFacts = (ownerActive: boolean) =>
      env.AUTH_CACHE.put(key, JSON.stringify({ tokenId: hook.token.id, ownerActive }));
    await setLastActive(service.id, Date.now() - 61 * DAY);

    await sweepAt(Date.now());
    // A lookup that read the account as active just before the sweep writes back now.
    await staleFacts(true);

    await waitUntilDeleted(key, 20_000);
    const ctx = createExecutionContext();
    const reactivated = await app.fetch(
      new Request(`${ORIGIN}/v1/users/${service.id}/reactivate`, {
        method: "POST",
        headers: { Authorization: `Bearer ${admin.session}` },
      }),
      env,
      ctx,
    );
    expect(reactivated.status).toBe(200);
    await staleFacts(false);
    await waitOnExecutionContext(ctx);
    expect(await env.AUTH_CACHE.get(key)).toBeNull();
  });

  it("leaves alone a service account kept busy by its own webhook calls", async () => {
    const service = await createService(admin.session, "busy-bot");
    const hook = await createWebhook(admin.session, { tokenOwnerId: service.id });
    await setLastActive(service.id, Date.now() - 59 * DAY);

    await sweepAt(Date.now() + 2 * DAY);

    expect((await account(service.id)).status).toBe("inactive");
    await expectStatus(
      call(`/v1/users/${service.id}/reactivate`, { method: "POST", token: admin.session }),
      200,
    );
    await setLastActive(service.id, Date.now() - 59 * DAY);
    const sent = await send(hook.webhook.id, { authorization: hook.credentials.authorization });
    expect(sent.status).toBe(202);
    await waitForActivity(service.id, Date.now() - 60_000);

    await sweepAt(Date.now() + 2 * DAY);

    expect((await account(service.id)).status).toBe("active");
  });

  it("spares accounts idle for less than INACTIVITY_DAYS", async () => {
    const person = await createPerson(admin.session, "almost-ann");
    await setLastActive(person.user.id, Date.now() - 59 * DAY);

    await sweepAt(Date.now());

    expect((await account(person.user.id)).status).toBe("active");
  });

  it("does nothing twice when run again", async () => {
    const person = await createPerson(admin.session, "twice-tom");
    await setLastActive(person.user.id, Date.now() - 90 * DAY);

    await sweepAt(Date.now());
    const first = await account(person.user.id);
    await sweepAt(Date.now() + 3_600_000);

    expect(await account(person.user.id)).toEqual(first);
    const audits = await env.DB.prepare(
      "select count(*) as n from audit_log where action = 'user.deactivated' and target_id = ?",
    )
      .bind(person.user.id)
      .first<{ n: number }>();
    expect(audits?.n).toBe(1);
  });

  it("spares an account that became active after its page was read", async () => {
    const person = await createPerson(admin.session, "late-lou");
    await setLastActive(person.user.id, Date.now() - 90 * DAY);
    // A login lands between the sweep's read of the page and its write.
    let raced = false;
    const racing = new Proxy(env.DB, {
      get(target, property) {
        const value = Reflect.get(target, property, target);
        if (property !== "batch") return typeof value === "function" ? value.bind(target) : value;
        return async (statements: D1PreparedStatement[]) => {
          if (!raced) {
            raced = true;
            await setLastActive(person.user.id, Date.now());
          }
          return target.batch(statements);
        };
      },
    });

    await worker.scheduled(
      createScheduledController({ scheduledTime: Date.now(), cron: "17 * * * *" }),
      { ...env, DB: racing },
    );

    expect(raced).toBe(true);
    expect((await account(person.user.id)).status).toBe("active");
    await expectStatus(call("/v1/me", { token: person.session }), 200);
    const audits = await env.DB.prepare(
      "select count(*) as n from audit_log where action = 'user.deactivated' and target_id = ?",
    )
      .bind(person.user.id)
      .first<{ n: number }>();
    expect(audits?.n).toBe(0);
  });

  it("keeps the purge requested while KV refuses it, and finishes on the next run", async () => {
    const person = await createPerson(admin.session, "kv-kim");
    const hook = await createWebhook(person.session);
    expect(
      (await send(hook.webhook.id, { authorization: hook.credentials.authorization })).status,
    ).toBe(202);
    const key = tokenCacheKey(await tokenHash(hook.token.id));
    expect(await env.AUTH_CACHE.get(key)).not.toBeNull();
    await setLastActive(person.user.id, Date.now() - 90 * DAY);
    const refusing = {
      ...env,
      AUTH_CACHE: { delete: () => Promise.reject(new Error("KV unavailable")) },
    } as unknown as Env;
    const scheduled = createScheduledController({ scheduledTime: Date.now(), cron: "17 * * * *" });

    await expect(worker.scheduled(scheduled, refusing)).rejects.toThrow(/KV refused/);
    const requested = await env.DB.prepare(
      "select purge_requested_at as at from users where id = ?",
    )
      .bind(person.user.id)
      .first<{ at: number | null }>();
    expect(requested?.at).not.toBeNull();
    await sweepAt(Date.now());

    const cleared = await env.DB.prepare("select purge_requested_at as at from users where id = ?")
      .bind(person.user.id)
      .first<{ at: number | null }>();
    expect(cleared?.at).toBeNull();
    expect(await env.AUTH_CACHE.get(key)).toBeNull();
    expect((await account(person.user.id)).status).toBe("inactive");
  });

  it("removes events past their retention with their R2 bodies, and expired sessions", async () => {
    const hook = await createWebhook(admin.session);
    const small = await send(hook.webhook.id, { authorization: hook.credentials.authorization });
    const large = await send(hook.webhook.id, {
      authorization: hook.credentials.authorization,
      body: new Uint8Array(200_000),
    });
    const ids = [
      ((await small.json()) as { id: string }).id,
      ((await large.json()) as { id: string }).id,
    ];
    await waitForRows(`select id from events where id in ('${ids[0]}', '${ids[1]}')`, 2);
    const recent = await send(hook.webhook.id, { authorization: hook.credentials.authorization });
    const recentId = ((await recent.json()) as { id: string }).id;
    await waitForRows(`select id from events where id = '${recentId}'`, 1);
    // Received a day before the sweep below runs: inside the 7-day retention.
    await env.DB.prepare("update events set received_at = ? where id = ?")
      .bind(Date.now() + 7 * DAY, recentId)
      .run();
    const expiredSession = await createPerson(admin.session, "short-session");
    await env.DB.prepare("update tokens set expires_at = ? where user_id = ? and kind = 'session'")
      .bind(Date.now() - 1000, expiredSession.user.id)
      .run();

    await sweepAt(Date.now() + 8 * DAY);

    await waitForRows(`select id from events where id in ('${ids[0]}', '${ids[1]}')`, 0);
    expect(await env.PAYLOADS.get(`payloads/${hook.webhook.id}/${ids[1]}`)).toBeNull();
    await waitForRows(`select id from events where id = '${recentId}'`, 1);
    const sessions = await env.DB.prepare(
      "select count(*) as n from tokens where user_id = ? and kind = 'session'",
    )
      .bind(expiredSession.user.id)
      .first<{ n: number }>();
    expect(sessions?.n).toBe(0);
  });
});

describe("deleting an account", () => {
  it("is refused while live tokens remain, then hands the webhooks to the admin", async () => {
    const leaver = await createPerson(admin.session, "leaving-lee");
    const hook = await createWebhook(leaver.session);
    // Switched off by the sweep, its tokens still count: a reactivation would revive them.
    await setLastActive(leaver.user.id, Date.now() - 61 * DAY);
    await sweepAt(Date.now());
    expect((await account(leaver.user.id)).status).toBe("inactive");

    const refused = await expectStatus(
      call(`/v1/users/${leaver.user.id}`, { method: "DELETE", token: admin.session }),
      409,
    );
    expect(refused.code).toBe("user_has_active_tokens");
    expect(refused.tokens).toEqual([
      expect.objectContaining({ id: hook.token.id, kind: "app", webhookId: hook.webhook.id }),
    ]);

    await expectStatus(
      call(`/v1/tokens/${hook.token.id}`, { method: "DELETE", token: admin.session }),
      204,
    );
    await expectStatus(
      call(`/v1/users/${leaver.user.id}`, { method: "DELETE", token: admin.session }),
      204,
    );

    await expectStatus(call(`/v1/users/${leaver.user.id}`, { token: admin.session }), 404);
    const webhook = await expectStatus(
      call(`/v1/webhooks/${hook.webhook.id}`, { token: admin.session }),
      200,
    );
    expect(webhook.ownerId).toBe(admin.user.id);
    const audit = await expectStatus(call("/v1/audit?limit=100", { token: admin.session }), 200);
    const deletion = audit.items.find(
      (entry: { action: string }) => entry.action === "user.deleted",
    );
    expect(deletion).toMatchObject({
      actorId: admin.user.id,
      targetId: leaver.user.id,
      details: { webhookIds: [hook.webhook.id], webhooksHandedTo: admin.user.id },
    });
    expect(deletion.id.startsWith(timeOrderedIdPrefix("aud", new Date(deletion.at)))).toBe(true);
  });

  it("refuses to delete the caller's own account", async () => {
    const res = await expectStatus(
      call(`/v1/users/${admin.user.id}`, { method: "DELETE", token: admin.session }),
      403,
    );

    expect(res.code).toBe("forbidden");
  });
});

describe("webhook health", () => {
  it("warns before an owner goes idle, and clears once a service account holds it", async () => {
    const person = await createPerson(admin.session, "soon-idle");
    const hook = await createWebhook(person.session);
    await setLastActive(person.user.id, Date.now() - 50 * DAY);
    await setLastActive(admin.user.id, Date.now() - 50 * DAY);

    const before = await expectStatus(
      call(`/v1/webhooks/${hook.webhook.id}`, { token: admin.session }),
      200,
    );
    const report = await expectStatus(
      call("/v1/reports/at-risk?limit=100", { token: admin.session }),
      200,
    );

    expect(before.health.status).toBe("at_risk");
    expect(before.health.reasons.join(" ")).toContain("Every working credential stops by");
    expect(report.items.map((item: { id: string }) => item.id)).toContain(hook.webhook.id);

    const service = await createService(admin.session, "steady-service");
    await expectStatus(
      call(`/v1/tokens/${hook.token.id}/transfer`, {
        method: "POST",
        token: admin.session,
        body: { userId: service.id },
      }),
      200,
    );
    const after = await expectStatus(
      call(`/v1/webhooks/${hook.webhook.id}`, { token: admin.session }),
      200,
    );
    const afterReport = await expectStatus(
      call("/v1/reports/at-risk?limit=100", { token: admin.session }),
      200,
    );

    expect(after.health).toEqual({ status: "ok", reasons: [] });
    expect(afterReport.items.map((item: { id: string }) => item.id)).not.toContain(hook.webhook.id);
  });

  it("calls a webhook broken once the sweep switched its only credential's owner off", async () => {
    const person = await createPerson(admin.session, "broken-bo");
    const hook = await createWebhook(person.session);
    await setLastActive(person.user.id, Date.now() - 61 * DAY);
    await sweepAt(Date.now());

    const webhook = await expectStatus(
      call(`/v1/webhooks/${hook.webhook.id}`, { token: admin.session }),
      200,
    );

    expect(webhook.health.status).toBe("broken");
    expect(webhook.credentials[0].owner.status).toBe("inactive");
  });

  it("looks as far ahead as the report's withinDays", async () => {
    const service = await createService(admin.session, "expiring-service");
    const hook = await createWebhook(admin.session, { tokenOwnerId: service.id });
    await env.DB.prepare("update tokens set expires_at = ? where id = ?")
      .bind(Date.now() + 10 * DAY, hook.token.id)
      .run();
    const listed = async (withinDays: number) => {
      const report = await expectStatus(
        call(`/v1/reports/at-risk?limit=100&withinDays=${withinDays}`, { token: admin.session }),
        200,
      );
      return report.items.some((item: { id: string }) => item.id === hook.webhook.id);
    };

    expect(await listed(5)).toBe(false);
    expect(await listed(14)).toBe(true);
  });
});

async function waitForActivity(userId: string, after: number) {
  for (let i = 0; i < 150; i++) {
    const row = await env.DB.prepare("select last_active_at as at from users where id = ?")
      .bind(userId)
      .first<{ at: number }>();
    if ((row?.at ?? 0) > after) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("The webhook call was not recorded as activity");
}

async function waitForRows(query: string, count: number) {
  for (let i = 0; i < 150; i++) {
    const rows = await env.DB.prepare(query).all();
    if (rows.results.length === count) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`Expected ${count} rows for ${query}`);
}
