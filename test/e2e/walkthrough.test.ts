import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, inject, it } from "vitest";
import { ADMIN_PASSWORD, firstBootstrap } from "./first-admin";
import { call } from "./http";

interface Bootstrapped {
  user: { id: string; username: string };
  sessionToken: string;
  integrationToken: { secret: string; scopes: string[] };
}

interface Webhook {
  id: string;
  name: string;
  url: string;
  credentials: { kind: "app" | "integration" }[];
  health: { status: string; reasons: string[] };
}

interface CreatedWebhook {
  webhook: Webhook;
  token: { id: string; secret: string };
  credentials: { scheme: "bearer" | "basic"; authorization: string };
}

interface StoredEvent {
  id: string;
  webhookId: string;
  contentType: string;
  body: string;
  bodyEncoding: string;
}

const baseUrl = inject("baseUrl");

// The server can be bootstrapped only once, so the blocks below run in order and share
// the admin's session and the webhooks made along the way. Other files on this server
// leave no webhooks behind, so the lists below hold exactly the walk-through's own.
let session = "";
let bearerHook: CreatedWebhook | undefined;

describe("walk-through: first admin, webhooks, documentation", () => {
  it("bootstraps the first admin with the curl command `npm start` prints", async () => {
    // Made by whichever file on this server asked first; the answer is the same.
    const answer = await firstBootstrap();

    expect(answer.status).toBe(201);
    const body = JSON.parse(answer.body) as Bootstrapped;
    expect(body.user).toMatchObject({ username: "admin", role: "admin", status: "active" });
    expect(body.sessionToken).toMatch(/^hgs_/);
    expect(body.integrationToken.secret).toMatch(/^hgi_/);
    expect(body.integrationToken.scopes).toEqual(["send", "manage"]);
    session = body.sessionToken;
  });

  it("refuses a second bootstrap with 409", async () => {
    const answer = await call("POST", "/v1/bootstrap", {
      token: inject("bootstrapToken"),
      json: { username: "second-admin", password: ADMIN_PASSWORD },
    });

    expect(answer.status).toBe(409);
    expect(answer.headers.get("Content-Type")).toContain("application/problem+json");
    expect(answer.body).toMatchObject({ status: 409, code: "already_bootstrapped" });
  });

  it("answers GET /v1/me for the session token", async () => {
    const answer = await call("GET", "/v1/me", { token: session });

    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ username: "admin", role: "admin" });
  });

  it("creates a webhook with bearer credentials ready to paste", async () => {
    const answer = await call<CreatedWebhook>("POST", "/v1/webhooks", {
      token: session,
      json: { name: "CRM contacts", authMethod: "bearer" },
    });

    expect(answer.status).toBe(201);
    const { webhook, token, credentials } = answer.body;
    expect(webhook).toMatchObject({ name: "CRM contacts", authMethod: "bearer", enabled: true });
    expect(webhook.id).toMatch(/^wh_[0-9A-Za-z]{16,}$/);
    expect(webhook.url).toBe(`${baseUrl}/hooks/${webhook.id}`);
    expect(token).toMatchObject({ kind: "app", webhookId: webhook.id });
    expect(token.secret).toMatch(/^hga_/);
    expect(credentials).toEqual({ scheme: "bearer", authorization: `Bearer ${token.secret}` });
    bearerHook = answer.body;
  });

  it("creates a webhook with basic credentials ready to paste", async () => {
    const answer = await call<CreatedWebhook>("POST", "/v1/webhooks", {
      token: session,
      json: { name: "Shop orders", authMethod: "basic" },
    });

    expect(answer.status).toBe(201);
    const { token, credentials } = answer.body;
    const encoded = Buffer.from(`admin:${token.secret}`).toString("base64");
    expect(credentials).toEqual({
      scheme: "basic",
      username: "admin",
      password: token.secret,
      authorization: `Basic ${encoded}`,
    });
  });

  it("lists both webhooks with their credentials and health", async () => {
    const answer = await call<{ items: Webhook[]; nextCursor: string | null }>(
      "GET",
      "/v1/webhooks",
      { token: session },
    );

    expect(answer.status).toBe(200);
    expect(answer.body.items.map((webhook) => webhook.name).sort()).toEqual([
      "CRM contacts",
      "Shop orders",
    ]);
    expect(answer.body.nextCursor).toBeNull();
    // Each opens with its own app token and with the admin's integration token, both the
    // admin's.
    for (const webhook of answer.body.items) {
      expect(webhook.credentials.map((credential) => credential.kind).sort()).toEqual([
        "app",
        "integration",
      ]);
      // The admin is a person, and only persons hold its credentials.
      expect(webhook.health.status).toBe("at_risk");
      expect(webhook.health.reasons.length).toBeGreaterThan(0);
    }
  });

  it("serves the OpenAPI 3.1 document", async () => {
    const answer = await call<{ openapi: string; paths: Record<string, unknown> }>(
      "GET",
      "/v1/openapi.json",
    );

    expect(answer.status).toBe(200);
    expect(answer.body.openapi).toMatch(/^3\.1\./);
    expect(Object.keys(answer.body.paths)).toEqual(
      expect.arrayContaining(["/bootstrap", "/me", "/webhooks"]),
    );
  });

  it("serves the interactive API reference at /docs", async () => {
    const answer = await call<string>("GET", "/docs");

    expect(answer.status).toBe(200);
    expect(answer.headers.get("Content-Type")).toContain("text/html");
    expect(answer.body).toContain("/v1/openapi.json");
  });
});

describe("sending a payload", () => {
  it("accepts JSON with the webhook's credentials and stores the exact body", async () => {
    if (bearerHook === undefined) throw new Error("The walk-through above made no webhook");
    const { webhook, credentials } = bearerHook;
    const payload = JSON.stringify({ email: "ada@example.com", tags: ["lead"], score: 4.5 });

    const response = await fetch(webhook.url, {
      method: "POST",
      headers: { Authorization: credentials.authorization, "Content-Type": "application/json" },
      body: payload,
    });

    expect(response.status).toBe(202);
    const accepted = (await response.json()) as { id: string };
    expect(accepted).toEqual({
      id: expect.stringMatching(/^evt_/),
      webhookId: webhook.id,
      receivedAt: expect.any(String),
    });
    const stored = await waitForEvent(webhook.id, accepted.id);
    expect(stored).toMatchObject({
      webhookId: webhook.id,
      contentType: "application/json",
      body: payload,
      bodyEncoding: "utf8",
    });
  });
});

/** The queue consumer stores events asynchronously: polls the events list until it has this one. */
async function waitForEvent(webhookId: string, eventId: string): Promise<StoredEvent> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const answer = await call<{ items: StoredEvent[] }>("GET", `/v1/webhooks/${webhookId}/events`, {
      token: session,
    });
    const found = answer.status === 200 && answer.body.items.find((event) => event.id === eventId);
    if (found) return found;
    if (Date.now() > deadline) {
      throw new Error(`Event ${eventId} not listed after 15 s (last status ${answer.status})`);
    }
    await sleep(250);
  }
}
