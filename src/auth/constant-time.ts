const utf8 = new TextEncoder();

/**
 * Compares a presented string with the expected one in time that depends only on the
 * presented string's length, which its sender knows anyway. `timingSafeEqual` throws on
 * inputs of different lengths, so a string of another length is compared with itself,
 * which takes as long, and the answer is false. Synchronous, unlike comparing digests.
 */
export function equalInConstantTime(presented: string, expected: string): boolean {
  const given = utf8.encode(presented);
  const wanted = utf8.encode(expected);
  const sameLength = given.byteLength === wanted.byteLength;
  return crypto.subtle.timingSafeEqual(given, sameLength ? wanted : given) && sameLength;
}
