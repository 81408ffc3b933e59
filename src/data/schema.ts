import { sql } from "drizzle-orm";
import { index, integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

/** Times are stored as integer milliseconds since the epoch and surface as `Date`. */
const timestamp = (name: string) => integer(name, { mode: "timestamp_ms" });

export const users = sqliteTable(
  "users",
  {
    id: text("id").primaryKey(),
    username: text("username").notNull().unique(),
    displayName: text("display_name").notNull(),
    kind: text("kind", { enum: ["person", "service"] }).notNull(),
    role: text("role", { enum: ["admin", "member"] }).notNull(),
    status: text("status", { enum: ["active", "inactive"] }).notNull(),
    /** `pbkdf2-sha256$<iterations>$<salt>$<hash>`; null for service accounts. */
    passwordHash: text("password_hash"),
    lastActiveAt: timestamp("last_active_at").notNull(),
    deactivatedAt: timestamp("deactivated_at"),
    createdAt: timestamp("created_at").notNull(),
    /**
     * Set when the cached facts of this account's tokens must be deleted from KV (it went
     * inactive or came back); cleared once done. Lets a cut-off purge resume.
     */
    purgeRequestedAt: timestamp("purge_requested_at"),
  },
  (table) => [
    // The idle sweep walks active accounts in (last activity, id) order: the id keeps
    // pages in index order when many accounts share a time.
    index("users_status_last_active_idx").on(table.status, table.lastActiveAt, table.id),
    index("users_purge_idx").on(table.purgeRequestedAt),
    index("users_created_idx").on(table.createdAt, table.id),
  ],
);

export const webhooks = sqliteTable(
  "webhooks",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    authMethod: text("auth_method", { enum: ["bearer", "basic"] }).notNull(),
    ownerId: text("owner_id")
      .notNull()
      .references(() => users.id),
    enabled: integer("enabled", { mode: "boolean" }).notNull(),
    createdAt: timestamp("created_at").notNull(),
  },
  (table) => [
    index("webhooks_owner_idx").on(table.ownerId),
    index("webhooks_created_idx").on(table.createdAt, table.id),
  ],
);

export const tokens = sqliteTable(
  "tokens",
  {
    id: text("id").primaryKey(),
    kind: text("kind", { enum: ["app", "integration", "session"] }).notNull(),
    /** Hex SHA-256 of the whole token; the secret itself is never stored. */
    hash: text("hash").notNull().unique(),
    prefix: text("prefix").notNull(),
    name: text("name"),
    /** Comma-separated subset of `send`, `manage`. */
    scopes: text("scopes").notNull(),
    userId: text("user_id")
      .notNull()
      .references(() => users.id),
    webhookId: text("webhook_id").references(() => webhooks.id, { onDelete: "cascade" }),
    createdAt: timestamp("created_at").notNull(),
    lastUsedAt: timestamp("last_used_at"),
    expiresAt: timestamp("expires_at"),
    revokedAt: timestamp("revoked_at"),
    /**
     * The id of the token a roll issued in this one's place; a rolled token is not rolled
     * again. No foreign key: the replacement may be deleted with its owner before this one.
     */
    replacedBy: text("replaced_by"),
  },
  (table) => [
    index("tokens_user_idx").on(table.userId, table.kind),
    index("tokens_webhook_idx").on(table.webhookId),
    index("tokens_kind_expires_idx").on(table.kind, table.expiresAt),
  ],
);

export const events = sqliteTable(
  "events",
  {
    id: text("id").primaryKey(),
    webhookId: text("webhook_id")
      .notNull()
      .references(() => webhooks.id, { onDelete: "cascade" }),
    tokenId: text("token_id").notNull(),
    accountId: text("account_id").notNull(),
    receivedAt: timestamp("received_at").notNull(),
    idempotencyKey: text("idempotency_key"),
    contentType: text("content_type"),
    /** The body as sent, UTF-8 text or base64; null when it lives in R2 under `bodyKey`. */
    body: text("body"),
    bodyEncoding: text("body_encoding", { enum: ["utf8", "base64"] }).notNull(),
    bodyKey: text("body_key"),
    bodySize: integer("body_size").notNull(),
    status: text("status", { enum: ["stored", "dead"] }).notNull(),
    attempts: integer("attempts").notNull(),
    lastError: text("last_error"),
  },
  (table) => [
    index("events_webhook_received_idx").on(table.webhookId, table.receivedAt, table.id),
    index("events_received_idx").on(table.receivedAt),
    // Idempotency keys repeat legitimately after 24 hours, so this index is not unique.
    index("events_idempotency_idx")
      .on(table.webhookId, table.idempotencyKey)
      .where(sql`${table.idempotencyKey} is not null`),
  ],
);

export const auditLog = sqliteTable(
  "audit_log",
  {
    id: text("id").primaryKey(),
    at: timestamp("at").notNull(),
    /** The account that acted; null when the system acted (the idle sweep). */
    actorId: text("actor_id"),
    action: text("action").notNull(),
    targetType: text("target_type", { enum: ["user", "webhook", "token", "event"] }).notNull(),
    targetId: text("target_id").notNull(),
    /** JSON object with what a reader needs to understand the change; never secrets. */
    details: text("details").notNull(),
  },
  (table) => [index("audit_at_idx").on(table.at, table.id)],
);

export type User = typeof users.$inferSelect;
export type Webhook = typeof webhooks.$inferSelect;
export type Token = typeof tokens.$inferSelect;
export type Event = typeof events.$inferSelect;
export type AuditEntry = typeof auditLog.$inferSelect;
