import { isUtf8 } from "node:buffer";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { adminSession } from "./first-admin";
import { call, curl } from "./http";

interface CreatedWebhook {
  webhook: { id: string; url: string; authMethod: "bearer" | "basic" };
  credentials:
    | { scheme: "bearer"; authorization: string }
    | { scheme: "basic"; authorization: string; username: string; password: string };
}

interface StoredEvent {
  id: string;
  webhookId: string;
  status: string;
  contentType: string | null;
  body: string;
  bodyEncoding: "utf8" | "base64";
  bodySize: number;
}

const MiB = 1024 * 1024;
/** MAX_PAYLOAD_BYTES's default, which the shared server runs with. */
const MAX_PAYLOAD_BYTES = 6 * MiB;
const STORED_WITHIN_MS = 20_000;

/** Bytes that no UTF-8 decoder accepts: a lone continuation, an overlong form, a surrogate. */
const NOT_UTF8 = Buffer.from([0x80, 0xc0, 0xaf, 0xed, 0xa0, 0x80, 0xff, 0xfe, 0x00]);

/** Random bytes that are certainly not UTF-8, whatever the random part happens to be. */
function binary(size: number): Buffer {
  return Buffer.concat([NOT_UTF8, randomBytes(size - NOT_UTF8.length)]);
}

/** Newline-delimited JSON of exactly `size` bytes, with multi-byte characters throughout. */
function ndjson(size: number): Buffer {
  const lines: string[] = [];
  let length = 0;
  for (let n = 0; length < size; n++) {
    const line = `${JSON.stringify({ n, city: "Zürich", note: "naïve café, 東京, 🚀" })}\n`;
    lines.push(line);
    length += Buffer.byteLength(line);
  }
  const text = Buffer.from(lines.join(""));
  // Cut at a line end before `size`, then pad with spaces to the exact length.
  const cut = text.lastIndexOf("\n", size - 1) + 1;
  return Buffer.concat([text.subarray(0, cut), Buffer.alloc(size - cut, " ")]);
}

interface Payload {
  name: string;
  contentType: string;
  bytes: Buffer;
}

const payloads: Payload[] = [
  {
    name: "JSON",
    contentType: "application/json",
    bytes: Buffer.from(
      JSON.stringify({ email: "zoë@example.com", tags: ["lead", "vip"], note: "🚀" }),
    ),
  },
  {
    name: "a form",
    contentType: "application/x-www-form-urlencoded",
    bytes: Buffer.from("name=Zo%C3%AB+M%C3%BCller&tags=lead&tags=vip&note=a%26b%3Dc%0D%0Ad"),
  },
  {
    name: "random binary",
    contentType: "application/octet-stream",
    bytes: binary(4096),
  },
  {
    name: "Latin-1 text, not UTF-8",
    contentType: "text/plain; charset=ISO-8859-1",
    bytes: Buffer.from("Grüße aus Köln, façade, señor\r\n", "latin1"),
  },
  {
    name: "300 KiB of NDJSON",
    contentType: "application/x-ndjson",
    bytes: ndjson(300 * 1024),
  },
  {
    name: "6 MiB (MAX_PAYLOAD_BYTES exactly) of random binary",
    contentType: "application/octet-stream",
    bytes: binary(MAX_PAYLOAD_BYTES),
  },
];

type Transport = "fetch" | "curl";
const schemes = ["bearer", "basic"] as const;

/** Each payload goes to both webhooks, by fetch to one and by curl to the other. */
const sends = payloads.flatMap((payload, index) =>
  schemes.map((scheme, schemeIndex) => ({
    payload,
    scheme,
    transport: ((index + schemeIndex) % 2 === 0 ? "fetch" : "curl") as Transport,
  })),
);

let session = "";
let filesDir = "";
const hooks = new Map<"bearer" | "basic", CreatedWebhook>();
/** What each webhook accepted: event id to the payload sent. */
const accepted = new Map<string, Map<string, Payload>>();

beforeAll(async () => {
  session = await adminSession();
  filesDir = mkdtempSync(join(tmpdir(), "hookgate-payloads-"));
  for (const scheme of schemes) {
    const answer = await call<CreatedWebhook>("POST", "/v1/webhooks", {
      token: session,
      json: { name: `Payload fidelity (${scheme})`, authMethod: scheme },
    });
    if (answer.status !== 201) {
      throw new Error(`Creating the ${scheme} webhook answered ${answer.status}`);
    }
    hooks.set(scheme, answer.body);
    accepted.set(answer.body.webhook.id, new Map());
  }
});

// Other files on the shared server expect to find only their own webhooks.
afterAll(async () => {
  if (filesDir !== "") rmSync(filesDir, { recursive: true, force: true });
  for (const { webhook } of hooks.values()) {
    const answer = await call("DELETE", `/v1/webhooks/${webhook.id}`, { token: session });
    expect(answer.status).toBe(204);
  }
});

function hook(scheme: "bearer" | "basic"): CreatedWebhook {
  const found = hooks.get(scheme);
  if (found === undefined) throw new Error(`No ${scheme} webhook was created`);
  return found;
}

