import hookgate from "../../src/index";

/**
 * hookgate with an events consumer that only acknowledges, as the bare Worker's does: the
 * benchmark runs it beside hookgate to tell what the ingress costs from what storing every
 * event in local D1 costs, since under `wrangler dev` both share the same process.
 */
export default {
  ...hookgate,
  async queue(batch, env) {
    if (batch.queue === "hookgate-events") return batch.ackAll();
    return hookgate.queue(batch, env);
  },
} satisfies ExportedHandler<Env>;
