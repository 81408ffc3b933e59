import { createHash, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { call } from "./http";
import { eventually } from "./poll";
import { type Server, startServer } from "./server";

/** The load run's bounds: whichever is reached first ends it. */
const LOAD_MAX_REQUESTS = 2_000;
const LOAD_MAX_MS = 15_000;
const LOAD_CONNECTIONS = 8;
const PASSWORD = "hardening-password-1";

interface CreatedWebhook {
  webhook: { id: string; url: string };
  token: { id: string; secret: string };
  credentials: { authorization: string; password?: string };
}

// Its own server, so that its log holds exactly what this file did, and the load run
// competes with nothing else.
let server: Server;
const secrets = new Set<string>();

beforeAll(async () => {
  // At debug level every decision is logged, accepted calls included.
  server = await startServer({
    parentDir: inject("runDir"),
    label: "hardening",
    vars: { LOG_LEVEL: "debug" },
  });
  remember(server.bootstrapToken);
});

afterAll(async () => {
  await server?.stop({ remove: true });
});

function url(path: string) {
  return `${server.baseUrl}${path}`;
}

/** Remembers a secret, and every form of it a careless log line could carry. */
function remember(secret: string) {
  secrets.add(secret);
  const hash = createHash("sha256").update(secret).digest();
  secrets.add(hash.toString("hex"));
  secrets.add(hash.toString("base64"));
  secrets.add(hash.toString("base64url"));
}

/** Remembers an Authorization header value, and its credential without the scheme. */
function rememberAuthorization(value: string) {
  remember(value);
  const [, credential] = value.split(" ");
  if (credential) remember(credential);
}

async function bootstrap() {
  const answer = await call<{ sessionToken: string; integrationToken: { secret: string } }>(
    "POST",
    url("/v1/bootstrap"),
    { token: server.bootstrapToken, json: { username: "admin", password: PASSWORD } },
  );
  expect(answer.status).toBe(201);
  remember(PASSWORD);
  remember(answer.body.sessionToken);
  remember(answer.body.integrationToken.secret);
  return answer.body.sessionToken;
}

async function createWebhook(session: string, authMethod: "bearer" | "basic") {
  const answer = await call<CreatedWebhook>("POST", url("/v1/webhooks"), {
    token: session,
    json: { name: `Hardening ${authMethod}`, authMethod },
  });
  expect(answer.status).toBe(201);
  remember(answer.body.token.secret);
  // For basic, the bare base64 of username:password, which no log may carry either.
  rememberAuthorization(answer.body.credentials.authorization);
  return answer.body;
}

describe("hardening over HTTP", () => {
  let session: string;
  let bearer: CreatedWebhook;

  it("keeps every secret out of the Worker's logs, whatever the call", async () => {
    session = await bootstrap();
    bearer = await createWebhook(session, "bearer");
    const basic = await createWebhook(session, "basic");
    const wrongPassword = "not-the-admin-password";
    remember(wrongPassword);

    const calls = [
      call("POST", url("/v1/sessions"), { json: { username: "admin", password: wrongPassword } }),
      call("POST", bearer.webhook.url, { authorization: bearer.credentials.authorization }),
      call("POST", basic.webhook.url, { authorization: basic.credentials.authorization }),
      call("POST", bearer.webhook.url, { authorization: `Bearer ${basic.token.secret}` }),
      call("POST", basic.webhook.url, { authorization: `Bearer ${bearer.token.secret} extra` }),
      call("GET", url("/v1/me"), { token: `${session}x` }),
      call("POST", url("/v1/bootstrap"), { token: server.bootstrapToken, json: {} }),
    ];
    const statuses = (await Promise.all(calls)).map((answer) => answer.status);
    const revoked = await call("DELETE", url(`/v1/tokens/${bearer.token.id}`), { token: session });
    // The app takes a well-formed X-Request-Id as the request's id, and logs it.
    const lastRequestId = `hardening-${randomUUID()}`;
    const afterRevoke = await call("POST", bearer.webhook.url, {
      authorization: bearer.credentials.authorization,
      headers: { "X-Request-Id": lastRequestId },
    });

    expect(statuses).toEqual([401, 202, 202, 401, 400, 401, 400]);
    expect([revoked.status, afterRevoke.status]).toEqual([204, 401]);
    expect(afterRevoke.headers.get("X-Request-Id")).toBe(lastRequestId);
    // Every earlier call had answered before the last one was sent, so once the last
    // call's line is in the log, theirs are too.
    const log = await eventually("the last call logged", async () => {
      const text = readFileSync(server.logPath, "utf8");
      return text.includes(`"requestId":"${lastRequestId}"`) ? text : undefined;
    });
    const lastLine = log.split("\n").find((line) => line.includes(lastRequestId)) ?? "";
    expect(JSON.parse(lastLine.slice(lastLine.indexOf("{")))).toMatchObject({
      event: "ingress.decision",
      outcome: "invalid_credentials",
    });
    expect(log).toContain('"outcome":"accepted"');
    for (const secret of secrets) {
      expect(log.includes(secret), `a secret starting ${secret.slice(0, 6)} is in the log`).toBe(
        false,
      );
    }
  });

  it("stores every accepted payload of a sustained load, byte for byte", async () => {
    const hook = await createWebhook(session, "bearer");
    const accepted = new Map<string, string>();
    const refused = new Map<number, number>();
    let sent = 0;
    const deadline = Date.now() + LOAD_MAX_MS;

    const worker = async (connection: number) => {
      while (sent < LOAD_MAX_REQUESTS && Date.now() < deadline) {
        const body = JSON.stringify({ connection, n: sent++, pad: "x".repeat(sent % 700) });
        const response = await fetch(hook.webhook.url, {
          method: "POST",
          headers: {
            Authorization: hook.credentials.authorization,
            "Content-Type": "application/json",
          },
          body,
        });
        const answer = (await response.json()) as { id: string };
        if (response.status === 202) accepted.set(answer.id, body);
        else refused.set(response.status, (refused.get(response.status) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: LOAD_CONNECTIONS }, (_, i) => worker(i)));

    const stored = await eventually(
      "every accepted event stored",
      async () => {
        const found = await storedBodies(hook.webhook.id, session);
        return found.size >= accepted.size ? found : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 1_000 },
    );
    const lost = [...accepted.keys()].filter((id) => stored.get(id) !== accepted.get(id));
    console.log(
      `load: ${sent} requests, ${accepted.size} accepted, ${stored.size} stored, ` +
        `${lost.length} lost, refused ${JSON.stringify(Object.fromEntries(refused))}`,
    );

    expect(sent).toBeGreaterThan(100);
    expect(refused.size).toBe(0);
    expect(lost).toEqual([]);
    expect(stored.size).toBe(accepted.size);
  }, 120_000);
});

/** Every stored event of a webhook, id to body, read through the events API page by page. */
async function storedBodies(webhookId: string, session: string) {
  const bodies = new Map<string, string>();
  let cursor: string | null = null;
  do {
    const query: string = cursor ? `&cursor=${cursor}` : "";
    const page = await call<{ items: { id: string; body: string }[]; nextCursor: string | null }>(
      "GET",
      url(`/v1/webhooks/${webhookId}/events?limit=100${query}`),
      { token: session },
    );
    if (page.status !== 200) throw new Error(`events answered ${page.status}`);
    for (const event of page.body.items) bodies.set(event.id, event.body);
    cursor = page.body.nextCursor;
  } while (cursor);
  return bodies;
}
