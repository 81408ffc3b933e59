// How `npm start` tells a developer to create the first admin on an empty database. Kept
// apart from start.mjs, which starts a server on import, so that a test can run the command.
import { randomBytes } from "node:crypto";

/**
 * 24 characters of base64url: far above the 12-character minimum, and nothing that needs
 * quoting in JSON or inside the shell's single quotes.
 */
function newPassword() {
  return randomBytes(18).toString("base64url");
}

/**
 * The text to print and the curl command in it, ready to paste as it is. The password is
 * made here rather than left as a placeholder to fill in: the API would take any
 * placeholder of 12 characters or more as the password, and a pasted one would stay the
 * admin's password.
 *
 * @param {{ baseUrl: string, bootstrapToken: string, password?: string }} options
 * @returns {{ command: string, password: string, text: string }}
 */
export function bootstrapHint({ baseUrl, bootstrapToken, password = newPassword() }) {
  const body = JSON.stringify({ username: "admin", password });
  const command =
    `curl -sS -X POST ${baseUrl}/v1/bootstrap ` +
    `-H "Authorization: Bearer ${bootstrapToken}" -H "Content-Type: application/json" ` +
    `-d '${body}'`;
  const text = `
The local database has no accounts yet. Once the server below is ready, create the first
admin with the command below. It sets this password, made just now and printed only here
(keep it, or change it later with PUT /v1/users/{id}/password):

  ${password}

The answer holds a session token and an integration token; store them.

  ${command}
`;
  return { command, password, text };
}
