import { z } from "zod";
import { LOG_LEVELS, type LogLevel, setLogLevel } from "./shared/log";

/**
 * A number written as plain decimal digits, with an optional fraction: `Number()` alone
 * would also take `0x10`, `1e3` or `Infinity`, which nobody means in a setting.
 */
const decimal = z
  .union([z.number(), z.string().regex(/^\d+(\.\d+)?$/, "Expected a plain decimal number")])
  .transform(Number)
  .pipe(z.number());

/** Upper bounds keep every derived time within what a `Date` can hold. */
const TEN_YEARS_DAYS = 3650;
const ONE_YEAR_HOURS = 8760;

const ConfigSchema = z.object({
  /** A positive decimal, so that tests can make a day pass in seconds. */
  INACTIVITY_DAYS: decimal.pipe(z.number().positive().max(TEN_YEARS_DAYS)).default(60),
  AUTH_CACHE_TTL_SECONDS: decimal.pipe(z.number().int().min(60).max(86_400)).default(300),
  ACTIVITY_WRITE_INTERVAL_SECONDS: decimal.pipe(z.number().int().min(0).max(86_400)).default(3600),
  MAX_PAYLOAD_BYTES: decimal.pipe(z.number().int().positive()).default(6 * 1024 * 1024),
  SESSION_TTL_HOURS: decimal.pipe(z.number().positive().max(ONE_YEAR_HOURS)).default(12),
  EVENT_RETENTION_DAYS: decimal.pipe(z.number().positive().max(TEN_YEARS_DAYS)).default(7),
  LOG_LEVEL: z.enum(LOG_LEVELS).default("info"),
});

export interface Config {
  inactivityMs: number;
  authCacheTtlSeconds: number;
  activityWriteIntervalMs: number;
  maxPayloadBytes: number;
  sessionTtlMs: number;
  eventRetentionMs: number;
  logLevel: LogLevel;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

export const DAY_MS = 86_400_000;
const parsed = new WeakMap<object, Config>();

/**
 * Reads the variables once per `env` object. An empty string counts as unset; any other
 * value that does not parse fails loudly with the variable's name, never a silent default.
 */
export function readConfig(env: Env): Config {
  const cached = parsed.get(env);
  if (cached) return cached;

  const raw = Object.fromEntries(
    Object.keys(ConfigSchema.shape).map((name) => {
      const value = (env as unknown as Record<string, unknown>)[name];
      return [name, value === "" ? undefined : value];
    }),
  );
  const result = ConfigSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map(
      (issue) => `${issue.path.join(".")}: ${issue.message}`,
    );
    throw new ConfigError(`Invalid configuration: ${problems.join("; ")}`);
  }

  const values = result.data;
  const config: Config = {
    inactivityMs: values.INACTIVITY_DAYS * DAY_MS,
    authCacheTtlSeconds: values.AUTH_CACHE_TTL_SECONDS,
    activityWriteIntervalMs: values.ACTIVITY_WRITE_INTERVAL_SECONDS * 1000,
    maxPayloadBytes: values.MAX_PAYLOAD_BYTES,
    sessionTtlMs: values.SESSION_TTL_HOURS * 3_600_000,
    eventRetentionMs: values.EVENT_RETENTION_DAYS * DAY_MS,
    logLevel: values.LOG_LEVEL,
  };
  setLogLevel(config.logLevel);
  parsed.set(env, config);
  return config;
}
