import { createExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { app } from "../../../src/app";
import { hashToken } from "../../../src/auth/tokens";
import { PROBLEMS } from "../../../src/http/problems";
import { ERROR_CODES } from "../../../src/shared/errors";
import { bootstrapAdmin, call, expectStatus, login, ORIGIN } from "../helpers";
import { fetchWith } from "../support/d1-parameter-limit";

describe("problem documents", () => {
  it("have one shape with a stable code and the request id", async () => {
    const res = await call("/v1/nothing-here");
    const body = (await res.json()) as Record<string, unknown>;

    expect(res.status).toBe(404);
    expect(res.headers.get("Content-Type")).toBe("application/problem+json");
    expect(body).toEqual({
      type: "urn:hookgate:problem:not_found",
      title: "Not found",
      status: 404,
      detail: "Nothing lives at /v1/nothing-here.",
      code: "not_found",
      requestId: res.headers.get("X-Request-Id"),
    });
  });

  it("answer 405 with Allow for a known path and the wrong method", async () => {
    const res = await call("/v1/sessions", { method: "GET" });

    expect(res.status).toBe(405);
    expect(res.headers.get("Allow")).toBe("POST");
    expect(((await res.json()) as { code: string }).code).toBe("method_not_allowed");
  });

  it("answer 400 invalid_request for malformed JSON", async () => {
    const admin = await bootstrapAdmin();
    const malformed = await expectStatus(
      Promise.resolve(
        await app.request(
          "/v1/webhooks",
          {
            method: "POST",
            headers: {
              Authorization: `Bearer ${admin.session}`,
              "Content-Type": "application/json",
            },
            body: "{not json",
          },
          env,
          createExecutionContext(),
        ),
      ),
      400,
    );

    expect(malformed.code).toBe("invalid_request");
  });

  it("answer 413 to a management body over 64 KiB, before authentication", async () => {
    const res = await call("/v1/webhooks", {
      method: "POST",
      token: "hgs_not-a-real-session",
      body: { name: "x".repeat(64 * 1024), authMethod: "bearer" },
    });
    const problem = (await res.json()) as { code: string; maxBodyBytes: number };

    expect(res.status).toBe(413);
    expect(problem).toMatchObject({ code: "payload_too_large", maxBodyBytes: 65_536 });
  });

  it("list every bad field in one answer, rules across fields and dates included", async () => {
    const session = await login("admin", "correct-horse-battery");

    const user = await expectStatus(
      call("/v1/users", {
        method: "POST",
        token: session,
        body: { username: "BAD!", kind: "service", password: "a-long-enough-password" },
      }),
      400,
    );
    const token = await expectStatus(
      call("/v1/users/usr_0000000000000000000000/tokens", {
        method: "POST",
        token: session,
        body: { name: "", expiresAt: "2001-01-01T00:00:00Z" },
      }),
      400,
    );

    const fields = (body: { errors: { field: string }[] }) => body.errors.map((e) => e.field);
    expect(fields(user)).toEqual(["username", "password"]);
    expect(fields(token)).toEqual(["name", "expiresAt"]);
  });

  it("map every code to one status, and the OpenAPI document lists every code", async () => {
    const document = await expectStatus(call("/v1/openapi.json"), 200);

    expect(Object.keys(PROBLEMS).sort()).toEqual([...ERROR_CODES].sort());
    expect(document.components.schemas.Problem.properties.code.enum.sort()).toEqual(
      [...ERROR_CODES].sort(),
    );
  });

  it("fail loudly, naming the variable, when configuration is invalid", async () => {
    // Not decimals, or days beyond what a Date can hold once turned into milliseconds.
    for (const value of ["sixty", "0x10", "1e10", "Infinity", "-1", "99999"]) {
      const res = await app.request(
        "/v1/openapi.json",
        {},
        { ...env, INACTIVITY_DAYS: value },
        createExecutionContext(),
      );
      const body = (await res.json()) as { detail: string };

      expect(res.status, value).toBe(500);
      expect(body.detail, value).toContain("INACTIVITY_DAYS");
    }
  });
});

describe("the OpenAPI document", () => {
  it("is OpenAPI 3.1 with the bearer scheme, and /docs serves the reference", async () => {
    const document = await expectStatus(call("/v1/openapi.json"), 200);
    const docs = await call("/docs");

    expect(document.openapi).toBe("3.1.0");
    expect(document.components.securitySchemes.bearer).toMatchObject({ scheme: "bearer" });
    expect(Object.keys(document.paths)).toEqual(
      expect.arrayContaining(["/bootstrap", "/sessions", "/webhooks/{id}", "/tokens/{id}/roll"]),
    );
    expect(docs.status).toBe(200);
    expect(docs.headers.get("Content-Type")).toContain("text/html");
  });

  it("documents a 4xx problem response on every operation", async () => {
    const document = await expectStatus(call("/v1/openapi.json"), 200);

    for (const [path, item] of Object.entries(document.paths as Record<string, object>)) {
      for (const [method, operation] of Object.entries(
        item as Record<string, { responses: Record<string, { content?: object }> }>,
      )) {
        const problemStatuses = Object.entries(operation.responses)
          .filter(
            ([, response]) => response.content && "application/problem+json" in response.content,
          )
          .map(([status]) => status);
        expect(problemStatuses, `${method} ${path}`).toContain("400");
      }
    }
  });

  it("documents 413 and 415 wherever a body is taken, and answers 415 so", async () => {
    const document = await expectStatus(call("/v1/openapi.json"), 200);
    const session = await login("admin", "correct-horse-battery");

    for (const [path, item] of Object.entries(document.paths as Record<string, object>)) {
      for (const [method, operation] of Object.entries(
        item as Record<string, { requestBody?: object; responses: Record<string, object> }>,
      )) {
        if (!operation.requestBody) continue;
        expect(Object.keys(operation.responses), `${method} ${path}`).toEqual(
          expect.arrayContaining(["413", "415"]),
        );
      }
    }
    const refused = await expectStatus(
      exports.default.fetch(
        new Request(`${ORIGIN}/v1/webhooks`, {
          method: "POST",
          headers: { Authorization: `Bearer ${session}`, "Content-Type": "text/plain" },
          body: '{"name":"Orders","authMethod":"bearer"}',
        }),
      ),
      415,
    );
    expect(refused.code).toBe("unsupported_media_type");
  });
});

describe("management API responses", () => {
  it("carry security headers, forbid caching and allow no cross-origin use", async () => {
    const session = await login("admin", "correct-horse-battery");
    const res = await call("/v1/me", {
      token: session,
      headers: { Origin: "https://evil.example" },
    });

    expect(res.status).toBe(200);
    expect(res.headers.get("X-Content-Type-Options")).toBe("nosniff");
    expect(res.headers.get("X-Frame-Options")).toBe("SAMEORIGIN");
    expect(res.headers.get("Strict-Transport-Security")).toContain("max-age=");
    expect(res.headers.get("Cache-Control")).toBe("no-store");
    expect(res.headers.get("Access-Control-Allow-Origin")).toBeNull();
  });
});

describe("an unexpected failure", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("is logged without the query's bound parameters", async () => {
    const session = await login("admin", "correct-horse-battery");
    const hash = await hashToken(session);
    const lines: string[] = [];
    for (const method of ["log", "warn", "error"] as const) {
      vi.spyOn(console, method).mockImplementation((...args) => {
        lines.push(args.join(" "));
      });
    }

    const res = await fetchWith(
      failingTokenLookup(),
      new Request(`${ORIGIN}/v1/me`, { headers: { Authorization: `Bearer ${session}` } }),
    );

    expect(res.status).toBe(500);
    const failure = lines.find((line) => line.includes('"request.failed"'));
    expect(failure).toContain("D1_ERROR: Network connection lost.");
    for (const line of lines) {
      expect(line).not.toContain(hash);
      expect(line).not.toContain(session);
    }
  });
});

/** The test's bindings, where the lookup of a token by its hash fails as a D1 outage would. */
function failingTokenLookup(): Env {
  const outage = () => Promise.reject(new Error("D1_ERROR: Network connection lost."));
  const db = new Proxy(env.DB, {
    get(target, property) {
      if (property === "prepare") {
        return (sql: string) => {
          const statement = target.prepare(sql);
          if (!sql.includes('"tokens"."hash" = ?')) return statement;
          return { bind: () => ({ all: outage, raw: outage, run: outage, first: outage }) };
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { ...env, DB: db };
}
