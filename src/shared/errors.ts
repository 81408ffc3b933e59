/**
 * The closed set of error codes hookgate answers with. Services throw `DomainError`
 * with one of these; only the HTTP layer (`src/http/problems.ts`) knows their statuses.
 */
export const ERROR_CODES = [
  "invalid_request",
  "validation_failed",
  "unauthenticated",
  "invalid_credentials",
  "account_inactive",
  "token_not_valid_for_webhook",
  "wrong_auth_scheme",
  "insufficient_scope",
  "forbidden",
  "not_found",
  "method_not_allowed",
  "already_bootstrapped",
  "username_taken",
  "user_has_active_tokens",
  "last_admin",
  "token_unavailable",
  "target_account_inactive",
  "event_not_dead",
  "payload_too_large",
  "unsupported_media_type",
  "rate_limited",
  "service_unavailable",
  "internal_error",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class DomainError extends Error {
  override name = "DomainError";

  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Extra members for the problem body, such as the tokens that block a deletion. */
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export function notFound(what: string): DomainError {
  return new DomainError("not_found", `${what} does not exist.`);
}
