import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { equalInConstantTime } from "../../../src/auth/constant-time";

describe("equalInConstantTime", () => {
  it("agrees with === on any two strings, of any lengths and scripts", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), fc.string({ unit: "grapheme" }), (a, b) => {
        expect(equalInConstantTime(a, b)).toBe(a === b);
        expect(equalInConstantTime(a, a)).toBe(true);
      }),
      { numRuns: 2_000 },
    );
  });

  it("refuses prefixes, extensions and strings of the same length in UTF-16 only", () => {
    expect(equalInConstantTime("", "")).toBe(true);
    expect(equalInConstantTime("", "ada")).toBe(false);
    expect(equalInConstantTime("ad", "ada")).toBe(false);
    expect(equalInConstantTime("adam", "ada")).toBe(false);
    expect(equalInConstantTime("adb", "ada")).toBe(false);
    // One UTF-16 unit each, but two bytes against one in UTF-8.
    expect(equalInConstantTime("é", "e")).toBe(false);
  });
});
