import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type EventEnvelope,
  envelopeBytes,
  exceedsMessageBudget,
  MAX_ENVELOPE_BYTES,
} from "../../../src/queue/envelope";

function envelope(fields: Partial<EventEnvelope>): EventEnvelope {
  return {
    version: 1,
    eventId: "evt_0123456789abcdefghijkl",
    webhookId: "wh_0123456789abcdefghijkl",
    tokenId: "tok_0123456789abcdefghijkl",
    accountId: "usr_0123456789abcdefghijkl",
    receivedAt: Date.now(),
    idempotencyKey: null,
    contentType: null,
    body: "",
    bodyEncoding: "utf8",
    bodyKey: null,
    bodySize: 0,
    ...fields,
  };
}

/** Characters JSON writes as the most bytes: controls, quotes, lone surrogates, emoji. */
const costly = fc.constantFrom("\u0001", '"', "\\", "\ud800", "😀", "é", "a");

describe("the message budget", () => {
  it("agrees with the serialised size, however costly the characters", () => {
    // Lengths around the point where the quick bound stops answering on its own.
    const threshold = Math.floor((MAX_ENVELOPE_BYTES - 512) / 6);
    const body = fc
      .tuple(costly, fc.integer({ min: threshold - 50, max: threshold + 50 }), fc.string())
      .map(
        ([character, units, tail]) => character.repeat(Math.ceil(units / character.length)) + tail,
      );
    const contentType = fc.option(fc.string({ maxLength: 300, unit: "binary" }));
    const idempotencyKey = fc.option(fc.string({ minLength: 1, maxLength: 255 }));

    fc.assert(
      fc.property(body, contentType, idempotencyKey, (text, type, key) => {
        const candidate = envelope({ body: text, contentType: type, idempotencyKey: key });
        expect(exceedsMessageBudget(candidate)).toBe(envelopeBytes(candidate) > MAX_ENVELOPE_BYTES);
      }),
      { numRuns: 300 },
    );
  });

  it("decides the worst-case text on each side of the limit", () => {
    const fits = envelope({ body: "\u0001".repeat(21_000) });
    const overflows = envelope({ body: "\u0001".repeat(21_200) });

    expect(envelopeBytes(fits)).toBeLessThanOrEqual(MAX_ENVELOPE_BYTES);
    expect(exceedsMessageBudget(fits)).toBe(false);
    expect(exceedsMessageBudget(overflows)).toBe(true);
  });
});
