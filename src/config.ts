import { z } from "zod";
import { LOG_LEVELS, type LogLevel, setLogLevel } from "./shared/log";

const positiveInteger = (fallback: number) => z.coerce.number().int().positive().default(fallback);

const ConfigSchema = z.object({
  /** A positive decimal, so that tests can make a day pass in seconds. */
  INACTIVITY_DAYS: z.coerce.number().positive().default(60),
  AUTH_CACHE_TTL_SECONDS: z.coerce.number().int().min(60).default(300),
  ACTIVITY_WRITE_INTERVAL_SECONDS: z.coerce.number().int().min(0).default(3600),
  MAX_PAYLOAD_BYTES: positiveInteger(6 * 1024 * 1024),
  SESSION_TTL_HOURS: z.coerce.number().positive().default(12),
  EVENT_RETENTION_DAYS: z.coerce.number().positive().default(7),
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

const DAY_MS = 86_400_000;
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
