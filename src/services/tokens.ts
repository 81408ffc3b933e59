import { and, asc, eq, gt, isNull, or } from "drizzle-orm";
import { purgeTokenFacts } from "../auth/decision-cache";
import { generateToken, type TokenKind } from "../auth/tokens";
import { afterCursor, decodeCursor, toPage } from "../data/pagination";
import { type Token, tokens, users, webhooks } from "../data/schema";
import { DomainError, notFound } from "../shared/errors";
import { newId } from "../shared/ids";
import { auditInsert } from "./audit";
import { type Actor, assertVisible, getVisibleUser, type ServiceContext } from "./context";

export type Scope = "send" | "manage";

export interface TokenSpec {
  kind: TokenKind;
  userId: string;
  webhookId?: string | null;
  name?: string | null | undefined;
  scopes: Scope[];
  expiresAt?: Date | null | undefined;
}

/** A token row ready to insert, and its secret, which exists only in this value. */
export interface IssuedToken {
  token: Token;
  secret: string;
}

export async function issueToken(ctx: ServiceContext, spec: TokenSpec): Promise<IssuedToken> {
  const { secret, hash, prefix } = await generateToken(spec.kind);
  const token: Token = {
    id: newId("tok"),
    kind: spec.kind,
    hash,
    prefix,
    name: spec.name ?? null,
    scopes: spec.scopes.join(","),
    userId: spec.userId,
    webhookId: spec.webhookId ?? null,
    createdAt: ctx.now,
    lastUsedAt: null,
    expiresAt: spec.expiresAt ?? null,
    revokedAt: null,
    replacedBy: null,
  };
  return { token, secret };
}

/** A token that is neither revoked nor past its expiry at `now`. */
export function liveTokenCondition(now: Date) {
  return and(isNull(tokens.revokedAt), or(isNull(tokens.expiresAt), gt(tokens.expiresAt, now)));
}

export function isLive(token: Token, now: Date): boolean {
  return token.revokedAt === null && (token.expiresAt === null || token.expiresAt > now);
}

export function scopesOf(token: Token): Scope[] {
  return token.scopes.split(",").filter((scope): scope is Scope => scope !== "");
}

export async function createIntegrationToken(
  ctx: ServiceContext,
  actor: Actor,
  userId: string,
  input: { name: string; scopes: Scope[]; expiresAt?: Date | undefined },
) {
  await getVisibleUser(ctx, actor, userId);
  assertFuture(ctx, input.expiresAt);

  const issued = await issueToken(ctx, { kind: "integration", userId, ...input });
  await ctx.db.batch([
    ctx.db.insert(tokens).values(issued.token),
    auditInsert(ctx.db, ctx.now, {
      actorId: actor.user.id,
      action: "token.created",
      targetType: "token",
      targetId: issued.token.id,
      details: { kind: "integration", userId, scopes: input.scopes },
    }),
  ]);
  return issued;
}

export async function listUserTokens(
  ctx: ServiceContext,
  actor: Actor,
  userId: string,
  query: { limit: number; cursor?: string | undefined; kind?: TokenKind | undefined },
) {
  await getVisibleUser(ctx, actor, userId);

  const cursor = decodeCursor(query.cursor);
  const rows = await ctx.db
    .select()
    .from(tokens)
    .where(
      and(
        eq(tokens.userId, userId),
        query.kind ? eq(tokens.kind, query.kind) : undefined,
        afterCursor(cursor, tokens.createdAt, tokens.id, "asc"),
      ),
    )
    .orderBy(asc(tokens.createdAt), asc(tokens.id))
    .limit(query.limit + 1);
  return toPage(
    rows,
    query.limit,
    (row) => ({ at: row.createdAt.getTime(), id: row.id }),
    (row) => row,
  );
}

/** Loads a token its owner or an admin may act on; anyone else is told it does not exist. */
async function getManageableToken(ctx: ServiceContext, actor: Actor, tokenId: string) {
  const token = await ctx.db.query.tokens.findFirst({ where: eq(tokens.id, tokenId) });
  if (!token) throw notFound("This token");
  assertVisible(actor, token.userId, "This token");
  return token;
}

/** Revoking is idempotent: a second call answers the same and changes nothing. */
export async function revokeToken(ctx: ServiceContext, actor: Actor, tokenId: string) {
  const token = await getManageableToken(ctx, actor, tokenId);
  if (token.revokedAt !== null) return;

  await ctx.db.batch([
    ctx.db.update(tokens).set({ revokedAt: ctx.now }).where(eq(tokens.id, tokenId)),
    auditInsert(ctx.db, ctx.now, {
      actorId: actor.user.id,
      action: "token.revoked",
      targetType: "token",
      targetId: tokenId,
      details: { kind: token.kind, userId: token.userId },
    }),
  ]);
  await purgeTokenFacts(ctx.env, [token.hash], ctx.waitUntil);
}

