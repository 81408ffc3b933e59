import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../http/app-env";
import { listAudit } from "../../services/audit";
import { ADMIN_ONLY, BEARER, json, problems } from "../openapi";
import { presentAuditEntry } from "../presenters";
import { AuditEntrySchema, PageQuery, pageOf } from "../schemas";

const list = createRoute({
  method: "get",
  path: "/audit",
  tags: ["Audit"],
  summary: "Who did what to which record",
  description: "Newest first. `actorId` is null where the system acted (the idle sweep).",
  middleware: ADMIN_ONLY,
  security: BEARER,
  request: { query: PageQuery },
  responses: {
    200: json(pageOf(AuditEntrySchema, "AuditPage"), "A page of audit entries"),
    ...problems(400, 401, 403),
  },
});

export const auditRoutes = new OpenAPIHono<AppEnv>().openapi(list, async (c) => {
  const page = await listAudit(c.get("services").db, c.req.valid("query"));
  return c.json({ items: page.items.map(presentAuditEntry), nextCursor: page.nextCursor }, 200);
});
