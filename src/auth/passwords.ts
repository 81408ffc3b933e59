import { base64ToBytes, bytesToBase64 } from "../shared/encoding";

/** workerd refuses PBKDF2 above 100,000 iterations; we use all of them. */
const ITERATIONS = 100_000;
const SALT_BYTES = 16;
const HASH_BITS = 256;
export const PASSWORD_MIN_LENGTH = 12;
export const PASSWORD_MAX_LENGTH = 256;

export async function hashPassword(password: string): Promise<string> {
  const salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const hash = await derive(password, salt, ITERATIONS);
  return `pbkdf2-sha256$${ITERATIONS}$${bytesToBase64(salt)}$${bytesToBase64(hash)}`;
}

/**
 * Checks a password against a stored hash in constant time. With no stored hash (unknown
 * user, service account) it still derives once, so that timing does not tell them apart.
 */
export async function verifyPassword(password: string, stored: string | null): Promise<boolean> {
  const [scheme, iterations, salt, hash] = (stored ?? "").split("$");
  if (scheme !== "pbkdf2-sha256" || !iterations || !salt || !hash) {
    await derive(password, new Uint8Array(SALT_BYTES), ITERATIONS);
    return false;
  }
  const expected = base64ToBytes(hash);
  const actual = await derive(password, base64ToBytes(salt), Number(iterations));
  return crypto.subtle.timingSafeEqual(actual, expected);
}

async function derive(password: string, salt: Uint8Array, iterations: number) {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(password),
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt, iterations },
    key,
    HASH_BITS,
  );
  return new Uint8Array(bits);
}
