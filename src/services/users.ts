import { and, asc, count, eq, isNotNull, isNull, lt, lte, ne, or, sql } from "drizzle-orm";
import { purgeTokenFacts } from "../auth/decision-cache";
import { hashPassword, verifyPassword } from "../auth/passwords";
import { DAY_MS } from "../config";
import { afterCursor, decodeCursor, toPage } from "../data/pagination";
import { tokens, type User, users, webhooks } from "../data/schema";
import { InvocationBudget } from "../lifecycle/budget";
import { purgeAccountFacts } from "../lifecycle/purge";
import { DomainError } from "../shared/errors";
import { newId } from "../shared/ids";
import { auditInsert } from "./audit";
import { type Actor, getVisibleUser, requireUser, type ServiceContext } from "./context";
import { inIdList } from "./id-list";
import { isLive, issueToken, liveTokenCondition } from "./tokens";

/**
 * Cached facts one API call purges at most: each key costs two of an invocation's 1,000
 * KV operations (the delete and its repeat 10 s later).
 */
const MAX_KEYS_PURGED_AT_ONCE = 400;

export interface NewUser {
  username: string;
  displayName?: string | undefined;
  kind: User["kind"];
  role: User["role"];
  password?: string | undefined;
}

/** Builds (without running) the insert of a new account; the password is hashed here. */
async function prepareUser(ctx: ServiceContext, input: NewUser) {
  if (input.kind === "service" && input.password !== undefined) {
    throw new DomainError("validation_failed", "A service account has no password.", {
      errors: [{ field: "password", message: "Must be absent for a service account" }],
    });
  }
  if (input.kind === "person" && input.password === undefined) {
    throw new DomainError("validation_failed", "A person account needs a password.", {
      errors: [{ field: "password", message: "Required for a person account" }],
    });
  }
  const user: User = {
    id: newId("usr"),
    username: input.username,
    displayName: input.displayName ?? input.username,
    kind: input.kind,
    role: input.role,
    status: "active",
    passwordHash: input.password === undefined ? null : await hashPassword(input.password),
    lastActiveAt: ctx.now,
    deactivatedAt: null,
    createdAt: ctx.now,
    purgeRequestedAt: null,
  };
  return user;
}

export async function createUser(ctx: ServiceContext, actor: Actor, input: NewUser) {
  const user = await prepareUser(ctx, input);
  try {
    await ctx.db.batch([
      ctx.db.insert(users).values(user),
      auditInsert(ctx.db, ctx.now, {
        actorId: actor.user.id,
        action: "user.created",
        targetType: "user",
        targetId: user.id,
        details: { username: user.username, kind: user.kind, role: user.role },
      }),
    ]);
  } catch (error) {
    throw usernameConflict(error, input.username);
  }
  return user;
}

/**
 * Creates the first admin with a session and an integration token. The insert carries
 * its own `NOT EXISTS` guard, so two racing bootstraps cannot both succeed.
 */
export async function bootstrap(
  ctx: ServiceContext,
  input: { username: string; password: string; displayName?: string | undefined },
) {
  const user = await prepareUser(ctx, { ...input, kind: "person", role: "admin" });
  const inserted = await ctx.db.run(sql`
    insert into users (id, username, display_name, kind, role, status, password_hash,
                       last_active_at, created_at)
    select ${user.id}, ${user.username}, ${user.displayName}, ${user.kind}, ${user.role},
           ${user.status}, ${user.passwordHash}, ${user.lastActiveAt.getTime()},
           ${user.createdAt.getTime()}
    where not exists (select 1 from users)`);
  if (inserted.meta.changes !== 1) {
    throw new DomainError("already_bootstrapped", "An account exists already; log in instead.");
  }

  const session = await issueSession(ctx, user.id);
  const integration = await issueToken(ctx, {
    kind: "integration",
    userId: user.id,
    name: "bootstrap",
    scopes: ["send", "manage"],
  });
  await ctx.db.batch([
    ctx.db.insert(tokens).values([session.token, integration.token]),
    auditInsert(ctx.db, ctx.now, {
      actorId: user.id,
      action: "system.bootstrapped",
      targetType: "user",
      targetId: user.id,
      details: { username: user.username },
    }),
  ]);
  return { user, session, integration };
}

export type LoginResult =
  | { outcome: "ok"; user: User; secret: string; expiresAt: Date }
  | { outcome: "invalid_credentials" }
  | { outcome: "account_inactive" };

/** Password login. Wrong username and wrong password take the same time and answer. */
export async function login(
  ctx: ServiceContext,
  input: { username: string; password: string },
): Promise<LoginResult> {
  const user = await ctx.db.query.users.findFirst({ where: eq(users.username, input.username) });
  const valid = await verifyPassword(input.password, user?.passwordHash ?? null);
  if (!user || !valid) return { outcome: "invalid_credentials" };
  if (user.status !== "active") return { outcome: "account_inactive" };

  const session = await issueSession(ctx, user.id);
  await ctx.db.batch([
    ctx.db.insert(tokens).values(session.token),
    ctx.db.update(users).set({ lastActiveAt: ctx.now }).where(eq(users.id, user.id)),
  ]);
  return { outcome: "ok", user, secret: session.secret, expiresAt: session.expiresAt };
}

