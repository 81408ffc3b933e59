import type { Sender } from "../ingress/authenticate-sender";
import type { Actor, ServiceContext } from "../services/context";

/** Hono's typing of this Worker: its bindings and the per-request variables. */
export interface AppEnv {
  Bindings: Env;
  Variables: {
    requestId: string;
    services: ServiceContext;
    actor: Actor;
    sender: Sender;
  };
}
