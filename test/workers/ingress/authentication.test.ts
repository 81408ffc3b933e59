import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { webhookCacheKey, webhookFactsCache } from "../../../src/auth/decision-cache";
import { generateToken } from "../../../src/auth/tokens";
import { timeOrderedIdPrefix } from "../../../src/shared/ids";
import {
  basicAuthorization,
  bootstrapAdmin,
  call,
  createPerson,
  createService,
  createWebhook,
  expectStatus,
  markInactive,
  send,
  waitForStoredEvent,
} from "../helpers";
import { instrumentedEnv } from "../support/instrumented-env";

let admin: Awaited<ReturnType<typeof bootstrapAdmin>>;
let member: Awaited<ReturnType<typeof createPerson>>;
let bearerHook: Awaited<ReturnType<typeof createWebhook>>;
let basicHook: Awaited<ReturnType<typeof createWebhook>>;

beforeAll(async () => {
  admin = await bootstrapAdmin();
  member = await createPerson(admin.session, "sam");
  bearerHook = await createWebhook(member.session, { name: "Bearer hook" });
  basicHook = await createWebhook(member.session, { name: "Basic hook", authMethod: "basic" });
});

/** A response's problem body without the per-request id, for comparing refusals. */
async function refusal(response: Response): Promise<Record<string, unknown>> {
  const { requestId, ...rest } = (await response.json()) as Record<string, unknown>;
  expect(requestId).toBe(response.headers.get("X-Request-Id"));
  return { status: response.status, challenge: response.headers.get("WWW-Authenticate"), ...rest };
}

describe("accepting a payload", () => {
  it("answers 202 with the event id for a bearer app token, and stores the payload", async () => {
    const res = await send(bearerHook.webhook.id, {
      authorization: bearerHook.credentials.authorization,
      contentType: "application/json",
      body: '{"contact":"ada@example.com"}',
    });
    const receipt = (await res.json()) as { id: string; webhookId: string; receivedAt: string };

    expect(res.status).toBe(202);
    expect(res.headers.get("X-Request-Id")).toBeTruthy();
    expect(receipt.id).toMatch(/^evt_[0-9A-Za-z]{22}$/);
    expect(receipt.webhookId).toBe(bearerHook.webhook.id);
    expect(Math.abs(Date.parse(receipt.receivedAt) - Date.now())).toBeLessThan(60_000);
    // Event ids begin with the time they were received, so that they append to the index.
    expect(receipt.id.startsWith(timeOrderedIdPrefix("evt", new Date(receipt.receivedAt)))).toBe(
      true,
    );
    const stored = await waitForStoredEvent(receipt.id);
    expect(stored).toMatchObject({ body: '{"contact":"ada@example.com"}', status: "stored" });
  });

  it("answers 202 for a basic app token with the owner's username", async () => {
    const res = await send(basicHook.webhook.id, {
      authorization: basicHook.credentials.authorization,
    });

    expect(res.status).toBe(202);
  });

  it("accepts a sending integration token on every webhook, in its scheme", async () => {
    const service = await createService(admin.session, "many-hooks");
    const token = await expectStatus(
      call(`/v1/users/${service.id}/tokens`, {
        method: "POST",
        token: admin.session,
        body: { name: "sender", scopes: ["send"] },
      }),
      201,
    );

    const viaBearer = await send(bearerHook.webhook.id, {
      authorization: `Bearer ${token.secret}`,
    });
    const viaBasic = await send(basicHook.webhook.id, {
      authorization: basicAuthorization("many-hooks", token.secret),
    });

    expect(viaBearer.status).toBe(202);
    expect(viaBasic.status).toBe(202);
  });
});

