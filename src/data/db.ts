import { drizzle } from "drizzle-orm/d1";
import * as schema from "./schema";

export type Database = ReturnType<typeof build>;

function build(binding: D1Database) {
  return drizzle(binding, { schema });
}

const handles = new WeakMap<D1Database, Database>();

/**
 * The drizzle handle for a D1 binding, built once per binding and isolate: building it
 * walks the whole schema, which would otherwise cost every request, the warm ingress path
 * included, although that path never queries D1.
 */
export function openDatabase(binding: D1Database): Database {
  let handle = handles.get(binding);
  if (!handle) {
    handle = build(binding);
    handles.set(binding, handle);
  }
  return handle;
}
