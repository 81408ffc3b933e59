import { sha256 } from "../shared/encoding";

/**
 * Compares two strings in constant time. `timingSafeEqual` throws on inputs of different
 * lengths, which would itself leak the length, so the fixed-length digests are compared.
 */
export async function equalInConstantTime(a: string, b: string): Promise<boolean> {
  const [left, right] = await Promise.all([sha256(a), sha256(b)]);
  return crypto.subtle.timingSafeEqual(left, right);
}
