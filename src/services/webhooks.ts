import { and, asc, eq, isNull, or, sql } from "drizzle-orm";
import { purgeTokenFacts, purgeWebhookFacts } from "../auth/decision-cache";
import { type Config, DAY_MS } from "../config";
import { afterCursor, decodeCursor, encodeCursor, toPage } from "../data/pagination";
import { type Token, tokens, type User, users, type Webhook, webhooks } from "../data/schema";
import { payloadPrefix } from "../queue/envelope";
import { DomainError, notFound } from "../shared/errors";
import { newId } from "../shared/ids";
import { errorSummary, log } from "../shared/log";
import { auditInsert } from "./audit";
import {
  type Actor,
  assertVisible,
  isAdmin,
  projectedInactiveAt,
  type ServiceContext,
} from "./context";
import { inIdList } from "./id-list";
import { assertFuture, issueToken, liveTokenCondition } from "./tokens";

/** A live token that opens a webhook while its owner is active, with that owner. */
export interface WebhookCredential {
  token: Token;
  owner: User;
}

export interface Health {
  status: "ok" | "at_risk" | "broken";
  reasons: string[];
}

export interface WebhookView {
  webhook: Webhook;
  credentials: WebhookCredential[];
  health: Health;
}

/** The window in which a credential that is about to stop makes its webhook `at_risk`. */
export const HEALTH_HORIZON_DAYS = 14;

export async function createWebhook(
  ctx: ServiceContext,
  actor: Actor,
  input: { name: string; authMethod: Webhook["authMethod"]; tokenOwnerId?: string | undefined },
) {
  const tokenOwner = await resolveTokenOwner(ctx, actor, input.tokenOwnerId, "tokenOwnerId");
  const webhook: Webhook = {
    id: newId("wh"),
    name: input.name,
    authMethod: input.authMethod,
    ownerId: actor.user.id,
    enabled: true,
    createdAt: ctx.now,
  };
  const issued = await issueToken(ctx, {
    kind: "app",
    userId: tokenOwner.id,
    webhookId: webhook.id,
    scopes: ["send"],
  });

  await ctx.db.batch([
    ctx.db.insert(webhooks).values(webhook),
    ctx.db.insert(tokens).values(issued.token),
    auditInsert(ctx.db, ctx.now, {
      actorId: actor.user.id,
      action: "webhook.created",
      targetType: "webhook",
      targetId: webhook.id,
      details: {
        authMethod: webhook.authMethod,
        tokenId: issued.token.id,
        tokenOwnerId: tokenOwner.id,
      },
    }),
  ]);
  return { webhook, issued, tokenOwner };
}

/** Issues another app token for a webhook, optionally on another account (admins only). */
export async function createAppToken(
  ctx: ServiceContext,
  actor: Actor,
  webhookId: string,
  input: { name?: string | undefined; ownerId?: string | undefined; expiresAt?: Date | undefined },
) {
  const webhook = await getVisibleWebhook(ctx, actor, webhookId);
  const tokenOwner = await resolveTokenOwner(ctx, actor, input.ownerId, "ownerId");
  assertFuture(ctx, input.expiresAt);
  const issued = await issueToken(ctx, {
    kind: "app",
    userId: tokenOwner.id,
    webhookId: webhook.id,
    name: input.name,
    scopes: ["send"],
    expiresAt: input.expiresAt,
  });

  await ctx.db.batch([
    ctx.db.insert(tokens).values(issued.token),
    auditInsert(ctx.db, ctx.now, {
      actorId: actor.user.id,
      action: "token.created",
      targetType: "token",
      targetId: issued.token.id,
      details: { kind: "app", webhookId: webhook.id, userId: tokenOwner.id },
    }),
  ]);
  return { webhook, issued, tokenOwner };
}

async function resolveTokenOwner(
  ctx: ServiceContext,
  actor: Actor,
  ownerId: string | undefined,
  field: string,
): Promise<User> {
  if (ownerId === undefined || ownerId === actor.user.id) return actor.user;
  if (!isAdmin(actor)) {
    throw new DomainError("forbidden", "Only an admin can put a token on another account.");
  }
  const owner = await ctx.db.query.users.findFirst({ where: eq(users.id, ownerId) });
  if (!owner) {
    throw new DomainError("validation_failed", "The named account does not exist.", {
      errors: [{ field, message: "No such account" }],
    });
  }
  return owner;
}

