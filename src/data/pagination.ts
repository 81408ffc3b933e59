import { and, eq, gt, lt, or, type SQL } from "drizzle-orm";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import { DomainError } from "../shared/errors";

/** A position in a list ordered by (time, id): opaque to clients, base64url JSON to us. */
export interface Cursor {
  at: number;
  id: string;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export function encodeCursor(cursor: Cursor): string {
  return btoa(JSON.stringify([cursor.at, cursor.id]))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replaceAll("=", "");
}

export function decodeCursor(text: string | undefined): Cursor | null {
  if (text === undefined) return null;
  try {
    const json = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
    const [at, id] = JSON.parse(json) as unknown[];
    if (typeof at === "number" && typeof id === "string") return { at, id };
  } catch {
    // Falls through to the validation error below.
  }
  throw new DomainError("validation_failed", "The cursor is not one this API returned.", {
    errors: [{ field: "cursor", message: "Invalid cursor" }],
  });
}

/**
 * Turns `limit + 1` fetched rows into a page: the extra row only tells that more exist.
 */
export function toPage<Row, Item>(
  rows: Row[],
  limit: number,
  position: (row: Row) => Cursor,
  present: (row: Row) => Item,
): Page<Item> {
  const visible = rows.slice(0, limit);
  const last = visible.at(-1);
  return {
    items: visible.map(present),
    nextCursor: rows.length > limit && last ? encodeCursor(position(last)) : null,
  };
}

/**
 * The rows after `cursor` in a list ordered by (time, id), ascending or descending; no
 * condition on the first page. Ties on time are broken by id, so no row is skipped.
 */
export function afterCursor(
  cursor: Cursor | null,
  time: SQLiteColumn,
  id: SQLiteColumn,
  order: "asc" | "desc",
): SQL | undefined {
  if (!cursor) return undefined;
  const beyond = order === "asc" ? gt : lt;
  const at = new Date(cursor.at);
  return or(beyond(time, at), and(eq(time, at), beyond(id, cursor.id)));
}
