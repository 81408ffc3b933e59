import { describe, expect, it } from "vitest";
import { parseAuthorization } from "../../../src/http/authorization";

const basic = (text: string) =>
  `Basic ${btoa(String.fromCharCode(...new TextEncoder().encode(text)))}`;

describe("parseAuthorization", () => {
  it("treats an absent or blank header as missing", () => {
    expect(parseAuthorization(undefined)).toEqual({ kind: "missing" });
    expect(parseAuthorization("   ")).toEqual({ kind: "missing" });
  });

  it("reads Bearer tokens with any scheme capitalisation", () => {
    expect(parseAuthorization("bearer abc.DEF-123_~+/=")).toEqual({
      kind: "credential",
      credential: { scheme: "bearer", token: "abc.DEF-123_~+/=" },
    });
  });

  it("splits Basic credentials at the first colon and decodes UTF-8", () => {
    expect(parseAuthorization(basic("zoë:pa:ss:word"))).toEqual({
      kind: "credential",
      credential: { scheme: "basic", username: "zoë", password: "pa:ss:word" },
    });
    expect(parseAuthorization(basic(":only-password"))).toMatchObject({
      credential: { username: "", password: "only-password" },
    });
  });

  it.each([
    ["Bearer", "a scheme without credentials"],
    ["Bearer a b", "two values"],
    ["Bearer tok,en", "a character outside b64token"],
    ["Bearer =abc", "padding first"],
    ["Digest abc", "an unsupported scheme"],
    ["Basic !!!!", "invalid base64"],
    ["Basic YWJj", "no colon"],
    [`Basic ${btoa("\xff\xfe:x")}`, "invalid UTF-8"],
    [`Bearer ${"a".repeat(5000)}`, "a huge value"],
  ])("calls %j malformed (%s)", (header) => {
    expect(parseAuthorization(header).kind).toBe("malformed");
  });
});
