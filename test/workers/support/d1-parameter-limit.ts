import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { app } from "../../../src/app";

/** Production D1 refuses a statement bound with more parameters than this. */
export const D1_MAX_BOUND_PARAMETERS = 100;
/** Production D1 refuses a string or blob value larger than this, in bytes. */
export const D1_MAX_VALUE_BYTES = 2_000_000;

/**
 * The test's own bindings, with a D1 that enforces the caps on bound parameters as
 * production does. Local D1 accepts any number and size, so without this a query that
 * fails in production passes every test.
 */
export function parameterLimitedEnv(): Env {
  const db = new Proxy(env.DB, {
    get(target, property) {
      if (property === "prepare") {
        return (sql: string) => limitBinding(target.prepare(sql), sql);
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { ...env, DB: db };
}

/** The statement, refusing parameters that production D1 would not take. */
export function limitBinding(statement: D1PreparedStatement, sql: string): D1PreparedStatement {
  const bind = statement.bind.bind(statement);
  statement.bind = (...values: unknown[]) => {
    if (values.length > D1_MAX_BOUND_PARAMETERS) {
      throw new Error(`D1 would refuse ${values.length} bound parameters: ${sql}`);
    }
    for (const value of values) {
      const bytes = valueBytes(value);
      if (bytes > D1_MAX_VALUE_BYTES) {
        throw new Error(`D1 would refuse a value of ${bytes} bytes: ${sql}`);
      }
    }
    return bind(...values);
  };
  return statement;
}

const utf8 = new TextEncoder();

function valueBytes(value: unknown): number {
  if (typeof value === "string") return utf8.encode(value).byteLength;
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return value.byteLength;
  return 0;
}

/** Calls the app with the given bindings, as `fetch` would, and waits for its deferred work. */
export async function fetchWith(bindings: Env, request: Request): Promise<Response> {
  const ctx = createExecutionContext();
  const response = await app.fetch(request, bindings, ctx);
  await waitOnExecutionContext(ctx);
  return response;
}
