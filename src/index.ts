import { app } from "./app";
import { type LifecycleJob, runLifecycle } from "./lifecycle";
import { type RepurgeJob, runRepurge } from "./lifecycle/purge";
import { consumeDeadLetters, consumeEvents } from "./queue/consumer";

export default {
  fetch: app.fetch,

  async queue(batch, env) {
    if (batch.queue === "hookgate-events-dlq") return consumeDeadLetters(batch, env);
    if (batch.queue === "hookgate-jobs") {
      // The jobs consumer takes one message per invocation, so each gets a whole budget.
      for (const message of batch.messages) {
        const job = message.body as LifecycleJob | RepurgeJob;
        if (job.type === "repurge") await runRepurge(env, job);
        else await runLifecycle(env, new Date(), job);
        message.ack();
      }
      return;
    }
    return consumeEvents(batch, env);
  },

  async scheduled(controller, env) {
    await runLifecycle(env, new Date(controller.scheduledTime));
  },
} satisfies ExportedHandler<Env>;