describe("refusing a caller", () => {
  it("answers 401 with the webhook's scheme when no credential is sent", async () => {
    const bearer = await refusal(await send(bearerHook.webhook.id));
    const basic = await refusal(await send(basicHook.webhook.id));

    expect(bearer).toMatchObject({ status: 401, code: "unauthenticated" });
    expect(bearer.challenge).toBe('Bearer realm="hookgate"');
    expect(basic.challenge).toBe('Basic realm="hookgate", charset="UTF-8"');
  });

  it("answers 400 invalid_request to a malformed header (RFC 6750)", async () => {
    for (const authorization of ["Bearer", "Bearer a b", "Token abc", "Basic not-base64!"]) {
      const res = await refusal(await send(bearerHook.webhook.id, { authorization }));

      expect(res, authorization).toMatchObject({ status: 400, code: "invalid_request" });
      expect(res.challenge).toBe(
        authorization.startsWith("Basic")
          ? 'Basic realm="hookgate", charset="UTF-8", error="invalid_request"'
          : 'Bearer realm="hookgate", error="invalid_request"',
      );
    }
  });

  it("answers every invalid credential the same way", async () => {
    const unknown = (await generateToken("app")).secret;
    const session = (await generateToken("session")).secret;
    const secret = bearerHook.token.secret;
    const badChecksum = `${secret.slice(0, -1)}${secret.endsWith("A") ? "B" : "A"}`;
    const revoked = await createWebhook(member.session);
    await expectStatus(
      call(`/v1/tokens/${revoked.token.id}`, { method: "DELETE", token: member.session }),
      204,
    );
    const expiring = await expectStatus(
      call(`/v1/webhooks/${bearerHook.webhook.id}/tokens`, {
        method: "POST",
        token: member.session,
        body: { expiresAt: new Date(Date.now() + 60_000).toISOString() },
      }),
      201,
    );
    await env.DB.prepare("update tokens set expires_at = ? where id = ?")
      .bind(Date.now() - 1000, expiring.token.id)
      .run();

    const cases = {
      junk: "Bearer not-a-token",
      unknown: `Bearer ${unknown}`,
      badChecksum: `Bearer ${badChecksum}`,
      session: `Bearer ${session}`,
      // A live session of a real account: sessions open the management API only.
      liveSession: `Bearer ${member.session}`,
      expired: `Bearer ${expiring.token.secret}`,
    };
    const answers = [];
    for (const [name, authorization] of Object.entries(cases)) {
      const res = await refusal(await send(bearerHook.webhook.id, { authorization }));
      expect(res, name).toMatchObject({ status: 401, code: "invalid_credentials" });
      answers.push(res);
    }
    const revokedAnswer = await refusal(
      await send(revoked.webhook.id, { authorization: revoked.credentials.authorization }),
    );
    const wrongUser = await refusal(
      await send(basicHook.webhook.id, {
        authorization: basicAuthorization("someone-else", basicHook.token.secret),
      }),
    );

    for (const answer of [...answers, revokedAnswer]) expect(answer).toEqual(answers[0]);
    expect(answers[0]?.challenge).toBe('Bearer realm="hookgate", error="invalid_token"');
    expect(wrongUser).toMatchObject({ status: 401, code: "invalid_credentials" });
    expect(wrongUser.challenge).toBe(
      'Basic realm="hookgate", charset="UTF-8", error="invalid_token"',
    );
    expect(wrongUser.detail).toBe(answers[0]?.detail);
  });

  it("compares the Basic username exactly: case and spaces count", async () => {
    const owner = member.user.username;
    const near = [owner.toUpperCase(), `${owner[0]?.toUpperCase()}${owner.slice(1)}`];
    near.push(` ${owner}`, `${owner} `, `${owner}\u0000`);

    for (const username of near) {
      const res = await refusal(
        await send(basicHook.webhook.id, {
          authorization: basicAuthorization(username, basicHook.token.secret),
        }),
      );
      expect(res, JSON.stringify(username)).toMatchObject({
        status: 401,
        code: "invalid_credentials",
      });
    }
    const exact = await send(basicHook.webhook.id, {
      authorization: basicAuthorization(owner, basicHook.token.secret),
    });
    expect(exact.status).toBe(202);
  });

  it("tells a genuine holder that its account is inactive", async () => {
    const leaver = await createPerson(admin.session, "gone-idle");
    const hook = await createWebhook(leaver.session);
    await markInactive(leaver.user.id);

    const res = await refusal(
      await send(hook.webhook.id, { authorization: hook.credentials.authorization }),
    );

    expect(res).toMatchObject({ status: 401, code: "account_inactive" });
    expect(res.challenge).toBe('Bearer realm="hookgate", error="invalid_token"');
  });

  it("refuses an app token on another webhook", async () => {
    const res = await refusal(
      await send(bearerHook.webhook.id, { authorization: `Bearer ${basicHook.token.secret}` }),
    );

    expect(res).toMatchObject({ status: 401, code: "token_not_valid_for_webhook" });
    expect(res.challenge).toBe('Bearer realm="hookgate", error="invalid_token"');
  });

  it("names the right scheme when the caller used the other one", async () => {
    const res = await refusal(
      await send(basicHook.webhook.id, { authorization: `Bearer ${admin.integration.secret}` }),
    );

    const basicOnBearer = await refusal(
      await send(bearerHook.webhook.id, {
        authorization: basicAuthorization(admin.user.username, admin.integration.secret),
      }),
    );

    expect(res).toMatchObject({ status: 401, code: "wrong_auth_scheme" });
    expect(res.challenge).toBe('Basic realm="hookgate", charset="UTF-8"');
    expect(basicOnBearer).toMatchObject({ status: 401, code: "wrong_auth_scheme" });
    expect(basicOnBearer.challenge).toBe('Bearer realm="hookgate"');
  });

  it("reveals a missing or disabled webhook only after authentication", async () => {
    const unknownId = "wh_0000000000000000000000";
    const disabled = await createWebhook(member.session);
    await expectStatus(
      call(`/v1/webhooks/${disabled.webhook.id}`, {
        method: "PATCH",
        token: member.session,
        body: { enabled: false },
      }),
      200,
    );

    const anonymousUnknown = await refusal(
      await send(unknownId, { authorization: "Bearer not-a-token" }),
    );
    const anonymousKnown = await refusal(
      await send(bearerHook.webhook.id, { authorization: "Bearer not-a-token" }),
    );
    const authenticatedUnknown = await send(unknownId, {
      authorization: `Bearer ${admin.integration.secret}`,
    });
    const authenticatedDisabled = await send(disabled.webhook.id, {
      authorization: disabled.credentials.authorization,
    });

    expect(anonymousUnknown).toEqual(anonymousKnown);
    expect(authenticatedUnknown.status).toBe(404);
    expect(authenticatedDisabled.status).toBe(404);
  });

  it("refuses an integration token without the send scope", async () => {
    const manageOnly = await expectStatus(
      call(`/v1/users/${admin.user.id}/tokens`, {
        method: "POST",
        token: admin.session,
        body: { name: "ops", scopes: ["manage"] },
      }),
      201,
    );

    const res = await refusal(
      await send(bearerHook.webhook.id, { authorization: `Bearer ${manageOnly.secret}` }),
    );

    expect(res).toMatchObject({ status: 403, code: "insufficient_scope" });
    expect(res.challenge).toBe('Bearer realm="hookgate", error="insufficient_scope"');
  });

  it("answers 405 with Allow: POST to other methods", async () => {
    const res = await send(bearerHook.webhook.id, { method: "GET" });

    expect(res.status).toBe(405);
    expect(res.headers.get("Allow")).toBe("POST");
  });
});

