import { sha256Hex } from "../shared/encoding";

/**
 * Compares two strings in constant time. `timingSafeEqual` throws on inputs of different
 * lengths, which would itself leak the length, so the fixed-length digests are compared.
 */
export async function equalInConstantTime(a: string, b: string): Promise<boolean> {
  const [left, right] = await Promise.all([sha256Hex(a), sha256Hex(b)]);
  const encoder = new TextEncoder();
  return crypto.subtle.timingSafeEqual(encoder.encode(left), encoder.encode(right));
}
