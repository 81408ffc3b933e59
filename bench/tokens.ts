import { randomInt } from "node:crypto";
import { crc32 } from "node:zlib";

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BODY_LENGTH = 32;
const CHECK_LENGTH = 6;

/**
 * hookgate's token format, `hg<kind>_<32 base62><6 base62 CRC-32 of the rest>`, rebuilt here
 * because the bench runs in Node and cannot load the Worker's modules. `checksumMatches`
 * checks this copy against a token the server issued before any figure relies on it.
 */
function checksum(head: string): string {
  let rest = crc32(head);
  let out = "";
  do {
    out = BASE62[rest % 62] + out;
    rest = Math.floor(rest / 62);
  } while (rest > 0);
  return out.padStart(CHECK_LENGTH, "0");
}

/** A well-formed app token with a valid checksum that no account holds. */
export function garbageToken(): string {
  let body = "";
  for (let i = 0; i < BODY_LENGTH; i++) body += BASE62[randomInt(62)];
  const head = `hga_${body}`;
  return head + checksum(head);
}

/** A token whose checksum is wrong: the ingress refuses it before touching any binding. */
export function badChecksumToken(): string {
  const token = garbageToken();
  const last = token.at(-1) === "0" ? "1" : "0";
  return token.slice(0, -1) + last;
}

export function checksumMatches(issued: string): boolean {
  return checksum(issued.slice(0, -CHECK_LENGTH)) === issued.slice(-CHECK_LENGTH);
}
