import { app } from "./app";
import { consumeDeadLetters, consumeEvents } from "./queue/consumer";

export default {
  fetch: app.fetch,

  async queue(batch, env) {
    if (batch.queue === "hookgate-events-dlq") return consumeDeadLetters(batch, env);
    return consumeEvents(batch, env);
  },
} satisfies ExportedHandler<Env>;