/**
 * Issues a new secret with the same kind, owner, webhook, name, scopes and expiry. The old
 * secret keeps working for `overlapSeconds` (never past its own expiry), so that senders
 * can switch without a gap, and it cannot be rolled again.
 */
export async function rollToken(
  ctx: ServiceContext,
  actor: Actor,
  tokenId: string,
  overlapSeconds: number,
) {
  const token = await getManageableToken(ctx, actor, tokenId);
  assertLiveCredential(ctx, token, "rolled");
  if (token.replacedBy !== null) {
    // A rolled token's expiry ends its overlap, which a second replacement would inherit.
    throw new DomainError(
      "token_unavailable",
      `This token was already rolled; roll its replacement ${token.replacedBy} instead.`,
      { replacedBy: token.replacedBy },
    );
  }

  const overlapEnd = new Date(ctx.now.getTime() + overlapSeconds * 1000);
  const previousExpiry =
    token.expiresAt !== null && token.expiresAt < overlapEnd ? token.expiresAt : overlapEnd;
  const issued = await issueToken(ctx, {
    kind: token.kind,
    userId: token.userId,
    webhookId: token.webhookId,
    name: token.name,
    scopes: scopesOf(token),
    expiresAt: token.expiresAt,
  });
  await ctx.db.batch([
    ctx.db.insert(tokens).values(issued.token),
    ctx.db
      .update(tokens)
      .set({ expiresAt: previousExpiry, replacedBy: issued.token.id })
      .where(eq(tokens.id, tokenId)),
    auditInsert(ctx.db, ctx.now, {
      actorId: actor.user.id,
      action: "token.rolled",
      targetType: "token",
      targetId: tokenId,
      details: { replacedBy: issued.token.id, previousExpiresAt: previousExpiry.toISOString() },
    }),
  ]);
  await purgeTokenFacts(ctx.env, [token.hash], ctx.waitUntil);
  return { issued, previous: { ...token, expiresAt: previousExpiry, replacedBy: issued.token.id } };
}

/**
 * Moves a token to another active account without changing its secret, so that Bearer
 * senders need no change. Basic authentication pairs the secret with its owner's
 * username, so those senders must switch to the new owner's. Whoever knew the secret
 * before still holds it.
 */
export async function transferToken(
  ctx: ServiceContext,
  actor: Actor,
  tokenId: string,
  targetUserId: string,
) {
  const token = await getManageableToken(ctx, actor, tokenId);
  assertLiveCredential(ctx, token, "transferred");
  if (targetUserId === token.userId) {
    throw new DomainError("validation_failed", "The token already belongs to this account.", {
      errors: [{ field: "userId", message: "Already the token's owner" }],
    });
  }
  const target = await ctx.db.query.users.findFirst({ where: eq(users.id, targetUserId) });
  if (!target) {
    throw new DomainError("validation_failed", "The target account does not exist.", {
      errors: [{ field: "userId", message: "No such account" }],
    });
  }
  if (target.status !== "active") {
    throw new DomainError(
      "target_account_inactive",
      `The account "${target.username}" is inactive; reactivate it or choose another.`,
    );
  }

  await ctx.db.batch([
    ctx.db.update(tokens).set({ userId: target.id }).where(eq(tokens.id, tokenId)),
    auditInsert(ctx.db, ctx.now, {
      actorId: actor.user.id,
      action: "token.transferred",
      targetType: "token",
      targetId: tokenId,
      details: { fromUserId: token.userId, toUserId: target.id },
    }),
  ]);
  await purgeTokenFacts(ctx.env, [token.hash], ctx.waitUntil);
  return {
    token: { ...token, userId: target.id },
    owner: target,
    opensBasicWebhooks: await opensBasicWebhooks(ctx, token),
  };
}

/** Whether Basic senders may use the token, and so must send its owner's username. */
async function opensBasicWebhooks(ctx: ServiceContext, token: Token): Promise<boolean> {
  if (token.kind === "integration") return scopesOf(token).includes("send");
  if (token.webhookId === null) return false;
  const webhook = await ctx.db.query.webhooks.findFirst({
    where: eq(webhooks.id, token.webhookId),
    columns: { authMethod: true },
  });
  return webhook?.authMethod === "basic";
}

function assertLiveCredential(ctx: ServiceContext, token: Token, verb: string) {
  if (token.kind === "session") {
    throw new DomainError("token_unavailable", `A session token cannot be ${verb}.`);
  }
  if (!isLive(token, ctx.now)) {
    throw new DomainError(
      "token_unavailable",
      `This token is revoked or expired and cannot be ${verb}.`,
    );
  }
}

export function assertFuture(ctx: ServiceContext, expiresAt: Date | undefined) {
  if (expiresAt !== undefined && expiresAt <= ctx.now) {
    throw new DomainError("validation_failed", "The expiry must lie in the future.", {
      errors: [{ field: "expiresAt", message: "Must be in the future" }],
    });
  }
}
