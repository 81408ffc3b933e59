import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { type Answer, type CallOptions, call } from "./http";
import { eventually } from "./poll";
import { type Server, startServer } from "./server";

interface User {
  id: string;
  username: string;
  kind: "person" | "service";
  status: "active" | "inactive";
  lastActiveAt: string;
  inactiveAt: string | null;
  deactivatedAt: string | null;
}

interface CreatedWebhook {
  webhook: { id: string; url: string };
  token: { id: string; userId: string };
  credentials: { scheme: "bearer" | "basic"; authorization: string; username?: string };
}

interface Receipt {
  id: string;
  receivedAt: string;
}

interface AuditEntry {
  actorId: string | null;
  action: string;
  targetId: string;
}

/** About 17.3 s: long enough to set the scene, short enough to wait out. */
const INACTIVITY_DAYS = 0.0002;
const INACTIVITY_MS = INACTIVITY_DAYS * 86_400_000;
/** How often the busy accounts act while the person idles. */
const BEAT_MS = 2_000;
/** Keeps each sweep this far from an account's boundary, whatever the machine's load. */
const MARGIN_MS = 5_000;
const PASSWORD = "a-long-enough-password";

// This file changes the server's clock settings, so it runs its own server rather than
// the shared one. Every call records activity (ACTIVITY_WRITE_INTERVAL_SECONDS=0), so the
// accounts' lastActiveAt is exact and the test can time the sweep against it.
let server: Server | undefined;
let failed = false;

beforeAll(async () => {
  server = await startServer({
    parentDir: inject("runDir"),
    label: "lifecycle",
    vars: { INACTIVITY_DAYS: String(INACTIVITY_DAYS), ACTIVITY_WRITE_INTERVAL_SECONDS: "0" },
  });
});

beforeEach(({ onTestFailed }) => {
  onTestFailed(() => {
    failed = true;
  });
});

// Kept after a failure: the run's teardown then keeps the whole run directory.
afterAll(async () => {
  await server?.stop({ remove: !failed });
});

function url(path: string): string {
  if (server === undefined) throw new Error("The lifecycle server did not start");
  return new URL(path, server.baseUrl).href;
}

function api<T>(method: string, path: string, options: CallOptions = {}): Promise<Answer<T>> {
  return call<T>(method, url(path), options);
}

async function expectStatus<T>(answer: Promise<Answer<T>>, status: number): Promise<T> {
  const settled = await answer;
  expect(settled.status, JSON.stringify(settled.body)).toBe(status);
  return settled.body;
}

/** A webhook call as a sender makes it. */
function send(hook: CreatedWebhook, note: string): Promise<Answer<Receipt>> {
  return call<Receipt>("POST", hook.webhook.url, {
    authorization: hook.credentials.authorization,
    json: { note, at: new Date().toISOString() },
  });
}

/** Runs the Cron Trigger's handler now, as `wrangler dev --test-scheduled` allows. */
async function sweep() {
  const response = await fetch(url("/__scheduled?cron=17+*+*+*+*"));
  expect(response.status).toBe(200);
  expect(await response.text()).toBe("Ran scheduled event");
}

let admin = "";
let person: User;
let service: User;
let personHook: CreatedWebhook;
let serviceHook: CreatedWebhook;
let personSession = "";

