import { type Column, type SQL, sql } from "drizzle-orm";

/**
 * `column in (ids)` with the whole list as one bound parameter. D1 refuses a statement
 * with more than 100 bound parameters, and a page of 100 ids plus a query's other
 * conditions would pass that; SQLite's `json_each` expands the JSON array, and the
 * column's index is still used to find each id.
 */
export function inIdList(column: Column, ids: readonly string[]): SQL {
  return sql`${column} in (select value from json_each(${JSON.stringify(ids)}))`;
}
