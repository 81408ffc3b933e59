import { describe, expect, it } from "vitest";
import { generateToken, hashToken, parseToken } from "../../src/auth/tokens";

describe("token format", () => {
  it("issues hg<k>_ tokens whose checksum verifies", async () => {
    const issued = await generateToken("integration");

    expect(issued.secret).toMatch(/^hgi_[0-9A-Za-z]{38}$/);
    expect(parseToken(issued.secret)).toBe("integration");
    expect(issued.prefix).toBe(issued.secret.slice(0, 10));
    expect(issued.hash).toBe(await hashToken(issued.secret));
  });
});
