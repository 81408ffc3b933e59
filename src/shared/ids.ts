import { randomBase62 } from "./encoding";

export type IdKind = "usr" | "wh" | "tok" | "evt" | "aud";

/**
 * Public record ids: a kind prefix and 22 base62 characters (131 bits), so that ids,
 * webhook ids above all, cannot be guessed or enumerated.
 */
export function newId(kind: IdKind): string {
  return `${kind}_${randomBase62(22)}`;
}