/** A session token for the management API, valid for `SESSION_TTL_HOURS`. */
async function issueSession(ctx: ServiceContext, userId: string) {
  const expiresAt = new Date(ctx.now.getTime() + ctx.config.sessionTtlMs);
  const issued = await issueToken(ctx, { kind: "session", userId, scopes: ["manage"], expiresAt });
  return { ...issued, expiresAt };
}

export interface UserFilters {
  status?: User["status"] | undefined;
  kind?: User["kind"] | undefined;
  idleWithinDays?: number | undefined;
  limit: number;
  cursor?: string | undefined;
}

export async function listUsers(ctx: ServiceContext, filters: UserFilters) {
  const cursor = decodeCursor(filters.cursor);
  const conditions = [
    filters.status ? eq(users.status, filters.status) : undefined,
    filters.kind ? eq(users.kind, filters.kind) : undefined,
    afterCursor(cursor, users.createdAt, users.id, "asc"),
  ];
  if (filters.idleWithinDays !== undefined) {
    // Active accounts whose projected inactivity falls within the window.
    const horizon = ctx.now.getTime() + filters.idleWithinDays * DAY_MS;
    conditions.push(
      eq(users.status, "active"),
      lt(users.lastActiveAt, new Date(horizon - ctx.config.inactivityMs)),
    );
  }
  const rows = await ctx.db
    .select()
    .from(users)
    .where(and(...conditions))
    .orderBy(asc(users.createdAt), asc(users.id))
    .limit(filters.limit + 1);
  const counts = await activeTokenCounts(
    ctx,
    rows.slice(0, filters.limit).map((row) => row.id),
  );
  return toPage(
    rows,
    filters.limit,
    (row) => ({ at: row.createdAt.getTime(), id: row.id }),
    (row) => ({ user: row, activeTokens: counts.get(row.id) ?? 0 }),
  );
}

/** Live app and integration tokens per account. */
export async function activeTokenCounts(ctx: ServiceContext, userIds: string[]) {
  const counts = new Map<string, number>();
  if (userIds.length === 0) return counts;
  const rows = await ctx.db
    .select({ userId: tokens.userId, total: count() })
    .from(tokens)
    .where(
      and(
        inIdList(tokens.userId, userIds),
        ne(tokens.kind, "session"),
        liveTokenCondition(ctx.now),
      ),
    )
    .groupBy(tokens.userId);
  for (const row of rows) counts.set(row.userId, row.total);
  return counts;
}

export async function updateUser(
  ctx: ServiceContext,
  actor: Actor,
  id: string,
  changes: { displayName?: string | undefined; role?: User["role"] | undefined },
) {
  const user = await requireUser(ctx, id);
  if (user.role === "admin" && changes.role === "member") await assertAnotherAdmin(ctx, user.id);

  const updated = { ...user, ...definedOnly(changes) };
  await ctx.db.batch([
    ctx.db
      .update(users)
      .set({ displayName: updated.displayName, role: updated.role })
      .where(eq(users.id, id)),
    auditInsert(ctx.db, ctx.now, {
      actorId: actor.user.id,
      action: "user.updated",
      targetType: "user",
      targetId: id,
      details: definedOnly(changes),
    }),
  ]);
  return updated;
}

/**
 * Sets a new password and revokes the account's sessions. The account stays active and
 * its app and integration tokens keep working: this is how an admin locks a person out
 * without breaking the webhooks that person set up.
 */
export async function setPassword(ctx: ServiceContext, actor: Actor, id: string, password: string) {
  const user = await getVisibleUser(ctx, actor, id);
  if (user.kind === "service") {
    throw new DomainError("validation_failed", "A service account has no password.", {
      errors: [{ field: "password", message: "Service accounts cannot log in with a password" }],
    });
  }
  const passwordHash = await hashPassword(password);
  await ctx.db.batch([
    ctx.db.update(users).set({ passwordHash }).where(eq(users.id, id)),
    revokeSessionsQuery(ctx, id),
    auditInsert(ctx.db, ctx.now, {
      actorId: actor.user.id,
      action: "user.password_changed",
      targetType: "user",
      targetId: id,
      details: { sessionsRevoked: true },
    }),
  ]);
}

/**
 * Sessions are checked against D1 on every management call and never cached, so revoking
 * them needs no cache purge.
 */
export function revokeSessionsQuery(ctx: ServiceContext, userId: string) {
  return ctx.db
    .update(tokens)
    .set({ revokedAt: ctx.now })
    .where(and(eq(tokens.userId, userId), eq(tokens.kind, "session"), isNull(tokens.revokedAt)));
}

/**
 * Brings an inactive account back: active, last activity now, and its tokens work again
 * at once because their cached denials are purged before this answers. An account with
 * more tokens than one call may purge has the rest purged on the jobs queue.
 */
