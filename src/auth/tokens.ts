import { crc32, isBase62, randomBase62, sha256Hex, toBase62 } from "../shared/encoding";

export type TokenKind = "app" | "integration" | "session";

const KIND_LETTER: Record<TokenKind, string> = { app: "a", integration: "i", session: "s" };
const LETTER_KIND: Record<string, TokenKind> = { a: "app", i: "integration", s: "session" };

/** 32 base62 characters carry 190 bits of randomness, above the 160 the format requires. */
const BODY_LENGTH = 32;
const CHECK_LENGTH = 6;
const TOKEN_LENGTH = 4 + BODY_LENGTH + CHECK_LENGTH;
export const DISPLAY_PREFIX_LENGTH = 10;

export interface IssuedSecret {
  secret: string;
  hash: string;
  prefix: string;
}

/** Creates a new secret `hg<k>_<body><check>` with its hash and display prefix. */
export async function generateToken(kind: TokenKind): Promise<IssuedSecret> {
  const head = `hg${KIND_LETTER[kind]}_${randomBase62(BODY_LENGTH)}`;
  const secret = head + checksum(head);
  return { secret, hash: await sha256Hex(secret), prefix: secret.slice(0, DISPLAY_PREFIX_LENGTH) };
}

/**
 * Recognises a well-formed token and returns its kind, or null. A string that fails the
 * checksum is rejected here, before any cache or database lookup is spent on it.
 */
export function parseToken(candidate: string): TokenKind | null {
  if (candidate.length !== TOKEN_LENGTH || !candidate.startsWith("hg") || candidate[3] !== "_") {
    return null;
  }
  const kind = LETTER_KIND[candidate[2] as string];
  const head = candidate.slice(0, -CHECK_LENGTH);
  if (!kind || !isBase62(candidate.slice(4))) return null;
  return checksum(head) === candidate.slice(-CHECK_LENGTH) ? kind : null;
}

export function hashToken(secret: string): Promise<string> {
  return sha256Hex(secret);
}

function checksum(head: string): string {
  return toBase62(crc32(head), CHECK_LENGTH);
}
