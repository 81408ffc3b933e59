import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { inject } from "vitest";
import { bootstrapHint } from "../../scripts/bootstrap-hint.mjs";
import { call, pasteCurl } from "./http";

export const ADMIN_USERNAME = "admin";
export const ADMIN_PASSWORD = "correct-horse-battery-staple";

/** The raw answer to the shared server's one bootstrap call. */
export interface BootstrapAnswer {
  status: number;
  body: string;
}

/**
 * Bootstraps the first admin on the shared server with the curl command `npm start`
 * prints, or, if a test file already did, returns the answer it got. The server takes
 * one bootstrap only, and vitest chooses the order of the files, so whichever file asks
 * first makes the call and records its answer in the server's run directory; the files
 * run one after another, so no two ask at once.
 */
export async function firstBootstrap(): Promise<BootstrapAnswer> {
  const record = join(inject("sharedDir"), "bootstrap-answer.json");
  try {
    return JSON.parse(readFileSync(record, "utf8")) as BootstrapAnswer;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }

  // The password is fixed here, in place of the random one `npm start` makes, so that the
  // other test files can log in.
  const { command } = bootstrapHint({
    baseUrl: inject("baseUrl"),
    bootstrapToken: inject("bootstrapToken"),
    password: ADMIN_PASSWORD,
  });
  const answer = await pasteCurl(command);
  writeFileSync(record, JSON.stringify(answer), { flag: "wx", mode: 0o600 });
  return answer;
}

/** A fresh session of the first admin on the shared server, bootstrapping it if needed. */
export async function adminSession(): Promise<string> {
  const bootstrap = await firstBootstrap();
  if (bootstrap.status !== 201) {
    throw new Error(`The first bootstrap answered ${bootstrap.status}: ${bootstrap.body}`);
  }
  const login = await call<{ token: string }>("POST", "/v1/sessions", {
    json: { username: ADMIN_USERNAME, password: ADMIN_PASSWORD },
  });
  if (login.status !== 200) {
    throw new Error(`The admin's login answered ${login.status}: ${JSON.stringify(login.body)}`);
  }
  return login.body.token;
}
