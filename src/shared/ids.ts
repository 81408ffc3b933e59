import { randomBase62, toBase62 } from "./encoding";

export type IdKind = "usr" | "wh" | "tok" | "evt" | "aud";
type TimeOrderedKind = Extract<IdKind, "evt" | "aud">;

const ID_LENGTH = 22;
/** Milliseconds since 1970 in 8 base62 digits: enough until the year 8900. */
const TIME_DIGITS = 8;
/** The characters of a time-ordered id after its time. */
const TIME_ORDERED_RANDOM_LENGTH = ID_LENGTH - TIME_DIGITS;

/**
 * Public record ids: a kind prefix and 22 base62 characters (131 bits), so that ids,
 * webhook ids above all, cannot be guessed or enumerated.
 */
export function newId(kind: IdKind): string {
  return `${kind}_${randomBase62(ID_LENGTH)}`;
}

/**
 * Ids for rows appended in time order, events and audit entries: the same shape as
 * `newId`, but the first 8 characters are the time in milliseconds, so that ids made later
 * sort later (the alphabet is in ASCII order). SQLite keeps a primary key in a B-tree: a
 * random key lands on a random leaf page, so a batch of 100 inserts rewrites about 100
 * pages once the table is large, where time-ordered keys fill its last page or two. The 14
 * random characters (83 bits) keep the ids unguessable, and the time they show is the one
 * each event's receipt and each audit entry state anyway.
 */
export function newTimeOrderedId(kind: TimeOrderedKind, at: Date): string {
  return `${timeOrderedIdPrefix(kind, at)}${randomBase62(TIME_ORDERED_RANDOM_LENGTH)}`;
}

/** A time-ordered id up to its random characters: the kind and the time. */
export function timeOrderedIdPrefix(kind: TimeOrderedKind, at: Date): string {
  return `${kind}_${toBase62(at.getTime(), TIME_DIGITS)}`;
}