export async function reactivateUser(ctx: ServiceContext, actor: Actor, id: string) {
  const user = await requireUser(ctx, id);

  const changes = {
    status: "active" as const,
    lastActiveAt: ctx.now,
    deactivatedAt: null,
    purgeRequestedAt: ctx.now,
  };
  await ctx.db.batch([
    ctx.db.update(users).set(changes).where(eq(users.id, id)),
    auditInsert(ctx.db, ctx.now, {
      actorId: actor.user.id,
      action: "user.reactivated",
      targetType: "user",
      targetId: id,
      details: { wasStatus: user.status, deactivatedAt: user.deactivatedAt?.toISOString() ?? null },
    }),
  ]);
  const budget = new InvocationBudget(100, MAX_KEYS_PURGED_AT_ONCE);
  const purged = await purgeAccountFacts(ctx.env, ctx.db, budget, id, ctx.waitUntil);
  if (!purged) await ctx.env.JOBS.send({ type: "lifecycle" });
  return { ...user, ...changes, purgeRequestedAt: purged ? null : ctx.now };
}

/**
 * Deletes an account that holds no live app or integration token. Its sessions and dead
 * tokens go with it, and the webhooks it owned pass to the deleting admin.
 */
export async function deleteUser(ctx: ServiceContext, actor: Actor, id: string) {
  const user = await requireUser(ctx, id);
  if (user.id === actor.user.id) {
    throw new DomainError("forbidden", "You cannot delete your own account.");
  }
  await assertNoLiveTokens(ctx, id);

  const handedOver = await ctx.db
    .select({ id: webhooks.id })
    .from(webhooks)
    .where(eq(webhooks.ownerId, id));
  const deleted = await deleteAccountRows(ctx, actor, user, handedOver);
  const cached = deleted
    .filter((token) => token.kind !== "session")
    .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime())
    .slice(0, MAX_KEYS_PURGED_AT_ONCE);
  await purgeTokenFacts(
    ctx.env,
    cached.map((token) => token.hash),
    ctx.waitUntil,
  );
}

/**
 * One transaction that deletes only dead tokens. A live token created since the check
 * stays, and then the foreign key from tokens to users makes D1 refuse the account's
 * delete and roll back the whole batch: a token cached as valid is never deleted.
 */
async function deleteAccountRows(
  ctx: ServiceContext,
  actor: Actor,
  user: User,
  handedOver: { id: string }[],
) {
  const sessionOrDead = or(
    eq(tokens.kind, "session"),
    isNotNull(tokens.revokedAt),
    lte(tokens.expiresAt, ctx.now),
  );
  try {
    const [, deleted] = await ctx.db.batch([
      ctx.db.update(webhooks).set({ ownerId: actor.user.id }).where(eq(webhooks.ownerId, user.id)),
      ctx.db
        .delete(tokens)
        .where(and(eq(tokens.userId, user.id), sessionOrDead))
        .returning({ hash: tokens.hash, kind: tokens.kind, createdAt: tokens.createdAt }),
      ctx.db.delete(users).where(eq(users.id, user.id)),
      auditInsert(ctx.db, ctx.now, {
        actorId: actor.user.id,
        action: "user.deleted",
        targetType: "user",
        targetId: user.id,
        details: {
          username: user.username,
          webhooksHandedTo: actor.user.id,
          webhookIds: handedOver.map((webhook) => webhook.id),
        },
      }),
    ]);
    return deleted;
  } catch (error) {
    if (!errorText(error).includes("FOREIGN KEY constraint failed")) throw error;
    await assertNoLiveTokens(ctx, user.id);
    throw error;
  }
}

async function assertNoLiveTokens(ctx: ServiceContext, userId: string) {
  const owned = await ctx.db.select().from(tokens).where(eq(tokens.userId, userId));
  const live = owned.filter((token) => token.kind !== "session" && isLive(token, ctx.now));
  if (live.length === 0) return;
  throw new DomainError(
    "user_has_active_tokens",
    `This account still holds ${live.length} live token(s). Revoke or transfer them first.`,
    {
      tokens: live.map((token) => ({
        id: token.id,
        kind: token.kind,
        prefix: token.prefix,
        name: token.name,
        webhookId: token.webhookId,
        expiresAt: token.expiresAt?.toISOString() ?? null,
      })),
    },
  );
}

async function assertAnotherAdmin(ctx: ServiceContext, userId: string) {
  const other = await ctx.db.query.users.findFirst({
    where: and(eq(users.role, "admin"), eq(users.status, "active"), ne(users.id, userId)),
    columns: { id: true },
  });
  if (!other) {
    throw new DomainError("last_admin", "This is the last active admin; name another first.");
  }
}

/** A D1 failure's own words, which drizzle-orm may keep in the cause of its error. */
function errorText(error: unknown): string {
  return error instanceof Error ? `${error.message} ${String(error.cause ?? "")}` : "";
}

function usernameConflict(error: unknown, username: string): unknown {
  const message = errorText(error);
  if (message.includes("UNIQUE") && message.includes("username")) {
    return new DomainError("username_taken", `The username "${username}" is taken.`);
  }
  return error;
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
