import { createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import worker from "../../../src/index";

const DAY = 86_400_000;

interface Captured {
  sql: string;
  params: unknown[];
}

/** The real D1 binding, recording every statement with its parameters. */
function recordingDb(captured: Captured[]): D1Database {
  const wrap = (statement: D1PreparedStatement, sql: string): D1PreparedStatement =>
    new Proxy(statement, {
      get(target, property) {
        if (property === "bind") {
          return (...params: unknown[]) => {
            captured.push({ sql, params });
            return target.bind(...params);
          };
        }
        const value = Reflect.get(target, property, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  return new Proxy(env.DB, {
    get(target, property) {
      if (property === "prepare") return (sql: string) => wrap(target.prepare(sql), sql);
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * SQLite's planner has no statistics on D1 and can prefer a short index prefix to a list of
 * primary keys, turning a page of 50 accounts into a scan of all of them. Plans do not
 * depend on the data, so a handful of accounts shows what 100,000 would get.
 */
it("reaches the accounts of a sweep page by their primary key", async () => {
  const now = Date.now();
  await env.DB.prepare(
    `with recursive seq(n) as (select 0 union all select n + 1 from seq where n < 59)
     insert into users (id, username, display_name, kind, role, status, last_active_at,
                        created_at)
     select printf('usr_plan%014d', n), printf('plan-%03d', n), 'Plan', 'service', 'member',
            'active', ?1, ?1
     from seq`,
  )
    .bind(now - 90 * DAY)
    .run();
  const captured: Captured[] = [];

  await worker.scheduled(createScheduledController({ scheduledTime: now, cron: "17 * * * *" }), {
    ...env,
    DB: recordingDb(captured),
  });

  const touchingUsers = captured.filter(({ sql }) => /\busers\b/.test(sql));
  expect(touchingUsers.length).toBeGreaterThan(3);
  for (const { sql, params } of touchingUsers) {
    const plan = await env.DB.prepare(`explain query plan ${sql}`)
      .bind(...params)
      .all<{ detail: string }>();
    const steps = plan.results.map((step) => step.detail);
    const pagedByIdleness = /order by "users"."last_active_at"/.test(sql);
    for (const step of steps.filter((detail) => / users /.test(detail))) {
      if (pagedByIdleness) expect(step, sql).toMatch(/users_status_last_active_idx/);
      else expect(step, sql).not.toMatch(/SCAN|users_status_last_active_idx/);
    }
  }
});
