import { z } from "@hono/zod-openapi";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { authenticate, requireAdmin } from "./authenticate";
import { ProblemSchema } from "./schemas";

/** Route middleware for a call by any active account, and for admins only. */
export const ANY_ACCOUNT = [authenticate];
export const ADMIN_ONLY = [authenticate, requireAdmin];
export const BEARER = [{ bearer: [] }];

const DESCRIPTIONS: Partial<Record<ContentfulStatusCode, string>> = {
  400: "Malformed request or invalid input (`invalid_request`, `validation_failed`)",
  401: "Missing, invalid or revoked credentials, or an inactive account",
  403: "Authenticated, but not allowed (`forbidden`, `insufficient_scope`)",
  404: "No such record, or one the caller may not see",
  409: "The request conflicts with the current state",
  413: "The body exceeds the management API's limit of 64 KiB",
  415: "A body was sent that is not `application/json` (`unsupported_media_type`)",
  429: "Too many attempts; see `Retry-After`",
};

export function json<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } };
}

export function jsonBody<T extends z.ZodType>(schema: T) {
  return { required: true, content: { "application/json": { schema } } };
}

/** The problem+json responses a route documents, keyed by status. */
export function problems(...statuses: ContentfulStatusCode[]) {
  return Object.fromEntries(
    statuses.map((status) => [
      status,
      {
        description: DESCRIPTIONS[status] ?? "Problem",
        content: { "application/problem+json": { schema: ProblemSchema } },
      },
    ]),
  );
}

export const noContent = { description: "Done; no body" };

export { z };
