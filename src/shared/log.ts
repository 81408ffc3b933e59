import { DrizzleQueryError } from "drizzle-orm/errors";

export type LogLevel = "debug" | "info" | "warn" | "error";

export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

let threshold = LOG_LEVELS.indexOf("info");

/** Sets the least severe level that is written; the configuration's `LOG_LEVEL`. */
export function setLogLevel(level: LogLevel): void {
  threshold = LOG_LEVELS.indexOf(level);
}

/**
 * One structured JSON line per call, if `level` is at or above `LOG_LEVEL`. Callers pass
 * ids and outcomes only: never secrets, token hashes, passwords or whole rows.
 */
export function log(level: LogLevel, event: string, fields: Record<string, unknown> = {}): void {
  if (LOG_LEVELS.indexOf(level) < threshold) return;
  const line = JSON.stringify({ level, event, ...fields });
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}

/**
 * A failure as a log line may carry it: its type and message, never a query's bound
 * parameters. drizzle-orm's DrizzleQueryError writes the SQL and every bound value (token
 * hashes, password hashes) into its message, so its cause speaks for it; and anything
 * after "params:" is cut from whatever text remains.
 */
export function errorSummary(error: unknown): string {
  const reported =
    error instanceof DrizzleQueryError && error.cause !== undefined ? error.cause : error;
  const text =
    reported instanceof Error ? `${reported.name}: ${reported.message}` : String(reported);
  const params = text.indexOf("params:");
  return params === -1 ? text : text.slice(0, params).trimEnd();
}
