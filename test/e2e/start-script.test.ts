import { describe, expect, inject, it } from "vitest";
import { bootstrapHint } from "../../scripts/bootstrap-hint.mjs";
import { firstBootstrap } from "./first-admin";
import { pasteCurl } from "./http";

describe("the bootstrap command npm start prints", () => {
  it("sets a password made for it, never a placeholder, in one line to paste", () => {
    const options = { baseUrl: "http://localhost:8787", bootstrapToken: "the-bootstrap-secret" };

    const first = bootstrapHint(options);
    const second = bootstrapHint(options);

    expect(first.password).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(second.password).not.toBe(first.password);
    expect(first.command).not.toContain("\n");
    expect(first.command).toContain(`'{"username":"admin","password":"${first.password}"}'`);
    expect(first.text).toContain(`\n  ${first.command}\n`);
    expect(first.text).not.toMatch(/<[^>]*>/);
  });

  it("is accepted as it is printed: pasted once an admin exists, it gets the 409", async () => {
    expect((await firstBootstrap()).status).toBe(201);
    const { command } = bootstrapHint({
      baseUrl: inject("baseUrl"),
      bootstrapToken: inject("bootstrapToken"),
    });

    const answer = await pasteCurl(command);

    // Not 400 nor 401: the secret and the generated password got past every check.
    expect(answer.status).toBe(409);
    expect(JSON.parse(answer.body)).toMatchObject({ code: "already_bootstrapped" });
  });
});
