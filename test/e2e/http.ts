import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { inject } from "vitest";

export interface Answer<T> {
  status: number;
  headers: Headers;
  /** Parsed JSON for JSON and problem+json answers, the text otherwise. */
  body: T;
}

export interface CallOptions {
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** The exact `Authorization` header, e.g. a webhook's ready-made credentials. */
  authorization?: string;
  /** Serialised and sent as `application/json`. */
  json?: unknown;
  /** Further headers, e.g. an `X-Request-Id` to find the call's log line by. */
  headers?: Record<string, string>;
}

/**
 * Calls the server under test over real HTTP. `target` is a path on it or an absolute URL.
 * The body type is the caller's claim about the answer, not checked here.
 */
export async function call<T = unknown>(
  method: string,
  target: string,
  options: CallOptions = {},
): Promise<Answer<T>> {
  const headers = new Headers(options.headers);
  if (options.token !== undefined) headers.set("Authorization", `Bearer ${options.token}`);
  if (options.authorization !== undefined) headers.set("Authorization", options.authorization);
  if (options.json !== undefined) headers.set("Content-Type", "application/json");

  const response = await fetch(new URL(target, inject("baseUrl")), {
    method,
    headers,
    body: options.json === undefined ? undefined : JSON.stringify(options.json),
  });
  const text = await response.text();
  const isJson = /[/+]json\b/.test(response.headers.get("Content-Type") ?? "");
  return {
    status: response.status,
    headers: response.headers,
    body: (isJson ? JSON.parse(text) : text) as T,
  };
}

const execFileAsync = promisify(execFile);

/**
 * Runs a curl command line in `sh`, as a reader pasting it into a terminal would; returns
 * the status and the raw body.
 */
export async function pasteCurl(commandLine: string): Promise<{ status: number; body: string }> {
  // Appended, curl's -w reports the status after the body.
  const { stdout } = await execFileAsync("sh", ["-c", `${commandLine} -w '\n%{http_code}'`]);
  return statusAndBody(stdout);
}

function statusAndBody(stdout: string) {
  const cut = stdout.lastIndexOf("\n");
  return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) };
}

/** Runs curl as a reader of the README would; returns the status and the raw body. */
export async function curl(args: string[]): Promise<{ status: number; body: string }> {
  const { stdout } = await execFileAsync("curl", ["-sS", "-w", "\n%{http_code}", ...args]);
  return statusAndBody(stdout);
}
