import { env } from "cloudflare:workers";
import { limitBinding } from "./d1-parameter-limit";

export interface BindingCounts {
  d1Queries: number;
  d1Writes: number;
  kvReads: number;
  kvWrites: number;
  queueSends: number;
  r2Writes: number;
}

const WRITE_SQL = /^\s*(insert|update|delete|replace)\b/i;

/**
 * The real local bindings, wrapped to count what a request does to them. Nothing is
 * simulated: every call goes through to workerd's D1, KV, Queues and R2, and D1 refuses
 * more than production's 100 bound parameters, which local D1 would accept.
 */
export function instrumentedEnv(): { env: Env; counts: BindingCounts; jobs: unknown[] } {
  const jobs: unknown[] = [];
  const counts: BindingCounts = {
    d1Queries: 0,
    d1Writes: 0,
    kvReads: 0,
    kvWrites: 0,
    queueSends: 0,
    r2Writes: 0,
  };
  const countSql = (sql: string) => {
    counts.d1Queries++;
    if (WRITE_SQL.test(sql)) counts.d1Writes++;
  };

  const db = new Proxy(env.DB, {
    get(target, property) {
      if (property === "prepare") {
        return (sql: string) => {
          countSql(sql);
          return limitBinding(target.prepare(sql), sql);
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const kv = new Proxy(env.AUTH_CACHE, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        if (property === "get" || property === "getWithMetadata" || property === "list") {
          counts.kvReads++;
        }
        if (property === "put" || property === "delete") counts.kvWrites++;
        return value.apply(target, args);
      };
    },
  });
  const queue: Queue = {
    send: (...args: Parameters<Queue["send"]>) => {
      counts.queueSends++;
      return env.EVENTS.send(...args);
    },
    sendBatch: (...args: Parameters<Queue["sendBatch"]>) => {
      counts.queueSends++;
      return env.EVENTS.sendBatch(...args);
    },
  } as Queue;
  const bucket = new Proxy(env.PAYLOADS, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        if (property === "put") counts.r2Writes++;
        return value.apply(target, args);
      };
    },
  });

  // The one binding that does not pass through: jobs (continuations and repeated purges)
  // are kept rather than sent, delay included, so that a test can run each next invocation
  // itself, on its own counted bindings, through the real jobs handler.
  const jobQueue = {
    send: async (body: unknown) => {
      counts.queueSends++;
      jobs.push(body);
    },
  } as unknown as Queue;

  return {
    env: { ...env, DB: db, AUTH_CACHE: kv, EVENTS: queue, PAYLOADS: bucket, JOBS: jobQueue },
    counts,
    jobs,
  };
}
