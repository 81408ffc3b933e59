import { createMessageBatch, createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import worker from "../../src/index";
import { instrumentedEnv } from "../../test/workers/support/instrumented-env";
import type { SweepFigures } from "./figures";

const TOKENS_PER_ACCOUNT = 3;
const DAY = 86_400_000;
/** The target: ten times the accounts in at most this many times the time. */
const SCALING_TARGET = 12;

/**
 * The larger sweep stops once it has taken `BENCH_SWEEP_CAP_FACTOR` (default: the target)
 * times the smaller one's time: past that the target is missed whatever the rest takes, and
 * the bench stays bounded. 0 lets it run to the end.
 */
const capFactor = Number(env.BENCH_SWEEP_CAP_FACTOR ?? SCALING_TARGET);
let smallerSweepMs: number | undefined;

/**
 * Seeds in SQL, so that hundreds of thousands of rows take seconds: every account was last
 * active 61 days ago, so the sweep flags all of them and purges all their tokens' facts.
 */
async function seedIdleAccounts(accounts: number, now: number) {
  await env.DB.batch([
    env.DB.prepare("delete from audit_log"),
    env.DB.prepare("delete from tokens"),
    env.DB.prepare("delete from users"),
  ]);
  await env.DB.prepare(
    `with recursive seq(n) as (select 0 union all select n + 1 from seq where n < ?1 - 1)
     insert into users (id, username, display_name, kind, role, status, last_active_at, created_at)
     select printf('usr_bench%013d', n), printf('bench-%07d', n), printf('Bench %d', n),
            'service', 'member', 'active', ?2, ?3
     from seq`,
  )
    .bind(accounts, now - 61 * DAY, now - 90 * DAY)
    .run();
  await env.DB.prepare(
    `with recursive seq(n) as (select 0 union all select n + 1 from seq where n < ?1 - 1)
     insert into tokens (id, kind, hash, prefix, name, scopes, user_id, created_at)
     select printf('tok_bench%013d', n), 'integration', printf('%064d', n), 'hgi_bench0',
            'seeded', 'send', printf('usr_bench%013d', n / ?2), ?3
     from seq`,
  )
    .bind(accounts * TOKENS_PER_ACCOUNT, TOKENS_PER_ACCOUNT, now - 90 * DAY)
    .run();
}

/**
 * Runs the sweep as the Cron Trigger would, then every job it leaves (continuations and
 * repeated purges) as its own queue invocation on freshly counted bindings, timing the
 * whole and each invocation. Workerd's clock advances with I/O, and every invocation ends
 * with I/O, so these are wall times to the last query.
 */
async function timedSweep(accounts: number, now: number, capMs: number): Promise<SweepFigures> {
  const figures: SweepFigures = {
    accounts,
    tokens: accounts * TOKENS_PER_ACCOUNT,
    finished: false,
    flaggedAccounts: 0,
    wallMs: 0,
    invocations: 0,
    maxInvocationMs: 0,
    maxD1Queries: 0,
    maxKvOperations: 0,
  };
  const record = (run: ReturnType<typeof instrumentedEnv>, startedAt: number) => {
    figures.invocations++;
    figures.maxInvocationMs = Math.max(figures.maxInvocationMs, Date.now() - startedAt);
    figures.maxD1Queries = Math.max(figures.maxD1Queries, run.counts.d1Queries);
    figures.maxKvOperations = Math.max(
      figures.maxKvOperations,
      run.counts.kvReads + run.counts.kvWrites,
    );
    return run.jobs;
  };

  const started = Date.now();
  const first = instrumentedEnv();
  await worker.scheduled(
    createScheduledController({ scheduledTime: now, cron: "17 * * * *" }),
    first.env,
  );
  // One job per invocation, as the jobs queue's batch size of 1 delivers them.
  const pending = [...record(first, started)];
  while (pending.length > 0 && Date.now() - started < capMs) {
    const next = instrumentedEnv();
    const startedAt = Date.now();
    const message = { id: `job-${figures.invocations}`, timestamp: new Date(), attempts: 1 };
    const body = pending.shift();
    await worker.queue(createMessageBatch("hookgate-jobs", [{ ...message, body }]), next.env);
    pending.push(...record(next, startedAt));
  }
  figures.wallMs = Date.now() - started;
  figures.finished = pending.length === 0;
  figures.flaggedAccounts = await count(
    "select count(*) as n from users where status = 'inactive'",
  );
  return figures;
}

async function count(sql: string): Promise<number> {
  return (await env.DB.prepare(sql).first<{ n: number }>())?.n ?? 0;
}

for (const accounts of [10_000, 100_000]) {
  it(`sweeps ${accounts} idle accounts with ${TOKENS_PER_ACCOUNT} tokens each`, async ({
    task,
  }) => {
    const now = Date.now();
    await seedIdleAccounts(accounts, now);

    const capMs =
      smallerSweepMs !== undefined && capFactor > 0
        ? capFactor * smallerSweepMs
        : Number.POSITIVE_INFINITY;

    const sweep = await timedSweep(accounts, now, capMs);

    smallerSweepMs ??= sweep.wallMs;
    task.meta.figures = { sweep };
    // A sweep that claims to be done must have done everything.
    if (sweep.finished) {
      expect(sweep.flaggedAccounts).toBe(accounts);
      expect(
        await count("select count(*) as n from users where purge_requested_at is not null"),
      ).toBe(0);
    }
  });
}
