import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { TEST_BOOTSTRAP_TOKEN } from "../constants";
import { bootstrapAdmin, call, createPerson, expectStatus, login, tableCounts } from "../helpers";

describe("POST /v1/bootstrap", () => {
  it("refuses a wrong bootstrap token without creating anything", async () => {
    const before = await tableCounts();

    const problem = await expectStatus(
      call("/v1/bootstrap", {
        method: "POST",
        token: "not-the-bootstrap-token",
        body: { username: "admin", password: "correct-horse-battery" },
      }),
      401,
    );

    expect(problem.code).toBe("invalid_credentials");
    expect(await tableCounts()).toEqual(before);
  });

  it("validates the body and names each bad field", async () => {
    const problem = await expectStatus(
      call("/v1/bootstrap", {
        method: "POST",
        token: TEST_BOOTSTRAP_TOKEN,
        body: { username: "A!", password: "short" },
      }),
      400,
    );

    expect(problem.code).toBe("validation_failed");
    expect(problem.errors.map((error: { field: string }) => error.field).sort()).toEqual([
      "password",
      "username",
    ]);
  });

  it("creates the first admin once, with a session and a send+manage token", async () => {
    const admin = await bootstrapAdmin();

    expect(admin.session).toMatch(/^hgs_/);
    expect(admin.integration.secret).toMatch(/^hgi_/);
    const me = await expectStatus(call("/v1/me", { token: admin.session }), 200);
    expect(me).toMatchObject({ username: "admin", role: "admin", kind: "person" });
    const viaIntegration = await expectStatus(
      call("/v1/me", { token: admin.integration.secret }),
      200,
    );
    expect(viaIntegration.id).toBe(me.id);

    const again = await expectStatus(
      call("/v1/bootstrap", {
        method: "POST",
        token: TEST_BOOTSTRAP_TOKEN,
        body: { username: "second", password: "correct-horse-battery" },
      }),
      409,
    );
    expect(again.code).toBe("already_bootstrapped");
  });

  it("stores only hashes of secrets", async () => {
    const rows = await env.DB.prepare("select hash, prefix from tokens").all<{
      hash: string;
      prefix: string;
    }>();
    const dump = JSON.stringify(await env.DB.prepare("select * from tokens").all());

    expect(rows.results.length).toBeGreaterThan(0);
    for (const row of rows.results) expect(row.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(dump).not.toMatch(/hg[ais]_[0-9A-Za-z]{38}/);
  });
});

describe("POST /v1/sessions", () => {
  it("answers wrong username and wrong password alike", async () => {
    const admin = await bootstrapAdminOnce();
    await createPerson(admin.session, "dana");

    const wrongPassword = await expectStatus(
      call("/v1/sessions", {
        method: "POST",
        body: { username: "dana", password: "not-her-password" },
        headers: { "CF-Connecting-IP": "192.0.2.10" },
      }),
      401,
    );
    const wrongUser = await expectStatus(
      call("/v1/sessions", {
        method: "POST",
        body: { username: "nobody", password: "not-her-password" },
        headers: { "CF-Connecting-IP": "192.0.2.10" },
      }),
      401,
    );

    expect(wrongPassword.code).toBe("invalid_credentials");
    expect(wrongUser.code).toBe(wrongPassword.code);
    expect(wrongUser.detail).toBe(wrongPassword.detail);
  });

  it("issues a session that expires after SESSION_TTL_HOURS", async () => {
    await bootstrapAdminOnce();

    const body = await expectStatus(
      call("/v1/sessions", {
        method: "POST",
        body: { username: "admin", password: "correct-horse-battery" },
      }),
      200,
    );

    const hours = (Date.parse(body.expiresAt) - Date.now()) / 3_600_000;
    expect(hours).toBeGreaterThan(11.9);
    expect(hours).toBeLessThanOrEqual(12);
  });

  it("rate limits repeated attempts from one client, not from others", async () => {
    await bootstrapAdminOnce();
    const attempt = (ip: string) =>
      call("/v1/sessions", {
        method: "POST",
        body: { username: "admin", password: "wrong-password-here" },
        headers: { "CF-Connecting-IP": ip },
      });

    const statuses: number[] = [];
    for (let i = 0; i < 15; i++) statuses.push((await attempt("198.51.100.7")).status);
    const limited = await attempt("198.51.100.7");

    expect(statuses.slice(0, 10).every((status) => status === 401)).toBe(true);
    expect(limited.status).toBe(429);
    expect(limited.headers.get("Retry-After")).toBe("60");
    expect((await attempt("198.51.100.8")).status).toBe(401);
    expect(await login("admin", "correct-horse-battery").catch(() => "refused")).not.toBe(
      "refused",
    );
  });
});

let bootstrapped: Awaited<ReturnType<typeof bootstrapAdmin>> | undefined;

/** Storage is shared by the tests of one file: bootstrap once, reuse after. */
async function bootstrapAdminOnce() {
  bootstrapped ??= await bootstrapAdmin().catch(async () => {
    const session = await login("admin", "correct-horse-battery");
    return { user: { id: "", username: "admin" }, session, integration: { id: "", secret: "" } };
  });
  return bootstrapped;
}
