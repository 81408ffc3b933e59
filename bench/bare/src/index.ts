interface BareEnv {
  EVENTS: Queue;
}

export default {
  async fetch(request, env) {
    // `/log` adds one structured log line like the one hookgate writes per ingress call, so
    // the benchmark can price logging under `wrangler dev` on its own.
    const { pathname } = new URL(request.url);
    if (pathname === "/log") {
      console.log(
        JSON.stringify({
          level: "info",
          event: "ingress.decision",
          requestId: crypto.randomUUID(),
          webhookId: "wh_3oe4u2DVMMX8FmJYvyycYZ",
          outcome: "accepted",
          tokenId: "tok_5Qm1uZ0o3N2kP7rT9vXbYd",
        }),
      );
    }
    await env.EVENTS.send(await request.text(), { contentType: "text" });
    // `/receipt` answers as hookgate must: a JSON receipt and a request id, so the benchmark
    // can price the answer's body apart from everything else hookgate does.
    if (pathname === "/receipt") {
      const receipt = {
        id: "evt_3oe4u2DVMMX8FmJYvyycYZ",
        webhookId: "wh_3oe4u2DVMMX8FmJYvyycYZ",
        receivedAt: new Date().toISOString(),
      };
      return Response.json(receipt, {
        status: 202,
        headers: { "X-Request-Id": crypto.randomUUID() },
      });
    }
    // The address the runtime reports for the caller, so the benchmark can tell which key
    // hookgate's rate limiter sees under `wrangler dev`.
    const client = request.headers.get("CF-Connecting-IP") ?? "";
    return new Response(null, { status: 202, headers: { "X-Client-Address": client } });
  },

  async queue(batch) {
    batch.ackAll();
  },
} satisfies ExportedHandler<BareEnv>;
