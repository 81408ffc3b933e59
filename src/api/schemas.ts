import { z } from "@hono/zod-openapi";
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from "../auth/passwords";
import { ERROR_CODES } from "../shared/errors";

const timestamp = z.iso.datetime().openapi({ example: "2026-12-03T10:00:00.000Z" });
const nullableTimestamp = timestamp.nullable();

export const Username = z
  .string()
  .regex(/^[a-z0-9._-]{3,64}$/, "3 to 64 characters of a-z, 0-9, '.', '_' and '-'")
  .openapi({ example: "crm-sync" });
export const Password = z
  .string()
  .min(PASSWORD_MIN_LENGTH, `At least ${PASSWORD_MIN_LENGTH} characters`)
  .max(PASSWORD_MAX_LENGTH, `At most ${PASSWORD_MAX_LENGTH} characters`)
  .openapi({ example: "correct-horse-battery" });
export const DisplayName = z.string().trim().min(1).max(200);
export const Scope = z.enum(["send", "manage"]);
export const FutureTimestamp = z.iso
  .datetime({ offset: true })
  .transform((value) => new Date(value))
  .refine((date) => date.getTime() > Date.now(), "Must be in the future")
  .openapi({ type: "string", format: "date-time", example: "2027-06-30T00:00:00Z" });

export const IdParam = (prefix: string) =>
  z.object({
    id: z
      .string()
      .max(64)
      .openapi({ param: { name: "id", in: "path" }, example: `${prefix}_2bT4Vx9qLmN0pR7sW1yZcD` }),
  });

export const PageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(50).openapi({ example: 50 }),
  cursor: z.string().max(256).optional().openapi({ description: "`nextCursor` of the last page" }),
});

export const UserSchema = z
  .object({
    id: z.string(),
    username: z.string(),
    displayName: z.string(),
    kind: z.enum(["person", "service"]),
    role: z.enum(["admin", "member"]),
    status: z.enum(["active", "inactive"]),
    lastActiveAt: timestamp,
    inactiveAt: nullableTimestamp.openapi({
      description: "When the account will be flagged idle if nothing happens; null if inactive",
    }),
    deactivatedAt: nullableTimestamp,
    createdAt: timestamp,
    activeTokens: z.number().int().openapi({ description: "Live app and integration tokens" }),
  })
  .openapi("User");

export const TokenSchema = z
  .object({
    id: z.string(),
    kind: z.enum(["app", "integration", "session"]),
    prefix: z.string().openapi({ description: "The first 10 characters of the secret" }),
    name: z.string().nullable(),
    scopes: z.array(Scope),
    userId: z.string(),
    webhookId: z.string().nullable(),
    createdAt: timestamp,
    lastUsedAt: nullableTimestamp,
    expiresAt: nullableTimestamp,
    revokedAt: nullableTimestamp,
    replacedBy: z.string().nullable().openapi({
      description:
        "The token a roll issued in this one's place; a rolled token is not rolled again",
    }),
  })
  .openapi("Token");

export const TokenWithSecretSchema = TokenSchema.extend({
  secret: z.string().openapi({ description: "Shown in this response only; store it now" }),
}).openapi("TokenWithSecret");

export const CredentialSchema = z
  .object({
    tokenId: z.string(),
    kind: z.enum(["app", "integration"]),
    prefix: z.string(),
    owner: z.object({
      id: z.string(),
      username: z.string(),
      kind: z.enum(["person", "service"]),
      status: z.enum(["active", "inactive"]),
      inactiveAt: nullableTimestamp,
    }),
  })
  .openapi("Credential");

export const HealthSchema = z
  .object({
    status: z.enum(["ok", "at_risk", "broken"]),
    reasons: z.array(z.string()),
  })
  .openapi("WebhookHealth");

export const WebhookSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    authMethod: z.enum(["bearer", "basic"]),
    ownerId: z.string(),
    enabled: z.boolean(),
    url: z.string(),
    createdAt: timestamp,
    credentials: z.array(CredentialSchema),
    health: HealthSchema,
  })
  .openapi("Webhook");

export const ReadyCredentialsSchema = z
  .discriminatedUnion("scheme", [
    z.object({ scheme: z.literal("bearer"), authorization: z.string() }),
    z.object({
      scheme: z.literal("basic"),
      username: z.string(),
      password: z.string(),
      authorization: z.string(),
    }),
  ])
  .openapi("ReadyCredentials", {
    description: "What a sender puts in its requests; `authorization` is the exact header",
  });

export const AuditEntrySchema = z
  .object({
    id: z.string(),
    at: timestamp,
    actorId: z.string().nullable().openapi({ description: "null when the system acted" }),
    action: z.string(),
    targetType: z.enum(["user", "webhook", "token", "event"]),
    targetId: z.string(),
    details: z.record(z.string(), z.unknown()),
  })
  .openapi("AuditEntry");

export const ProblemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z.enum(ERROR_CODES),
    requestId: z.string().nullable(),
    errors: z
      .array(z.object({ field: z.string(), message: z.string() }))
      .optional()
      .openapi({ description: "For `validation_failed`: each bad field" }),
  })
  .passthrough()
  .openapi("Problem");

export const pageOf = <T extends z.ZodType>(item: T, name: string) =>
  z.object({ items: z.array(item), nextCursor: z.string().nullable() }).openapi(name);

export const EventSchema = z
  .object({
    id: z.string(),
    webhookId: z.string(),
    tokenId: z.string(),
    receivedAt: timestamp,
    status: z.enum(["stored", "dead"]),
    contentType: z.string().nullable(),
    body: z.string().openapi({ description: "The exact bytes: UTF-8 text, or base64" }),
    bodyEncoding: z.enum(["utf8", "base64"]),
    bodySize: z.number().int().openapi({ description: "Bytes as received" }),
    idempotencyKey: z.string().nullable(),
    attempts: z.number().int(),
    lastError: z.string().nullable(),
  })
  .openapi("Event");