describe("rate limiting", () => {
  /** Sends made-up tokens from `client` until the limiter refuses; returns every status. */
  async function exhaustLimiter(client: Record<string, string>): Promise<number[]> {
    const statuses: number[] = [];
    for (let i = 0; i < 61; i++) {
      const made = (await generateToken("app")).secret;
      const res = await send(bearerHook.webhook.id, {
        authorization: `Bearer ${made}`,
        headers: client,
      });
      statuses.push(res.status);
      if (res.status === 429) {
        expect(res.headers.get("Retry-After")).toBe("60");
        break;
      }
    }
    return statuses;
  }

  it("refuses a client after many uncached attempts, never a cached genuine token", async () => {
    const client = { "CF-Connecting-IP": "203.0.113.99" };
    const warm = await send(bearerHook.webhook.id, {
      authorization: bearerHook.credentials.authorization,
      headers: client,
    });
    expect(warm.status).toBe(202);

    const statuses = await exhaustLimiter(client);
    const genuine = await send(bearerHook.webhook.id, {
      authorization: bearerHook.credentials.authorization,
      headers: client,
    });
    const otherClient = await send(bearerHook.webhook.id, {
      authorization: `Bearer ${(await generateToken("app")).secret}`,
      headers: { "CF-Connecting-IP": "203.0.113.100" },
    });

    const { env: counted, counts } = instrumentedEnv();
    const refusedAgain = await send(bearerHook.webhook.id, {
      authorization: `Bearer ${(await generateToken("app")).secret}`,
      headers: client,
      env: counted,
    });

    expect(statuses.at(-1)).toBe(429);
    expect(statuses.filter((status) => status === 401).length).toBeGreaterThanOrEqual(59);
    // The limiter answers before D1 is asked.
    expect(refusedAgain.status).toBe(429);
    expect(counts.d1Queries).toBe(0);
    expect(genuine.status).toBe(202);
    expect(otherClient.status).toBe(401);
  });

  it("never refuses a cached genuine token whose webhook must be read from D1", async () => {
    const client = { "CF-Connecting-IP": "203.0.113.101" };
    const authorization = bearerHook.credentials.authorization;
    expect((await send(bearerHook.webhook.id, { authorization, headers: client })).status).toBe(
      202,
    );
    expect((await exhaustLimiter(client)).at(-1)).toBe(429);
    webhookFactsCache.clear();
    await env.AUTH_CACHE.delete(webhookCacheKey(bearerHook.webhook.id));

    const res = await send(bearerHook.webhook.id, { authorization, headers: client });

    expect(res.status).toBe(202);
  });
});
