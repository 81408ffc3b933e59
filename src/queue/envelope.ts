import { z } from "zod";
import { base64ToBytes, bytesToBase64 } from "../shared/encoding";

/** One accepted payload on its way from the ingress to storage. */
export const EventEnvelopeSchema = z.object({
  version: z.literal(1),
  eventId: z.string().startsWith("evt_"),
  webhookId: z.string().startsWith("wh_"),
  tokenId: z.string().startsWith("tok_"),
  accountId: z.string().startsWith("usr_"),
  receivedAt: z.number().int(),
  idempotencyKey: z.string().nullable(),
  contentType: z.string().nullable(),
  /** Text when the bytes are valid UTF-8, base64 otherwise; null when they wait in R2. */
  body: z.string().nullable(),
  bodyEncoding: z.enum(["utf8", "base64"]),
  /** The R2 key of a body too large for a queue message. */
  bodyKey: z.string().nullable(),
  bodySize: z.number().int().min(0),
});

export type EventEnvelope = z.infer<typeof EventEnvelopeSchema>;

/**
 * A queue message holds at most 128 KB (1 KB = 1000 bytes), about 100 bytes of which are
 * the platform's; the budget keeps 1,000 bytes back for them with room to spare. Envelopes
 * above it carry an R2 key instead of the body.
 */
export const MAX_ENVELOPE_BYTES = 127_000;

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Encodes bytes for JSON without losing any: as text when they are valid UTF-8 (a BOM
 * kept), otherwise as base64. Either way `decodeBody` gives back the same bytes.
 */
export function encodeBody(bytes: Uint8Array): { body: string; bodyEncoding: "utf8" | "base64" } {
  try {
    return { body: strictUtf8.decode(bytes), bodyEncoding: "utf8" };
  } catch {
    return { body: bytesToBase64(bytes), bodyEncoding: "base64" };
  }
}

/** Encodes bytes already known to suit `encoding`, as `encodeBody` chose it for them. */
export function encodeBodyAs(bytes: Uint8Array, encoding: "utf8" | "base64"): string {
  return encoding === "utf8" ? strictUtf8.decode(bytes) : bytesToBase64(bytes);
}

export function decodeBody(body: string, encoding: "utf8" | "base64"): Uint8Array<ArrayBuffer> {
  if (encoding === "base64") return base64ToBytes(body);
  return new Uint8Array(new TextEncoder().encode(body));
}

export function envelopeBytes(envelope: EventEnvelope): number {
  return new TextEncoder().encode(JSON.stringify(envelope)).byteLength;
}

/** Field names, punctuation, numbers and literals of an envelope, well above their size. */
const ENVELOPE_FRAME_BYTES = 512;

/**
 * Whether the envelope's JSON exceeds `MAX_ENVELOPE_BYTES`. JSON writes no UTF-16 unit
 * as more than six bytes (`\u001f`), so an envelope whose strings are short enough is
 * known to fit without serialising it, which spares the common small webhook a copy.
 */
export function exceedsMessageBudget(envelope: EventEnvelope): boolean {
  const units =
    envelope.eventId.length +
    envelope.webhookId.length +
    envelope.tokenId.length +
    envelope.accountId.length +
    (envelope.idempotencyKey?.length ?? 0) +
    (envelope.contentType?.length ?? 0) +
    (envelope.body?.length ?? 0) +
    (envelope.bodyKey?.length ?? 0);
  if (6 * units + ENVELOPE_FRAME_BYTES <= MAX_ENVELOPE_BYTES) return false;
  return envelopeBytes(envelope) > MAX_ENVELOPE_BYTES;
}

/** Where a large body lives in R2: grouped by webhook, so a webhook's bodies can be listed. */
export function payloadKey(webhookId: string, eventId: string): string {
  return `${payloadPrefix(webhookId)}${eventId}`;
}

export function payloadPrefix(webhookId: string): string {
  return `payloads/${webhookId}/`;
}
