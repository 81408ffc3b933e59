import { base64ToBytes } from "../shared/encoding";

/**
 * Parses an `Authorization` header into a Bearer or Basic credential. Hono's `bearerAuth`
 * and `basicAuth` each own one scheme and answer by themselves; the ingress needs both
 * schemes, its own status per failure (RFC 6750) and the webhook's scheme in the
 * challenge, so the parsing lives here and the decisions stay with the callers.
 */
export type Credential =
  | { scheme: "bearer"; token: string }
  | { scheme: "basic"; username: string; password: string };

export type ParsedAuthorization =
  | { kind: "missing" }
  | { kind: "malformed"; reason: string }
  | { kind: "credential"; credential: Credential };

/** RFC 6750 `b64token`; also the syntax of RFC 7617's base64 credentials. */
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** Far above any credential hookgate issues; bounds the work spent on junk. */
const MAX_HEADER_LENGTH = 4096;
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

export function parseAuthorization(header: string | null | undefined): ParsedAuthorization {
  if (header === null || header === undefined || header.trim() === "") return { kind: "missing" };
  if (header.length > MAX_HEADER_LENGTH) return malformed("The Authorization header is too long.");

  const match = /^([A-Za-z]+) +(\S+) *$/.exec(header);
  if (!match) return malformed("Expected `Bearer <token>` or `Basic <base64(username:password)>`.");
  const scheme = (match[1] as string).toLowerCase();
  const value = match[2] as string;

  if (scheme === "bearer") {
    if (!TOKEN68.test(value)) return malformed("The Bearer token has characters RFC 6750 forbids.");
    return { kind: "credential", credential: { scheme: "bearer", token: value } };
  }
  if (scheme === "basic") return parseBasic(value);
  return malformed(`The ${match[1]} scheme is not supported; use Bearer or Basic.`);
}

function parseBasic(value: string): ParsedAuthorization {
  if (!BASE64.test(value)) return malformed("The Basic credentials are not valid base64.");
  let decoded: string;
  try {
    decoded = utf8.decode(base64ToBytes(value));
  } catch {
    return malformed("The Basic credentials are not valid UTF-8.");
  }
  const colon = decoded.indexOf(":");
  if (colon < 0) return malformed("The Basic credentials must be `username:password`.");
  return {
    kind: "credential",
    credential: {
      scheme: "basic",
      username: decoded.slice(0, colon),
      password: decoded.slice(colon + 1),
    },
  };
}

function malformed(reason: string): ParsedAuthorization {
  return { kind: "malformed", reason };
}
