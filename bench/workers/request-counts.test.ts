import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, expect, it } from "vitest";
import { app } from "../../src/app";
import { tokenFactsCache, webhookFactsCache } from "../../src/auth/decision-cache";
import { generateToken } from "../../src/auth/tokens";
import { instrumentedEnv } from "../../test/workers/support/instrumented-env";
import type { RequestCounts } from "./figures";

const ORIGIN = "https://hookgate.bench";
/** The ingress limiter's budget of uncached lookups per client and minute, in wrangler.toml. */
const LIMITER_BUDGET = 60;

/** The fields the setup calls answer with (each call a subset of them). */
interface Created {
  sessionToken: string;
  webhook: { id: string };
  credentials: { authorization: string };
}

let webhookId: string;
let warmAuthorization: string;
let session: string;

/** Calls the app on the test's own bindings, uncounted, and returns the JSON answer. */
async function setupCall(path: string, token: string, body: unknown) {
  const response = await app.fetch(
    new Request(`${ORIGIN}${path}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    }),
    env,
    createExecutionContext(),
  );
  expect(response.status, await response.clone().text()).toBe(201);
  return response.json<Created>();
}

beforeAll(async () => {
  const admin = await setupCall("/v1/bootstrap", env.BOOTSTRAP_TOKEN, {
    username: "admin",
    password: "correct-horse-battery",
  });
  session = admin.sessionToken;
  const hook = await setupCall("/v1/webhooks", session, { name: "Bench", authMethod: "bearer" });
  webhookId = hook.webhook.id;
  warmAuthorization = hook.credentials.authorization;
});

/**
 * Posts one webhook call through the real app on counted bindings (the rate limiter
 * counted too) and waits for its deferred work, such as the KV write of a cold lookup.
 */
async function countedPost(authorization: string, client = "192.0.2.1"): Promise<RequestCounts> {
  const { env: counted, counts } = instrumentedEnv();
  let limiterCalls = 0;
  const limiter: RateLimit = {
    limit: (options) => {
      limiterCalls++;
      return env.INGRESS_LIMITER.limit(options);
    },
  };
  const ctx = createExecutionContext();
  const response = await app.fetch(
    post(authorization, client),
    { ...counted, INGRESS_LIMITER: limiter },
    ctx,
  );
  await response.arrayBuffer();
  await waitOnExecutionContext(ctx);
  return { status: response.status, ...counts, limiterCalls };
}

/** A well-formed Bearer credential whose token no account holds. */
async function unknownToken(): Promise<string> {
  return `Bearer ${(await generateToken("app")).secret}`;
}

function post(authorization: string, client: string): Request {
  return new Request(`${ORIGIN}/hooks/${webhookId}`, {
    method: "POST",
    headers: {
      Authorization: authorization,
      "Content-Type": "application/json",
      "CF-Connecting-IP": client,
    },
    body: JSON.stringify({ event: "bench" }),
  });
}

it("counts the binding calls of one ingress request per path", async ({ task }) => {
  // The first call also caches the webhook's facts, as the load's warm-up does.
  expect((await countedPost(warmAuthorization)).status).toBe(202);
  // Warm: the same token again, answered from this isolate's memory.
  const warm = await countedPost(warmAuthorization);
  // Cold: the first use of a new token of that webhook, unknown to this isolate and to KV.
  const issued = await setupCall(`/v1/webhooks/${webhookId}/tokens`, session, {});
  const cold = await countedPost(issued.credentials.authorization);
  // Warm from KV: another isolate, or this one after its few seconds of memory.
  tokenFactsCache.clear();
  webhookFactsCache.clear();
  const warmFromKv = await countedPost(warmAuthorization);

  const garbage = await countedPost(await unknownToken());
  const flooder = "192.0.2.66";
  for (let i = 0; i < LIMITER_BUDGET; i++) await countedPost(await unknownToken(), flooder);
  const garbageLimited = await countedPost(await unknownToken(), flooder);
  const wrongChecksum = (await unknownToken()).replace(/.$/, (last) => (last === "0" ? "1" : "0"));
  const badChecksum = await countedPost(wrongChecksum);

  expect([cold.status, warm.status, warmFromKv.status]).toEqual([202, 202, 202]);
  expect([garbage.status, garbageLimited.status, badChecksum.status]).toEqual([401, 429, 401]);
  task.meta.figures = {
    requestCounts: { warm, warmFromKv, cold, garbage, garbageLimited, badChecksum },
  };
});
