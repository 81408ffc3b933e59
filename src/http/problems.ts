import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ConfigError } from "../config";
import { DomainError, type ErrorCode } from "../shared/errors";
import { errorSummary, log } from "../shared/log";

export const PROBLEMS: Record<ErrorCode, { status: ContentfulStatusCode; title: string }> = {
  invalid_request: { status: 400, title: "Malformed request" },
  validation_failed: { status: 400, title: "Invalid input" },
  unauthenticated: { status: 401, title: "Authentication required" },
  invalid_credentials: { status: 401, title: "Invalid credentials" },
  account_inactive: { status: 401, title: "Account inactive" },
  token_not_valid_for_webhook: { status: 401, title: "Token not valid for this webhook" },
  wrong_auth_scheme: { status: 401, title: "Wrong authentication scheme" },
  insufficient_scope: { status: 403, title: "Insufficient scope" },
  forbidden: { status: 403, title: "Forbidden" },
  not_found: { status: 404, title: "Not found" },
  method_not_allowed: { status: 405, title: "Method not allowed" },
  already_bootstrapped: { status: 409, title: "Already bootstrapped" },
  username_taken: { status: 409, title: "Username taken" },
  user_has_active_tokens: { status: 409, title: "User has active tokens" },
  last_admin: { status: 409, title: "Last admin" },
  token_unavailable: { status: 409, title: "Token unavailable" },
  target_account_inactive: { status: 409, title: "Target account inactive" },
  event_not_dead: { status: 409, title: "Event is not dead" },
  payload_too_large: { status: 413, title: "Payload too large" },
  unsupported_media_type: { status: 415, title: "Unsupported media type" },
  rate_limited: { status: 429, title: "Too many requests" },
  service_unavailable: { status: 503, title: "Service unavailable" },
  internal_error: { status: 500, title: "Internal error" },
};

export interface ProblemOptions {
  /** Overrides the code's usual status, as login does for `account_inactive` (403). */
  status?: ContentfulStatusCode;
  headers?: Record<string, string>;
  extensions?: Record<string, unknown>;
}

/** Thrown anywhere in the HTTP layer to answer with a problem document. */
export class HttpProblem extends Error {
  override name = "HttpProblem";

  constructor(
    readonly code: ErrorCode,
    readonly detail: string,
    readonly options: ProblemOptions = {},
  ) {
    super(detail);
  }
}

/** Builds an RFC 9457 `application/problem+json` response; the one place bodies are made. */
export function problem(c: Context, code: ErrorCode, detail: string, options: ProblemOptions = {}) {
  const { status, title } = PROBLEMS[code];
  const finalStatus = options.status ?? status;
  const body = {
    type: `urn:hookgate:problem:${code}`,
    title,
    status: finalStatus,
    detail,
    code,
    requestId: c.get("requestId") ?? null,
    ...options.extensions,
  };
  return c.body(JSON.stringify(body), finalStatus, {
    "Content-Type": "application/problem+json",
    ...options.headers,
  });
}

/** The codes of Hono's refusals that are not plain malformed requests. */
const HONO_REFUSALS: Partial<Record<number, ErrorCode>> = {
  413: "payload_too_large",
  415: "unsupported_media_type",
};

/** The app's single `onError`: known failures become problems, anything else a logged 500. */
export function handleError(error: Error, c: Context) {
  if (error instanceof HttpProblem) return problem(c, error.code, error.detail, error.options);
  if (error instanceof DomainError) {
    return problem(c, error.code, error.message, { extensions: error.extensions });
  }
  if (error instanceof HTTPException && error.status < 500) {
    // Hono's own refusals, such as a body that is not the JSON its content type claims.
    return problem(c, HONO_REFUSALS[error.status] ?? "invalid_request", error.message);
  }
  if (error instanceof ConfigError) {
    log("error", "config.invalid", { requestId: c.get("requestId"), message: error.message });
    return problem(c, "internal_error", error.message);
  }
  log("error", "request.failed", { requestId: c.get("requestId"), error: errorSummary(error) });
  return problem(c, "internal_error", "An unexpected error occurred; it has been logged.");
}
