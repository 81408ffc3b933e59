import { describe, expect, it } from "vitest";
import { generateToken, hashToken, parseToken } from "../../../src/auth/tokens";

describe("token format", () => {
  it("issues hg<k>_ tokens whose checksum verifies", async () => {
    const issued = await generateToken("integration");

    expect(issued.secret).toMatch(/^hgi_[0-9A-Za-z]{38}$/);
    expect(parseToken(issued.secret)).toBe("integration");
    expect(issued.prefix).toBe(issued.secret.slice(0, 10));
    expect(issued.hash).toBe(await hashToken(issued.secret));
  });

  it("stores the SHA-256 of the whole secret, as hex", async () => {
    const issued = await generateToken("app");
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(issued.secret));
    const hex = [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0"));

    expect(issued.hash).toBe(hex.join(""));
  });

  it("marks each kind with its letter", async () => {
    expect((await generateToken("app")).secret.startsWith("hga_")).toBe(true);
    expect((await generateToken("session")).secret.startsWith("hgs_")).toBe(true);
  });

  it("never repeats a secret", async () => {
    const secrets = new Set<string>();
    for (let i = 0; i < 1000; i++) secrets.add((await generateToken("app")).secret);

    expect(secrets.size).toBe(1000);
  });

  it("rejects any single-character change through the checksum", async () => {
    const { secret } = await generateToken("app");

    for (let i = 4; i < secret.length; i++) {
      const replacement = secret[i] === "A" ? "B" : "A";
      const altered = secret.slice(0, i) + replacement + secret.slice(i + 1);
      expect(parseToken(altered), `position ${i}`).toBeNull();
    }
  });

  it("rejects wrong kinds, lengths and alphabets", async () => {
    const { secret } = await generateToken("app");

    expect(parseToken(`hgx${secret.slice(3)}`)).toBeNull();
    expect(parseToken(secret.slice(0, -1))).toBeNull();
    expect(parseToken(`${secret}0`)).toBeNull();
    expect(parseToken(`${secret.slice(0, 10)}-${secret.slice(11)}`)).toBeNull();
    expect(parseToken("")).toBeNull();
  });
});
