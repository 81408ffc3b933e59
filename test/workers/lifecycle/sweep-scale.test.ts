import { createMessageBatch, createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { tokenCacheKey } from "../../../src/auth/decision-cache";
import worker from "../../../src/index";
import { instrumentedEnv } from "../support/instrumented-env";

const ACCOUNTS = 100_000;
const TOKENS_PER_ACCOUNT = 3;
const IDLE_ACCOUNTS = 5_000;
const DAY = 86_400_000;
/** Cloudflare's per-invocation limits for a Worker: D1 queries and KV operations. */
const D1_QUERY_LIMIT = 1_000;
const KV_OPERATION_LIMIT = 1_000;

/**
 * Seeds accounts and tokens in SQL, so that 400,000 rows take seconds: the first
 * `IDLE_ACCOUNTS` accounts were last active 61 days ago, the rest an hour ago.
 */
async function seed(now: number) {
  const idleAt = now - 61 * DAY;
  const recentAt = now - 3_600_000;
  await env.DB.prepare(
    `with recursive seq(n) as (select 0 union all select n + 1 from seq where n < ?1 - 1)
     insert into users (id, username, display_name, kind, role, status, last_active_at, created_at)
     select printf('usr_seed%014d', n), printf('seed-%06d', n), printf('Seed %d', n),
            case when n % 2 = 0 then 'person' else 'service' end, 'member', 'active',
            case when n < ?2 then ?3 else ?4 end, ?5
     from seq`,
  )
    .bind(ACCOUNTS, IDLE_ACCOUNTS, idleAt, recentAt, now - 90 * DAY)
    .run();
  await env.DB.prepare(
    `with recursive seq(n) as (select 0 union all select n + 1 from seq where n < ?1 - 1)
     insert into tokens (id, kind, hash, prefix, name, scopes, user_id, created_at)
     select printf('tok_seed%014d', n), 'integration', printf('%064d', n), 'hgi_seed00',
            'seeded', 'send', printf('usr_seed%014d', n / ?2), ?3
     from seq`,
  )
    .bind(ACCOUNTS * TOKENS_PER_ACCOUNT, TOKENS_PER_ACCOUNT, now - 90 * DAY)
    .run();
}

async function count(sql: string) {
  const row = await env.DB.prepare(sql).first<{ n: number }>();
  return row?.n ?? 0;
}

interface Invocation {
  /** The sweep and its continuations, or a repeat of one page's purge. */
  kind: "lifecycle" | "repurge";
  d1Queries: number;
  kvOperations: number;
  continued: boolean;
}

/**
 * Runs the sweep as the Cron Trigger would, then every job it leaves (continuations and
 * repeated purges), each as its own invocation on freshly counted bindings, as the jobs
 * queue's batch size of 1 does. `dropJobsAfter` loses the jobs left by that invocation
 * and every later one, as a run cut off there would.
 */
async function sweepToCompletion(now: number, dropJobsAfter?: number) {
  const invocations: Invocation[] = [];
  const first = instrumentedEnv();
  await worker.scheduled(
    createScheduledController({ scheduledTime: now, cron: "17 * * * *" }),
    first.env,
  );
  invocations.push(measure(first, "lifecycle"));
  const pending = [...first.jobs];

  for (let job = pending.shift(); job; job = pending.shift()) {
    if (invocations.length === dropJobsAfter) break;
    const next = instrumentedEnv();
    const message = { id: `job-${invocations.length}`, timestamp: new Date(), attempts: 1 };
    await worker.queue(createMessageBatch("hookgate-jobs", [{ ...message, body: job }]), next.env);
    invocations.push(measure(next, (job as { type: Invocation["kind"] }).type));
    pending.push(...next.jobs);
  }
  return invocations;
}

function measure(
  { counts, jobs }: ReturnType<typeof instrumentedEnv>,
  kind: Invocation["kind"],
): Invocation {
  return {
    kind,
    d1Queries: counts.d1Queries,
    kvOperations: counts.kvReads + counts.kvWrites,
    continued: jobs.some((job) => (job as { type: string }).type === "lifecycle"),
  };
}

describe("the idle sweep at scale", { timeout: 600_000 }, () => {
  it("flags idle accounts among 100,000 within budget, resuming when cut off", async () => {
    const now = Date.now();
    await seed(now);
    const cachedIdleFact = tokenCacheKey(`${"0".repeat(63)}7`);
    await env.AUTH_CACHE.put(cachedIdleFact, "{}");

    const cutOff = await sweepToCompletion(now, 3);
    const flaggedBeforeResume = await count(
      "select count(*) as n from users where status = 'inactive'",
    );
    const resumed = await sweepToCompletion(now + 3_600_000);

    const invocations = [...cutOff, ...resumed];
    const maxOf = (count: "d1Queries" | "kvOperations") =>
      Math.max(...invocations.map((invocation) => invocation[count]));
    const repurges = invocations.filter((invocation) => invocation.kind === "repurge").length;
    console.log(
      `sweep over ${ACCOUNTS} accounts / ${ACCOUNTS * TOKENS_PER_ACCOUNT} tokens: ` +
        `${invocations.length - repurges} invocations and ${repurges} repeated purges, ` +
        `max ${maxOf("d1Queries")} D1 queries, max ${maxOf("kvOperations")} KV operations ` +
        "per invocation",
    );
    for (const invocation of invocations) {
      expect(invocation.d1Queries).toBeLessThanOrEqual(D1_QUERY_LIMIT);
      expect(invocation.kvOperations).toBeLessThanOrEqual(KV_OPERATION_LIMIT);
    }
    expect(cutOff.some((invocation) => invocation.continued)).toBe(true);
    expect(flaggedBeforeResume).toBeLessThan(IDLE_ACCOUNTS);
    expect(resumed.filter((invocation) => invocation.kind === "repurge").length).toBeGreaterThan(0);
    expect(await count("select count(*) as n from users where status = 'inactive'")).toBe(
      IDLE_ACCOUNTS,
    );
    expect(
      await count(
        "select count(*) as n from users where status = 'inactive' " +
          "and id >= 'usr_seed00000000005000'",
      ),
    ).toBe(0);
    expect(
      await count("select count(*) as n from audit_log where action = 'user.deactivated'"),
    ).toBe(IDLE_ACCOUNTS);
    expect(
      await count("select count(*) as n from users where purge_requested_at is not null"),
    ).toBe(0);
    expect(await env.AUTH_CACHE.get(cachedIdleFact)).toBeNull();
  });

  it("purges an account with more tokens than one invocation may delete", async () => {
    const now = Date.now();
    const userId = "usr_manytokens00000000000";
    await env.DB.prepare(
      `insert into users (id, username, display_name, kind, role, status, last_active_at,
                          created_at)
       values (?1, 'many-tokens', 'Many tokens', 'service', 'member', 'active', ?2, ?2)`,
    )
      .bind(userId, now - 61 * DAY)
      .run();
    await env.DB.prepare(
      `with recursive seq(n) as (select 0 union all select n + 1 from seq where n < 2499)
       insert into tokens (id, kind, hash, prefix, name, scopes, user_id, created_at)
       select printf('tok_many%014d', n), 'integration', printf('many%060d', n), 'hgi_many00',
              'seeded', 'send', ?1, ?2
       from seq`,
    )
      .bind(userId, now)
      .run();
    const sampled = [0, 1234, 2499].map((n) => tokenCacheKey(`many${String(n).padStart(60, "0")}`));
    for (const key of sampled) await env.AUTH_CACHE.put(key, "{}");

    const invocations = await sweepToCompletion(now + 2 * 3_600_000);

    expect(invocations.length).toBeGreaterThanOrEqual(3);
    for (const invocation of invocations) {
      expect(invocation.kvOperations).toBeLessThanOrEqual(KV_OPERATION_LIMIT);
    }
    for (const key of sampled) expect(await env.AUTH_CACHE.get(key)).toBeNull();
    expect(
      await count(`select count(*) as n from users where id = '${userId}' and status = 'inactive'`),
    ).toBe(1);
    expect(
      await count("select count(*) as n from users where purge_requested_at is not null"),
    ).toBe(0);
  });
});