export async function getVisibleWebhook(ctx: ServiceContext, actor: Actor, id: string) {
  const webhook = await ctx.db.query.webhooks.findFirst({ where: eq(webhooks.id, id) });
  if (!webhook) throw notFound("This webhook");
  assertVisible(actor, webhook.ownerId, "This webhook");
  return webhook;
}

export async function describeWebhook(ctx: ServiceContext, actor: Actor, id: string) {
  const webhook = await getVisibleWebhook(ctx, actor, id);
  const [view] = await describeWebhooks(ctx, [webhook]);
  return view as WebhookView;
}

export async function listWebhooks(
  ctx: ServiceContext,
  actor: Actor,
  query: { limit: number; cursor?: string | undefined },
) {
  const cursor = decodeCursor(query.cursor);
  const rows = await ctx.db
    .select()
    .from(webhooks)
    .where(
      and(
        isAdmin(actor) ? undefined : eq(webhooks.ownerId, actor.user.id),
        afterCursor(cursor, webhooks.createdAt, webhooks.id, "asc"),
      ),
    )
    .orderBy(asc(webhooks.createdAt), asc(webhooks.id))
    .limit(query.limit + 1);
  const views = await describeWebhooks(ctx, rows.slice(0, query.limit));
  return toPage(
    rows,
    query.limit,
    (row) => ({ at: row.createdAt.getTime(), id: row.id }),
    (row) => views.find((view) => view.webhook.id === row.id) as WebhookView,
  );
}

/**
 * Attaches credentials and health to a page of webhooks with one query: their app tokens,
 * and the deployment's integration tokens that may send (they open every webhook).
 */
export async function describeWebhooks(
  ctx: ServiceContext,
  list: Webhook[],
  horizonDays = HEALTH_HORIZON_DAYS,
): Promise<WebhookView[]> {
  if (list.length === 0) return [];
  const rows = await ctx.db
    .select({ token: tokens, owner: users })
    .from(tokens)
    .innerJoin(users, eq(tokens.userId, users.id))
    .where(
      and(
        liveTokenCondition(ctx.now),
        or(
          inIdList(
            tokens.webhookId,
            list.map((webhook) => webhook.id),
          ),
          and(eq(tokens.kind, "integration"), sql`',' || ${tokens.scopes} || ',' like '%,send,%'`),
        ),
      ),
    )
    .orderBy(asc(tokens.createdAt));

  return list.map((webhook) => {
    const credentials = rows.filter(
      ({ token }) => token.kind === "integration" || token.webhookId === webhook.id,
    );
    return {
      webhook,
      credentials,
      health: assessHealth(webhook, credentials, ctx.now, ctx.config, horizonDays),
    };
  });
}

/**
 * `broken`: nothing opens the webhook now. `at_risk`: every working credential stops
 * within the horizon (owner idle, or token expiring), or only person accounts hold one.
 */
export function assessHealth(
  webhook: Webhook,
  credentials: WebhookCredential[],
  now: Date,
  config: Config,
  horizonDays = HEALTH_HORIZON_DAYS,
): Health {
  if (!webhook.enabled) return { status: "broken", reasons: ["The webhook is disabled."] };
  const working = credentials.filter(({ owner }) => owner.status === "active");
  if (working.length === 0) {
    const reason =
      credentials.length === 0
        ? "No live token opens this webhook."
        : "Every token that could open this webhook belongs to an inactive account.";
    return { status: "broken", reasons: [reason] };
  }

  const horizon = now.getTime() + horizonDays * DAY_MS;
  const stopsAt = ({ token, owner }: WebhookCredential) =>
    Math.min(
      projectedInactiveAt(owner, config)?.getTime() ?? Number.POSITIVE_INFINITY,
      token.expiresAt?.getTime() ?? Number.POSITIVE_INFINITY,
    );
  const lastStop = Math.max(...working.map(stopsAt));
  const reasons: string[] = [];
  if (lastStop <= horizon) {
    reasons.push(
      `Every working credential stops by ${new Date(lastStop).toISOString()} ` +
        "unless its owner is active again or the token is replaced.",
    );
  }
  if (working.every(({ owner }) => owner.kind === "person")) {
    reasons.push(
      "Only person accounts hold working credentials; issue an app token on a service account.",
    );
  }
  return { status: reasons.length > 0 ? "at_risk" : "ok", reasons };
}

