export type LogLevel = "debug" | "info" | "warn" | "error";

/**
 * One structured JSON line per call. Callers pass ids and outcomes only: never secrets,
 * token hashes, passwords or whole rows.
 */
export function log(level: LogLevel, event: string, fields: Record<string, unknown> = {}): void {
  const line = JSON.stringify({ level, event, ...fields });
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}
