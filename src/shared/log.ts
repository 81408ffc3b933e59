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