/**
 * Webhooks that would stop working within `withinDays` if nothing happens, or whose only
 * credentials belong to person accounts. Walks every webhook a page at a time: a page of
 * the report may hold fewer than `limit` items, and `nextCursor` continues the walk.
 */
export async function listAtRisk(
  ctx: ServiceContext,
  query: { withinDays: number; limit: number; cursor?: string | undefined },
) {
  const cursor = decodeCursor(query.cursor);
  const rows = await ctx.db
    .select()
    .from(webhooks)
    .where(afterCursor(cursor, webhooks.createdAt, webhooks.id, "asc"))
    .orderBy(asc(webhooks.createdAt), asc(webhooks.id))
    .limit(query.limit + 1);
  const scanned = rows.slice(0, query.limit);
  const views = await describeWebhooks(ctx, scanned, query.withinDays);
  const last = scanned.at(-1);
  return {
    items: views.filter((view) => view.health.status !== "ok"),
    nextCursor:
      rows.length > query.limit && last
        ? encodeCursor({ at: last.createdAt.getTime(), id: last.id })
        : null,
  };
}

export async function updateWebhook(
  ctx: ServiceContext,
  actor: Actor,
  id: string,
  changes: { name?: string | undefined; enabled?: boolean | undefined },
) {
  const webhook = await getVisibleWebhook(ctx, actor, id);
  const updated: Webhook = {
    ...webhook,
    name: changes.name ?? webhook.name,
    enabled: changes.enabled ?? webhook.enabled,
  };
  await ctx.db.batch([
    ctx.db
      .update(webhooks)
      .set({ name: updated.name, enabled: updated.enabled })
      .where(eq(webhooks.id, id)),
    auditInsert(ctx.db, ctx.now, {
      actorId: actor.user.id,
      action: "webhook.updated",
      targetType: "webhook",
      targetId: id,
      details: changes,
    }),
  ]);
  if (updated.enabled !== webhook.enabled) await purgeWebhookFacts(ctx.env, id, ctx.waitUntil);
  return updated;
}

/** Deletes the webhook with its app tokens and stored events (foreign-key cascade). */
export async function deleteWebhook(ctx: ServiceContext, actor: Actor, id: string) {
  const webhook = await getVisibleWebhook(ctx, actor, id);
  const appTokens = await ctx.db
    .select({ hash: tokens.hash })
    .from(tokens)
    .where(and(eq(tokens.webhookId, id), isNull(tokens.revokedAt)));

  await ctx.db.batch([
    ctx.db.delete(webhooks).where(eq(webhooks.id, id)),
    auditInsert(ctx.db, ctx.now, {
      actorId: actor.user.id,
      action: "webhook.deleted",
      targetType: "webhook",
      targetId: id,
      details: { name: webhook.name, appTokensDeleted: appTokens.length },
    }),
  ]);
  await purgeWebhookFacts(ctx.env, id, ctx.waitUntil);
  await purgeTokenFacts(
    ctx.env,
    appTokens.map((token) => token.hash),
    ctx.waitUntil,
  );
  ctx.waitUntil(deletePayloads(ctx.env, id));
}

/**
 * Deletes a deleted webhook's large bodies from R2, a listed page of up to 1,000 at a
 * time, after the answer. Its events are gone from D1 already, so nothing else would
 * find these objects; a failure is logged and leaves the rest in the bucket.
 */
async function deletePayloads(env: Env, webhookId: string) {
  try {
    let cursor: string | undefined;
    do {
      const page = await env.PAYLOADS.list({ prefix: payloadPrefix(webhookId), cursor });
      if (page.objects.length > 0) await env.PAYLOADS.delete(page.objects.map((o) => o.key));
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
  } catch (error) {
    log("error", "webhook.payload_cleanup_failed", { webhookId, error: errorSummary(error) });
  }
}
