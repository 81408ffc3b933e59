import type { Config } from "../config";
import type { AuditEntry, Token, User } from "../data/schema";
import { projectedInactiveAt } from "../services/context";
import { scopesOf } from "../services/tokens";
import type { WebhookView } from "../services/webhooks";
import { bytesToBase64 } from "../shared/encoding";

const iso = (date: Date | null) => (date === null ? null : date.toISOString());

export function presentUser(user: User, config: Config, activeTokens: number) {
  return {
    id: user.id,
    username: user.username,
    displayName: user.displayName,
    kind: user.kind,
    role: user.role,
    status: user.status,
    lastActiveAt: user.lastActiveAt.toISOString(),
    inactiveAt: iso(projectedInactiveAt(user, config)),
    deactivatedAt: iso(user.deactivatedAt),
    createdAt: user.createdAt.toISOString(),
    activeTokens,
  };
}

export function presentToken(token: Token) {
  return {
    id: token.id,
    kind: token.kind,
    prefix: token.prefix,
    name: token.name,
    scopes: scopesOf(token),
    userId: token.userId,
    webhookId: token.webhookId,
    createdAt: token.createdAt.toISOString(),
    lastUsedAt: iso(token.lastUsedAt),
    expiresAt: iso(token.expiresAt),
    revokedAt: iso(token.revokedAt),
    replacedBy: token.replacedBy,
  };
}

export function presentIssuedToken(issued: { token: Token; secret: string }) {
  return { ...presentToken(issued.token), secret: issued.secret };
}

export function webhookUrl(origin: string, webhookId: string) {
  return `${origin}/hooks/${webhookId}`;
}

export function presentWebhook(view: WebhookView, origin: string, config: Config) {
  const { webhook } = view;
  return {
    id: webhook.id,
    name: webhook.name,
    authMethod: webhook.authMethod,
    ownerId: webhook.ownerId,
    enabled: webhook.enabled,
    url: webhookUrl(origin, webhook.id),
    createdAt: webhook.createdAt.toISOString(),
    credentials: view.credentials.map(({ token, owner }) => ({
      tokenId: token.id,
      kind: token.kind as "app" | "integration",
      prefix: token.prefix,
      owner: {
        id: owner.id,
        username: owner.username,
        kind: owner.kind,
        status: owner.status,
        inactiveAt: iso(projectedInactiveAt(owner, config)),
      },
    })),
    health: view.health,
  };
}

/** The exact credentials a sender needs, for the scheme the webhook was created with. */
export function readyCredentials(authMethod: "bearer" | "basic", username: string, secret: string) {
  if (authMethod === "bearer") {
    return { scheme: "bearer" as const, authorization: `Bearer ${secret}` };
  }
  const encoded = bytesToBase64(new TextEncoder().encode(`${username}:${secret}`));
  return {
    scheme: "basic" as const,
    username,
    password: secret,
    authorization: `Basic ${encoded}`,
  };
}

export function presentAuditEntry(entry: AuditEntry) {
  return {
    id: entry.id,
    at: entry.at.toISOString(),
    actorId: entry.actorId,
    action: entry.action,
    targetType: entry.targetType,
    targetId: entry.targetId,
    details: JSON.parse(entry.details) as Record<string, unknown>,
  };
}