describe("idle accounts stop working; busy ones do not", () => {
  it("sets up a person and a service account, each with a webhook", async () => {
    if (server === undefined) throw new Error("The lifecycle server did not start");
    const bootstrapped = await expectStatus(
      api<{ sessionToken: string }>("POST", "/v1/bootstrap", {
        token: server.bootstrapToken,
        json: { username: "admin", password: PASSWORD },
      }),
      201,
    );
    admin = bootstrapped.sessionToken;

    person = await expectStatus(
      api<User>("POST", "/v1/users", {
        token: admin,
        json: { username: "pat", kind: "person", password: PASSWORD },
      }),
      201,
    );
    service = await expectStatus(
      api<User>("POST", "/v1/users", {
        token: admin,
        json: { username: "crm-sync", kind: "service" },
      }),
      201,
    );
    expect(person).toMatchObject({ kind: "person", status: "active" });
    expect(service).toMatchObject({ kind: "service", status: "active" });

    personSession = (
      await expectStatus(
        api<{ token: string }>("POST", "/v1/sessions", {
          json: { username: "pat", password: PASSWORD },
        }),
        200,
      )
    ).token;
    personHook = await expectStatus(
      api<CreatedWebhook>("POST", "/v1/webhooks", {
        token: personSession,
        json: { name: "Pat's contact form", authMethod: "bearer" },
      }),
      201,
    );
    serviceHook = await expectStatus(
      api<CreatedWebhook>("POST", "/v1/webhooks", {
        token: admin,
        json: { name: "CRM sync", authMethod: "basic", tokenOwnerId: service.id },
      }),
      201,
    );
    expect(personHook.token.userId).toBe(person.id);
    expect(serviceHook.token.userId).toBe(service.id);
    expect(serviceHook.credentials).toMatchObject({ scheme: "basic", username: "crm-sync" });
  });

  it("accepts a call on each webhook, and counts it as its owner's activity", async () => {
    const personCall = await expectStatus(send(personHook, "first"), 202);
    const serviceCall = await expectStatus(send(serviceHook, "first"), 202);

    // The queue consumer records the activity, at the time the call was received.
    person = await activeSince(person.id, personCall.receivedAt);
    service = await activeSince(service.id, serviceCall.receivedAt);
  });

  it("leaves everyone active when the sweep runs within the inactivity period", async () => {
    expect(Date.now()).toBeLessThan(Date.parse(person.lastActiveAt) + INACTIVITY_MS - MARGIN_MS);

    await sweep();

    for (const id of [person.id, service.id]) {
      const user = await expectStatus(api<User>("GET", `/v1/users/${id}`, { token: admin }), 200);
      expect(user.status).toBe("active");
    }
  });

  it("flags only the idle person once the period passed, and refuses its token", {
    timeout: 3 * INACTIVITY_MS + 30_000,
  }, async () => {
    const personIdleFrom = Date.parse(person.lastActiveAt);
    const personIdleAt = personIdleFrom + INACTIVITY_MS;
    expect(person.inactiveAt).not.toBeNull();
    expect(Date.parse(person.inactiveAt ?? "")).toBe(personIdleAt);

    // The service account posts and the admin calls the API; the person does nothing.
    let lastServiceCall = "";
    const beat = async () => {
      lastServiceCall = (await expectStatus(send(serviceHook, "keep-alive"), 202)).receivedAt;
      await expectStatus(api("GET", "/v1/me", { token: admin }), 200);
    };
    while (Date.now() <= personIdleAt + 500) {
      await beat();
      await sleep(Math.min(BEAT_MS, Math.max(0, personIdleAt + 501 - Date.now())));
    }
    await beat();
    // The sweep must see the service account's latest call, well inside the period.
    await activeSince(service.id, lastServiceCall);
    expect(Date.now() - Date.parse(lastServiceCall)).toBeLessThan(INACTIVITY_MS - MARGIN_MS);

    await sweep();

    const refused = await send(personHook, "after the period");
    expect(refused.status).toBe(401);
    expect(refused.body).toMatchObject({ status: 401, code: "account_inactive" });
    expect(refused.headers.get("WWW-Authenticate")).toMatch(/^Bearer /);

    const idle = await expectStatus(
      api<User>("GET", `/v1/users/${person.id}`, { token: admin }),
      200,
    );
    expect(idle).toMatchObject({ status: "inactive", lastActiveAt: person.lastActiveAt });
    expect(idle.deactivatedAt).not.toBeNull();
    const busy = await expectStatus(
      api<User>("GET", `/v1/users/${service.id}`, { token: admin }),
      200,
    );
    expect(busy.status).toBe("active");
    await expectStatus(send(serviceHook, "after the period"), 202);
    expect((await expectStatus(api<User>("GET", "/v1/me", { token: admin }), 200)).status).toBe(
      "active",
    );

    // The sweep revoked the person's session and audited exactly this account.
    const revoked = await api("GET", "/v1/me", { token: personSession });
    expect(revoked.status).toBe(401);
    const audit = await expectStatus(
      api<{ items: AuditEntry[] }>("GET", "/v1/audit?limit=100", { token: admin }),
      200,
    );
    expect(audit.items.filter((entry) => entry.action === "user.deactivated")).toEqual([
      expect.objectContaining({ actorId: null, targetId: person.id }),
    ]);
  });

  it("accepts the person's same token again as soon as an admin reactivates it", async () => {
    const reactivated = await expectStatus(
      api<User>("POST", `/v1/users/${person.id}/reactivate`, { token: admin }),
      200,
    );
    expect(reactivated).toMatchObject({ status: "active", deactivatedAt: null });

    await expectStatus(send(personHook, "after reactivation"), 202);
  });
});

/** Waits until the consumer recorded activity of the account at `receivedAt` or later. */
function activeSince(id: string, receivedAt: string): Promise<User> {
  return eventually(`${id} active since ${receivedAt}`, async () => {
    const answer = await api<User>("GET", `/v1/users/${id}`, { token: admin });
    expect(answer.status).toBe(200);
    const recorded = Date.parse(answer.body.lastActiveAt) >= Date.parse(receivedAt);
    return recorded ? answer.body : undefined;
  });
}
