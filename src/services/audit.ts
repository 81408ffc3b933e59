import { desc } from "drizzle-orm";
import type { Database } from "../data/db";
import { afterCursor, decodeCursor, toPage } from "../data/pagination";
import { type AuditEntry, auditLog } from "../data/schema";
import { newTimeOrderedId } from "../shared/ids";

export interface AuditRecord {
  actorId: string | null;
  action: string;
  targetType: AuditEntry["targetType"];
  targetId: string;
  details?: Record<string, unknown>;
}

/** An insert to run in the same batch as the change it records. */
export function auditInsert(db: Database, at: Date, record: AuditRecord) {
  return db.insert(auditLog).values({
    id: newTimeOrderedId("aud", at),
    at,
    actorId: record.actorId,
    action: record.action,
    targetType: record.targetType,
    targetId: record.targetId,
    details: JSON.stringify(record.details ?? {}),
  });
}

export async function listAudit(db: Database, query: { limit: number; cursor?: string }) {
  const cursor = decodeCursor(query.cursor);
  const rows = await db
    .select()
    .from(auditLog)
    .where(afterCursor(cursor, auditLog.at, auditLog.id, "desc"))
    .orderBy(desc(auditLog.at), desc(auditLog.id))
    .limit(query.limit + 1);
  return toPage(
    rows,
    query.limit,
    (row) => ({ at: row.at.getTime(), id: row.id }),
    (row) => row,
  );
}