/** Posts the bytes as a sender would; returns the status and the parsed answer. */
async function post(
  transport: Transport,
  target: CreatedWebhook,
  contentType: string,
  bytes: Buffer,
  options: { chunked?: boolean } = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  if (transport === "fetch") {
    const response = await fetch(target.webhook.url, {
      method: "POST",
      headers: { Authorization: target.credentials.authorization, "Content-Type": contentType },
      body: bytes,
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }
  const file = join(filesDir, `${randomBytes(8).toString("hex")}.bin`);
  writeFileSync(file, bytes);
  const answer = await curl([
    ...["-X", "POST", target.webhook.url],
    // curl's own way of sending basic credentials, rather than a pasted header.
    ...(target.credentials.scheme === "basic"
      ? ["-u", `${target.credentials.username}:${target.credentials.password}`]
      : ["-H", `Authorization: ${target.credentials.authorization}`]),
    ...["-H", `Content-Type: ${contentType}`],
    ...(options.chunked ? ["-H", "Transfer-Encoding: chunked"] : []),
    ...["--data-binary", `@${file}`],
  ]);
  return { status: answer.status, body: JSON.parse(answer.body) as Record<string, unknown> };
}

/** The stored body as `GET /v1/events/{id}/body` serves it, once the consumer stored it. */
async function storedBody(eventId: string): Promise<{ contentType: string | null; bytes: Buffer }> {
  const deadline = Date.now() + STORED_WITHIN_MS;
  for (;;) {
    const response = await fetch(new URL(`/v1/events/${eventId}/body`, inject("baseUrl")), {
      headers: { Authorization: `Bearer ${session}` },
    });
    const bytes = Buffer.from(await response.arrayBuffer());
    if (response.status === 200) {
      return { contentType: response.headers.get("Content-Type"), bytes };
    }
    if (response.status !== 404 || Date.now() > deadline) {
      throw new Error(`GET /v1/events/${eventId}/body answered ${response.status}: ${bytes}`);
    }
    await sleep(250);
  }
}

/** Every stored event of a webhook, following `nextCursor` to the end. */
async function listAll(webhookId: string): Promise<StoredEvent[]> {
  const events: StoredEvent[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`;
    const answer = await call<{ items: StoredEvent[]; nextCursor: string | null }>(
      "GET",
      `/v1/webhooks/${webhookId}/events?limit=100${query}`,
      { token: session },
    );
    expect(answer.status).toBe(200);
    events.push(...answer.body.items);
    cursor = answer.body.nextCursor;
  } while (cursor !== null);
  return events;
}

describe("payloads are accepted and served back byte for byte", () => {
  describe.concurrent("each payload on each webhook", () => {
    for (const { payload, scheme, transport } of sends) {
      it(`${payload.name} to the ${scheme} webhook by ${transport}`, async ({ expect }) => {
        const target = hook(scheme);

        const answer = await post(transport, target, payload.contentType, payload.bytes);

        expect(answer.status).toBe(202);
        expect(answer.body).toEqual({
          id: expect.stringMatching(/^evt_/),
          webhookId: target.webhook.id,
          receivedAt: expect.any(String),
        });
        const eventId = answer.body.id as string;
        accepted.get(target.webhook.id)?.set(eventId, payload);

        const stored = await storedBody(eventId);
        expect(stored.contentType).toBe(payload.contentType);
        expect(stored.bytes.byteLength).toBe(payload.bytes.byteLength);
        expect(stored.bytes.equals(payload.bytes)).toBe(true);
      });
    }

    it.for(schemes)(
      "refuses one byte over MAX_PAYLOAD_BYTES on the %s webhook, by fetch and by curl",
      async (scheme, { expect }) => {
        const target = hook(scheme);
        const tooLarge = Buffer.alloc(MAX_PAYLOAD_BYTES + 1, 0x61);

        // The server's limit is the size of the largest payload above, which it accepted.
        for (const transport of ["fetch", "curl"] as const) {
          const answer = await post(transport, target, "application/octet-stream", tooLarge);
          expect(answer.status).toBe(413);
          expect(answer.body).toMatchObject({
            status: 413,
            code: "payload_too_large",
            maxPayloadBytes: MAX_PAYLOAD_BYTES,
          });
        }
      },
    );

    it("refuses one byte over MAX_PAYLOAD_BYTES sent chunked, without a Content-Length", async ({
      expect,
    }) => {
      const tooLarge = Buffer.alloc(MAX_PAYLOAD_BYTES + 1, 0x62);

      const answer = await post("curl", hook("bearer"), "text/plain", tooLarge, { chunked: true });

      expect(answer.status).toBe(413);
      expect(answer.body).toMatchObject({ status: 413, code: "payload_too_large" });
    });
  });

  it.for(schemes)(
    "lists exactly the accepted events of the %s webhook, each with its exact body",
    async (scheme) => {
      const webhookId = hook(scheme).webhook.id;
      const expected = accepted.get(webhookId) ?? new Map<string, Payload>();
      // Every payload was accepted (the tests above), and nothing refused was stored.
      expect(expected.size).toBe(payloads.length);

      const events = await listAll(webhookId);

      expect(events.map((event) => event.id).sort()).toEqual([...expected.keys()].sort());
      for (const event of events) {
        const payload = expected.get(event.id);
        if (payload === undefined) throw new Error(`Unexpected event ${event.id}`);
        expect(event).toMatchObject({
          webhookId,
          status: "stored",
          contentType: payload.contentType,
          bodySize: payload.bytes.byteLength,
          bodyEncoding: isUtf8(payload.bytes) ? "utf8" : "base64",
        });
        const decoded = Buffer.from(event.body, event.bodyEncoding === "utf8" ? "utf8" : "base64");
        expect(decoded.equals(payload.bytes), `the listed body of ${payload.name}`).toBe(true);
      }
    },
  );
});
