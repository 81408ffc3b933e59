import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../http/app-env";
import { HEALTH_HORIZON_DAYS, listAtRisk } from "../../services/webhooks";
import { ADMIN_ONLY, BEARER, json, problems, z } from "../openapi";
import { presentWebhook } from "../presenters";
import { PageQuery, pageOf, WebhookSchema } from "../schemas";

const atRisk = createRoute({
  method: "get",
  path: "/reports/at-risk",
  tags: ["Reports"],
  summary: "Webhooks about to stop working",
  description:
    "Webhooks that no credential would open if nothing happens within `withinDays` (an " +
    "owner going idle, a token expiring), those no credential opens now, and those whose " +
    "only credentials belong to person accounts. Each comes with its health and reasons. " +
    "The report walks every webhook `limit` at a time, so a page may hold fewer items; " +
    "follow `nextCursor` to the end.",
  middleware: ADMIN_ONLY,
  security: BEARER,
  request: {
    query: PageQuery.extend({
      withinDays: z.coerce.number().min(0).max(3650).default(HEALTH_HORIZON_DAYS),
    }),
  },
  responses: {
    200: json(pageOf(WebhookSchema, "AtRiskPage"), "Webhooks at risk or broken"),
    ...problems(400, 401, 403),
  },
});

export const reportRoutes = new OpenAPIHono<AppEnv>().openapi(atRisk, async (c) => {
  const services = c.get("services");
  const page = await listAtRisk(services, c.req.valid("query"));
  const origin = new URL(c.req.url).origin;
  return c.json(
    {
      items: page.items.map((view) => presentWebhook(view, origin, services.config)),
      nextCursor: page.nextCursor,
    },
    200,
  );
});
