import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { generateToken, parseToken } from "../../../src/auth/tokens";
import { parseAuthorization } from "../../../src/http/authorization";
import { newTimeOrderedId, timeOrderedIdPrefix } from "../../../src/shared/ids";

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

function basicHeader(username: string, password: string) {
  const bytes = new TextEncoder().encode(`${username}:${password}`);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return `Basic ${btoa(binary)}`;
}

describe("parseToken", () => {
  it("never throws and accepts nothing but issued tokens", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 200 }), (candidate) => {
        expect(parseToken(candidate)).toBeNull();
      }),
      { numRuns: 2_000 },
    );
  });

  it("rejects every substitution of one character, checksum included", async () => {
    const { secret } = await generateToken("integration");

    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: secret.length - 1 }),
        fc.constantFrom(...BASE62, "_", "-", "é"),
        (position, replacement) => {
          fc.pre(secret[position] !== replacement);
          const altered = secret.slice(0, position) + replacement + secret.slice(position + 1);
          expect(parseToken(altered)).toBeNull();
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it("rejects well-shaped bodies whose checksum was not computed for them", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("a", "i", "s"),
        fc.string({ unit: fc.constantFrom(...BASE62), minLength: 38, maxLength: 38 }),
        (kind, body) => {
          expect(parseToken(`hg${kind}_${body}`)).toBeNull();
        },
      ),
      { numRuns: 2_000 },
    );
  });
});

describe("parseAuthorization", () => {
  it("never throws on any header value", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: "binary", maxLength: 300 }),
          fc.string({ maxLength: 300 }).map((value) => `Bearer ${value}`),
          fc.string({ maxLength: 300 }).map((value) => `Basic ${value}`),
          fc.string({ unit: "binary", maxLength: 10_000 }),
        ),
        (header) => {
          const parsed = parseAuthorization(header);
          expect(["missing", "malformed", "credential"]).toContain(parsed.kind);
        },
      ),
      { numRuns: 3_000 },
    );
  });

  it("gives back any Basic username and password, colons and unicode included", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "grapheme", maxLength: 40 }).filter((name) => !name.includes(":")),
        fc.string({ unit: "grapheme", maxLength: 80 }),
        (username, password) => {
          const parsed = parseAuthorization(basicHeader(username, password));
          expect(parsed).toEqual({
            kind: "credential",
            credential: { scheme: "basic", username, password },
          });
        },
      ),
      { numRuns: 1_000 },
    );
  });

  it("reads a Bearer token whatever the scheme's case and the spaces around it", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("Bearer", "bearer", "BEARER", "bEaReR"),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 0, max: 3 }),
        fc.string({ unit: fc.constantFrom(...BASE62, "-", ".", "_", "~", "+", "/"), minLength: 1 }),
        (scheme, gap, trailing, token) => {
          const header = `${scheme}${" ".repeat(gap)}${token}${" ".repeat(trailing)}`;
          expect(parseAuthorization(header)).toEqual({
            kind: "credential",
            credential: { scheme: "bearer", token },
          });
        },
      ),
    );
  });

  it("calls anything longer than 4096 characters malformed", () => {
    fc.assert(
      fc.property(fc.integer({ min: 4097, max: 100_000 }), (length) => {
        expect(parseAuthorization(`Bearer ${"a".repeat(length)}`).kind).toBe("malformed");
      }),
      { numRuns: 50 },
    );
  });
});

describe("newTimeOrderedId", () => {
  const ID = /^(evt|aud)_[0-9A-Za-z]{22}$/;
  // From 1970 to the year 8900, the range its 8 time digits cover.
  const instant = fc.integer({ min: 0, max: 62 ** 8 - 1 }).map((ms) => new Date(ms));

  it("keeps the shape of every other id", () => {
    fc.assert(
      fc.property(instant, fc.constantFrom("evt" as const, "aud" as const), (at, kind) => {
        expect(newTimeOrderedId(kind, at)).toMatch(ID);
        expect(newTimeOrderedId(kind, at).startsWith(timeOrderedIdPrefix(kind, at))).toBe(true);
      }),
    );
  });

  it("sorts ids made at a later millisecond after earlier ones, bytewise as SQLite does", () => {
    fc.assert(
      fc.property(instant, instant, (a, b) => {
        fc.pre(a.getTime() !== b.getTime());
        const [earlier, later] = a < b ? [a, b] : [b, a];
        expect(newTimeOrderedId("evt", earlier) < newTimeOrderedId("evt", later)).toBe(true);
      }),
      { numRuns: 2_000 },
    );
  });

  it("differs between ids made in the same millisecond", () => {
    const at = new Date();
    const ids = new Set(Array.from({ length: 1_000 }, () => newTimeOrderedId("evt", at)));
    expect(ids.size).toBe(1_000);
  });
});
