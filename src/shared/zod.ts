/**
 * zod as the Worker bundles it: everything but its translations of error messages, about
 * 360 KiB of the bundle before compression. `@hono/zod-openapi` hands zod's whole `z`
 * namespace to its OpenAPI extension, so the bundler keeps every export of it, `locales`
 * included; this module's own `locales` shadows that one, and the bundler drops the
 * translations. English, zod's default, stays configured. `wrangler.toml` aliases `zod`
 * here, which is why zod itself is reached by its path.
 */
export * from "../../node_modules/zod/v4/classic/external.js";

import * as z from "./zod";

export const locales = {};
/** zod's internals, which its own modules import directly; nothing here reads `z.core`. */
export const core = {};
export { z };
export default z;
