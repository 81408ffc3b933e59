import type { Context } from "hono";

/**
 * The client's address as Cloudflare's edge saw it. The edge sets this header itself and
 * overwrites any value a client sends, so it is safe as a rate-limiting key.
 */
export function clientAddress(c: Context): string {
  return c.req.header("CF-Connecting-IP") ?? "unknown";
}
