import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../http/app-env";
import { HttpProblem, problem } from "../http/problems";
import {
  type EventEnvelope,
  encodeBody,
  exceedsMessageBudget,
  payloadKey,
} from "../queue/envelope";
import { sha256Hex } from "../shared/encoding";
import { newTimeOrderedId } from "../shared/ids";
import { errorSummary, log } from "../shared/log";
import { authenticateSender, type Sender } from "./authenticate-sender";

/** How long an `Idempotency-Key` maps to its first event. */
const IDEMPOTENCY_TTL_SECONDS = 86_400;
/** Printable ASCII, 1 to 255 characters. */
const IDEMPOTENCY_KEY = /^[\x20-\x7e]{1,255}$/;
const RETRY_AFTER_SECONDS = "5";

interface Receipt {
  id: string;
  webhookId: string;
  receivedAt: string;
}

/** Authenticates the sender; a failing store answers 503, never a misleading 401. */
const authenticate = createMiddleware<AppEnv>(async (c, next) => {
  const webhookId = c.req.param("webhookId") as string;
  try {
    c.set("sender", await authenticateSender(c, webhookId));
  } catch (error) {
    if (error instanceof HttpProblem) {
      logDecision(c.get("requestId"), webhookId, error.code);
      throw error;
    }
    log("error", "ingress.auth_lookup_failed", { webhookId, error: errorSummary(error) });
    throw new HttpProblem("service_unavailable", "Authentication is unavailable; retry later.", {
      headers: { "Retry-After": RETRY_AFTER_SECONDS },
    });
  }
  await next();
});

/** Refuses bodies above `MAX_PAYLOAD_BYTES`, from `Content-Length` before reading them. */
const limitBody = createMiddleware<AppEnv>((c, next) => {
  const maxSize = c.get("services").config.maxPayloadBytes;
  return bodyLimit({
    maxSize,
    onError: (c) => {
      logDecision(c.get("requestId"), c.get("sender").webhookId, "payload_too_large");
      return problem(c, "payload_too_large", `The body exceeds the limit of ${maxSize} bytes.`, {
        extensions: { maxPayloadBytes: maxSize },
      });
    },
  })(c, next);
});

export const ingress = new Hono<AppEnv>();

ingress.post("/hooks/:webhookId", authenticate, limitBody, async (c) => {
  const sender = c.get("sender");
  const idempotencyKey = c.req.header("Idempotency-Key") ?? null;
  if (idempotencyKey !== null && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
    logDecision(c.get("requestId"), sender.webhookId, "invalid_request");
    throw new HttpProblem(
      "invalid_request",
      "Idempotency-Key must be 1 to 255 printable ASCII characters.",
    );
  }

  const receipt = await accept(c.env, sender, {
    idempotencyKey,
    contentType: c.req.header("Content-Type") ?? null,
    bytes: new Uint8Array(await c.req.arrayBuffer()),
    receivedAt: c.get("services").now,
  });

  logDecision(c.get("requestId"), sender.webhookId, "accepted", sender.facts.tokenId);
  return c.json(receipt, 202);
});

interface Payload {
  idempotencyKey: string | null;
  contentType: string | null;
  bytes: Uint8Array;
  receivedAt: Date;
}

/**
 * Puts the payload on the queue, its body in R2 first when the message would be too
 * large. Answers only once every write succeeded: a 202 always means enqueued.
 */
async function accept(env: Env, sender: Sender, payload: Payload): Promise<Receipt> {
  const idempotencySlot = payload.idempotencyKey
    ? `idempotency:${sender.webhookId}:${await sha256Hex(payload.idempotencyKey)}`
    : null;
  if (idempotencySlot) {
    const earlier = await recallReceipt(env, idempotencySlot);
    if (earlier) return earlier;
  }

  const envelope: EventEnvelope = {
    version: 1,
    eventId: newTimeOrderedId("evt", payload.receivedAt),
    webhookId: sender.webhookId,
    tokenId: sender.facts.tokenId,
    accountId: sender.facts.userId,
    receivedAt: payload.receivedAt.getTime(),
    idempotencyKey: payload.idempotencyKey,
    contentType: payload.contentType,
    ...encodeBody(payload.bytes),
    bodyKey: null,
    bodySize: payload.bytes.byteLength,
  };
  try {
    if (exceedsMessageBudget(envelope)) {
      envelope.bodyKey = payloadKey(envelope.webhookId, envelope.eventId);
      await env.PAYLOADS.put(envelope.bodyKey, payload.bytes, {
        httpMetadata: payload.contentType ? { contentType: payload.contentType } : undefined,
      });
      envelope.body = null;
    }
    await env.EVENTS.send(envelope, { contentType: "json" });
  } catch (error) {
    log("error", "ingress.enqueue_failed", {
      webhookId: envelope.webhookId,
      eventId: envelope.eventId,
      error: errorSummary(error),
    });
    // A body already in R2 belongs to no event now; the sender will send it again.
    if (envelope.bodyKey) await env.PAYLOADS.delete(envelope.bodyKey).catch(() => undefined);
    throw new HttpProblem("service_unavailable", "The payload could not be stored; retry later.", {
      headers: { "Retry-After": RETRY_AFTER_SECONDS },
    });
  }

  const receipt = {
    id: envelope.eventId,
    webhookId: envelope.webhookId,
    receivedAt: payload.receivedAt.toISOString(),
  };
  if (idempotencySlot) await rememberReceipt(env, idempotencySlot, receipt);
  return receipt;
}

/** A KV failure counts as no earlier receipt: the consumer still stores the event once. */
async function recallReceipt(env: Env, slot: string): Promise<Receipt | null> {
  try {
    return await env.AUTH_CACHE.get<Receipt>(slot, "json");
  } catch (error) {
    log("warn", "ingress.idempotency_read_failed", { error: errorSummary(error) });
    return null;
  }
}

/**
 * KV is eventually consistent, so a retry that reaches another location may miss this
 * entry; the consumer then still stores the event once (by webhook and key).
 */
async function rememberReceipt(env: Env, slot: string, receipt: Receipt) {
  try {
    await env.AUTH_CACHE.put(slot, JSON.stringify(receipt), {
      expirationTtl: IDEMPOTENCY_TTL_SECONDS,
    });
  } catch (error) {
    log("warn", "ingress.idempotency_write_failed", { error: errorSummary(error) });
  }
}

/**
 * Refusals are logged at `info`; accepted calls at `debug`, since Workers Logs records
 * every invocation anyway and a log line costs about as much as the rest of a warm call.
 */
function logDecision(requestId: string, webhookId: string, outcome: string, tokenId?: string) {
  log(outcome === "accepted" ? "debug" : "info", "ingress.decision", {
    requestId,
    webhookId,
    outcome,
    tokenId: tokenId ?? null,
  });
}
