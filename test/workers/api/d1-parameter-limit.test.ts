import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { bootstrapAdmin, ORIGIN } from "../helpers";
import { fetchWith, parameterLimitedEnv } from "../support/d1-parameter-limit";

const PAGE = 100;

let admin: Awaited<ReturnType<typeof bootstrapAdmin>>;

beforeAll(async () => {
  admin = await bootstrapAdmin();
  await seedAccountsWithWebhooks(PAGE);
});

/**
 * Accounts, each owning a webhook with a live app token, written straight to D1. Every
 * other account is a person, which puts its webhook at risk (only persons hold a
 * credential for it: its app token's owner and the admin).
 */
async function seedAccountsWithWebhooks(total: number) {
  const now = Date.now();
  const statements = [];
  for (let i = 0; i < total; i++) {
    const user = `usr_limit${i}`;
    const webhook = `wh_limit${String(i).padStart(16, "0")}`;
    statements.push(
      env.DB.prepare(
        `insert into users (id, username, display_name, kind, role, status, last_active_at,
                            created_at)
         values (?, ?, ?, ?, 'member', 'active', ?, ?)`,
      ).bind(user, `limit-${i}`, `Limit ${i}`, i % 2 === 0 ? "person" : "service", now, now + i),
      env.DB.prepare(
        `insert into webhooks (id, name, auth_method, owner_id, enabled, created_at)
         values (?, ?, 'bearer', ?, 1, ?)`,
      ).bind(webhook, `Hook ${i}`, user, now + i),
      env.DB.prepare(
        `insert into tokens (id, kind, hash, prefix, scopes, user_id, webhook_id, created_at)
         values (?, 'app', ?, 'hga_xxxxxx', 'send', ?, ?, ?)`,
      ).bind(`tok_limit${i}`, `hash-${i}`, user, webhook, now),
    );
  }
  await env.DB.batch(statements);
}

async function getPage(path: string) {
  const response = await fetchWith(
    parameterLimitedEnv(),
    new Request(`${ORIGIN}${path}`, { headers: { Authorization: `Bearer ${admin.session}` } }),
  );
  const body = await response.text();
  expect(response.status, body).toBe(200);
  return JSON.parse(body) as { items: Record<string, unknown>[] };
}

describe("a full page of 100 records", () => {
  it("lists webhooks with their credentials within D1's parameter cap", async () => {
    const page = await getPage(`/v1/webhooks?limit=${PAGE}`);

    expect(page.items).toHaveLength(PAGE);
    for (const [i, item] of page.items.entries()) {
      expect(item.credentials).toContainEqual(
        expect.objectContaining({ tokenId: `tok_limit${i}`, kind: "app" }),
      );
    }
  });

  it("lists accounts with their live token counts within D1's parameter cap", async () => {
    const page = await getPage(`/v1/users?limit=${PAGE}`);

    expect(page.items).toHaveLength(PAGE);
    // The admin's bootstrap integration token, and one app token on each other account.
    expect(page.items.every((user) => user.activeTokens === 1)).toBe(true);
  });

  it("reports webhooks at risk within D1's parameter cap", async () => {
    const page = await getPage(`/v1/reports/at-risk?limit=${PAGE}`);

    const atRisk = page.items.map((webhook) => webhook.name);
    const ofPersons = Array.from({ length: PAGE / 2 }, (_, i) => `Hook ${2 * i}`);
    expect(atRisk).toEqual(ofPersons);
  });
});
