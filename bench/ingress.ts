import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  type ConsumerFigures,
  type ConsumerInvocation,
  consumerFigures,
  followConsumer,
} from "./consumer-log.ts";
import { type LoadResult, mergeLoad, quantile, runLoad, type Shot } from "./load.ts";
import { type DevServer, ROOT, type ServerCpu, startDevServer } from "./processes.ts";
import { badChecksumToken, checksumMatches, garbageToken } from "./tokens.ts";

export interface LoadSettings {
  /** Sets of servers, each started afresh. */
  rounds: number;
  /** Cycles of the paired scenarios on each set of servers. */
  cyclesPerRound: number;
  /** How long one paired scenario is loaded in one cycle. */
  secondsPerSlice: number;
  connections: number;
  coldTokens: number;
  /** Keeps wrangler's local trace recorder on in every server (see README). */
  localTraces: boolean;
}

export interface ScenarioFigures {
  name: string;
  /** Answers with an expected status per second; failures never count. */
  requestsPerSecond: number;
  p50Ms: number | null;
  p99Ms: number | null;
  /**
   * Each slice's rate and p99, in the order they ran, and the round each ran in. A paired
   * scenario's k-th slice ran in the run's k-th cycle, next to the k-th slice of every other
   * paired scenario; the others have one slice per round.
   */
  sliceRates: number[];
  sliceP99Ms: (number | null)[];
  sliceRounds: number[];
  /**
   * CPU time of the server's processes per request sent, load generator excluded, in all
   * and by process. The events consumer's work lands here too, except for a slice's last
   * batch, which may run while the next scenario is loaded (a few milliseconds in seconds).
   */
  cpuMsPerRequest: (ServerCpu & { total: number }) | null;
  statuses: Record<number, number>;
  unexpected: Record<number, number>;
  errors: number;
  /** hookgate's events consumer during the scenario's rounds, where it is followed. */
  consumer?: ConsumerFigures;
}

export interface IngressFigures {
  /** The address the Worker sees as `CF-Connecting-IP` when a client sends none. */
  clientAddressSeen: string;
  /**
   * How often `wrangler dev` rebuilt a server during the run because a source file
   * changed: each rebuild empties the isolate's caches, so the figures are then suspect.
   */
  reloads: number;
  scenarios: ScenarioFigures[];
}

/**
 * The dev servers: one per paired scenario, and one more hookgate for the scenarios that
 * only explain; the bare Worker's explanatory scenario runs on the receipt's server once its
 * cycles are over. A dev server's tail latency grows with the requests it has served (two
 * copies of the bare Worker, one of which had served 61,000 requests first: p99 106 against
 * 69 ms at the same rate), so servers whose figures are compared must serve alike.
 */
type ServerName = "bare" | "bareControl" | "bareExtras" | "bearer" | "basic" | "ackOnly" | "extras";

interface Scenario {
  name: string;
  server: ServerName;
  expected: readonly number[];
  shot: (index: number) => Shot;
  /**
   * Compared with the bare Worker slice by slice: it runs once in every cycle (see
   * `cycleOrder`). The other scenarios explain the figures rather than being judged, and run
   * once a round, for half a slice.
   */
  paired?: boolean;
  /** Requests per round for a scenario bounded by count (each cold token is used once). */
  perRound?: number;
  /** False when a warm-up would spend the rate limiter's budget before the rounds. */
  warmUp?: boolean;
  /** Notes when the server's events consumer ran, to line its runs up with slow answers. */
  followConsumer?: boolean;
}

/** The scenarios the targets compare. */
export const BARE = "bare Worker (enqueue only)";
export const WARM_BEARER = "warm, Bearer";
export const WARM_BASIC = "warm, Basic";
export const BARE_CONTROL = "bare Worker, second server (control)";
const BARE_RECEIPT = "bare Worker + hookgate's receipt";
const WARM_ACK_ONLY = "warm, Bearer, consumer only acknowledging";

/** A small JSON delivery, the same for every scenario. */
const PAYLOAD = JSON.stringify({
  type: "order.created",
  id: "ord_0000000001",
  amount: { value: 4200, currency: "EUR" },
  customer: { id: "cus_0000000001", email: "someone@example.com" },
  items: [{ sku: "SKU-1", quantity: 2 }],
});
/** Each server's warm-up, shared among the scenarios it serves. */
const WARM_UP_MS = 2_000;
/** Every hookgate server of a run starts with this one; it only ever opens local servers. */
const BOOTSTRAP_TOKEN = randomBytes(32).toString("base64url");

/**
 * Runs the scenarios in rounds, each on servers started for it under `wrangler dev` and
 * prepared over hookgate's API. In a round, the paired scenarios take turns in cycles of
 * one slice each, so that each is measured within seconds of the bare Worker and a drift
 * of the machine weighs on all of them alike; then the other scenarios run once, in
 * reverse order in odd rounds. Fresh servers each round keep any one server's age or state
 * from weighing on one scenario's figures.
 */
export async function measureIngress(dir: string, settings: LoadSettings): Promise<IngressFigures> {
  const slices = new Map<string, Slice[]>();
  let clientAddressSeen = "";
  let reloads = 0;
  for (let round = 0; round < settings.rounds; round++) {
    const progress = (step: string) =>
      process.stdout.write(`  round ${round + 1}/${settings.rounds}: ${step}\n`);
    progress("starting the servers");
    await withServers(dir, `r${round + 1}`, settings, async (servers) => {
      if (round === 0) {
        const seen = await fetch(servers.bare.baseUrl, { method: "POST", body: "{}" });
        clientAddressSeen = seen.headers.get("X-Client-Address") ?? "";
      }
      const scenarios = await prepareScenarios(servers, settings);
      await warmUp(scenarios, servers, settings);
      const measure = async (scenario: Scenario) => {
        const done = slices.get(scenario.name) ?? [];
        done.push({ round, ...(await loadOnce(scenario, servers, settings)) });
        slices.set(scenario.name, done);
      };
      const paired = scenarios.filter((scenario) => scenario.paired);
      for (let cycle = 0; cycle < settings.cyclesPerRound; cycle++) {
        progress(`paired scenarios, cycle ${cycle + 1}/${settings.cyclesPerRound}`);
        for (const scenario of cycleOrder(paired, round * settings.cyclesPerRound + cycle)) {
          await measure(scenario);
        }
      }
      const others = scenarios.filter((scenario) => !scenario.paired);
      for (const scenario of round % 2 === 0 ? others : [...others].reverse()) {
        progress(scenario.name);
        await measure(scenario);
      }
      reloads += Object.values(servers)
        .map((server) => readFileSync(server.logPath, "utf8").split("Reloading local server"))
        .reduce((sum, parts) => sum + parts.length - 1, 0);
    });
  }
  const scenarios = [...slices].map(([name, done]) => summarise(name, done));
  return { clientAddressSeen, reloads, scenarios };
}

/**
 * The order of the paired scenarios in the run's `cycle`-th cycle: rotated by one place a
 * cycle, and reversed in every other pass of `scenarios.length` cycles. Over two passes each
 * scenario runs in every place twice and follows its neighbours as often as it precedes
 * them, so that neither the place in a cycle nor the scenario run just before favours one.
 */
export function cycleOrder<T>(scenarios: readonly T[], cycle: number): T[] {
  const n = scenarios.length;
  const rotated = scenarios.map((_, place) => scenarios[(place + cycle) % n] as T);
  return Math.floor(cycle / n) % 2 === 0 ? rotated : rotated.reverse();
}

/** Starts every server, runs `use` with them, and stops them all whatever happens. */
async function withServers(
  dir: string,
  suffix: string,
  settings: LoadSettings,
  use: (servers: Record<ServerName, DevServer>) => Promise<void>,
) {
  const startHookgate = (label: string, script?: string) =>
    startDevServer({
      label: `${label}-${suffix}`,
      dir,
      configPath: join(ROOT, "wrangler.toml"),
      script,
      vars: { BOOTSTRAP_TOKEN },
      migrate: true,
      localTraces: settings.localTraces,
      isReady: async (url) => (await fetch(`${url}/v1/openapi.json`)).status === 200,
    });
  const startBare = (label: string) =>
    startDevServer({
      label: `${label}-${suffix}`,
      dir,
      configPath: join(ROOT, "bench", "bare", "wrangler.toml"),
      localTraces: settings.localTraces,
      isReady: async (url) => (await fetch(url, { method: "POST", body: "{}" })).status === 202,
    });
  const starts: Record<ServerName, () => Promise<DevServer>> = {
    bare: () => startBare("bare"),
    bareControl: () => startBare("bare-control"),
    bareExtras: () => startBare("bare-extras"),
    bearer: () => startHookgate("hookgate-bearer"),
    basic: () => startHookgate("hookgate-basic"),
    ackOnly: () => startHookgate("hookgate-ack-only", join(ROOT, "bench", "ack-only", "index.ts")),
    extras: () => startHookgate("hookgate-extras"),
  };
  const names = Object.keys(starts) as ServerName[];
  const started = await Promise.allSettled(names.map((name) => starts[name]()));
  const running = started.flatMap((result) =>
    result.status === "fulfilled" ? [result.value] : [],
  );
  try {
    const failed = started.find((result) => result.status === "rejected");
    if (failed) throw failed.reason;
    // Nothing failed, so `running` holds every server in the order of `names`.
    await use(
      Object.fromEntries(names.map((name, i) => [name, running[i]])) as Record<
        ServerName,
        DevServer
      >,
    );
  } finally {
    await Promise.all(running.map((server) => server.stop()));
  }
}

/** Creates the first admin and a webhook with its first token. */
async function bootstrapWithHook(baseUrl: string, authMethod: "bearer" | "basic") {
  const admin = await postJson(baseUrl, "/v1/bootstrap", BOOTSTRAP_TOKEN, {
    username: "bench-admin",
    password: randomBytes(18).toString("base64url"),
  });
  if (!checksumMatches(admin.integrationToken.secret)) {
    throw new Error("bench/tokens.ts no longer computes hookgate's token checksum");
  }
  const session: string = admin.sessionToken;
  const hook = await postJson(baseUrl, "/v1/webhooks", session, {
    name: `bench ${authMethod}`,
    authMethod,
  });
  return {
    session,
    webhookId: hook.webhook.id as string,
    authorization: hook.credentials.authorization as string,
  };
}

/**
 * The payload to one of the bare Worker's paths, with the headers of a warm Bearer call:
 * compared servers get the same request, down to the credential that only hookgate reads.
 */
function toBare(path: string, authorization: string): Shot {
  return {
    path,
    headers: { Authorization: authorization, "Content-Type": "application/json" },
    body: PAYLOAD,
  };
}

/** A delivery of the payload to a webhook, from `client` when one is given. */
function toHook(webhookId: string, authorization: string, client?: string): Shot {
  return {
    path: `/hooks/${webhookId}`,
    headers: {
      Authorization: authorization,
      "Content-Type": "application/json",
      ...(client && { "CF-Connecting-IP": client }),
    },
    body: PAYLOAD,
  };
}

/**
 * Prepares a round's hookgate servers over their API: admin, webhooks, and the round's
 * share of tokens for the cold path.
 */
async function prepareScenarios(
  servers: Record<ServerName, DevServer>,
  settings: LoadSettings,
): Promise<Scenario[]> {
  const prepare = (name: ServerName, authMethod: "bearer" | "basic" = "bearer") =>
    bootstrapWithHook(servers[name].baseUrl, authMethod);
  const coldPerRound = Math.floor(settings.coldTokens / settings.rounds);
  const [bearer, basic, ackOnly, extras] = await Promise.all([
    prepare("bearer"),
    prepare("basic", "basic"),
    prepare("ackOnly"),
    prepare("extras"),
  ]);
  const coldAuthorizations: string[] = [];
  for (let i = 0; i < coldPerRound; i++) {
    const issued = await postJson(
      servers.extras.baseUrl,
      `/v1/webhooks/${extras.webhookId}/tokens`,
      extras.session,
      { name: `cold ${i}` },
    );
    coldAuthorizations.push(issued.credentials.authorization);
  }

  // Under `wrangler dev` every caller is 127.0.0.1 unless it sends `CF-Connecting-IP`
  // itself (the edge would overwrite it). Scenarios that stand for many senders send one
  // address per request, so the limiter's per-client budget does not throttle the path.
  let addresses = 0;
  const nextAddress = () => {
    const n = addresses++;
    return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
  };
  let coldUsed = 0;
  return [
    {
      name: BARE,
      server: "bare",
      expected: [202],
      paired: true,
      shot: () => toBare("/", bearer.authorization),
    },
    {
      // The same Worker on another server: how far apart two copies of one Worker measure,
      // which is as fine a difference as the run can tell.
      name: BARE_CONTROL,
      server: "bareControl",
      expected: [202],
      paired: true,
      shot: () => toBare("/", bearer.authorization),
    },
    {
      name: "bare Worker + one log line",
      server: "bareExtras",
      expected: [202],
      shot: () => toBare("/log", bearer.authorization),
    },
    {
      // What the receipt and request id that every 202 must carry cost: the bare Worker
      // answering as hookgate does, to be weighed against the warm scenarios.
      name: BARE_RECEIPT,
      server: "bareExtras",
      expected: [202],
      paired: true,
      shot: () => toBare("/receipt", bearer.authorization),
    },
    {
      name: WARM_BEARER,
      server: "bearer",
      expected: [202],
      paired: true,
      followConsumer: true,
      shot: () => toHook(bearer.webhookId, bearer.authorization),
    },
    {
      name: WARM_BASIC,
      server: "basic",
      expected: [202],
      paired: true,
      shot: () => toHook(basic.webhookId, basic.authorization),
    },
    {
      // What storing events costs the ingress when both share one process: the same
      // ingress, with a consumer that acknowledges and stores nothing.
      name: WARM_ACK_ONLY,
      server: "ackOnly",
      expected: [202],
      paired: true,
      followConsumer: true,
      shot: () => toHook(ackOnly.webhookId, ackOnly.authorization),
    },
    {
      // Hono and the app-wide middleware, then the not-found answer: no ingress code at all.
      name: "no such route (404)",
      server: "extras",
      expected: [404],
      shot: () => ({ ...toHook(extras.webhookId, extras.authorization), path: "/bench" }),
    },
    {
      // The ingress up to the checksum, its log line and a 401: still no binding.
      name: "bad checksum (401, no binding)",
      server: "extras",
      expected: [401],
      shot: () => toHook(extras.webhookId, `Bearer ${badChecksumToken()}`),
    },
    {
      name: "garbage tokens, one address",
      server: "extras",
      expected: [401, 429],
      shot: () => toHook(extras.webhookId, `Bearer ${garbageToken()}`),
      warmUp: false,
    },
    {
      name: "garbage tokens, new address each",
      server: "extras",
      expected: [401, 429],
      shot: () => toHook(extras.webhookId, `Bearer ${garbageToken()}`, nextAddress()),
    },
    {
      name: "cold: first use of a token",
      server: "extras",
      expected: [202],
      perRound: coldPerRound,
      shot: () => toHook(extras.webhookId, coldAuthorizations[coldUsed++] ?? "", nextAddress()),
    },
  ];
}

function load(
  scenario: Scenario,
  servers: Record<ServerName, DevServer>,
  settings: LoadSettings,
  durationMs: number,
) {
  return runLoad({
    baseUrl: servers[scenario.server].baseUrl,
    connections: settings.connections,
    shot: scenario.shot,
    expected: scenario.expected,
    durationMs: scenario.perRound === undefined ? durationMs : undefined,
    maxRequests: scenario.perRound ?? Number.POSITIVE_INFINITY,
  });
}

/**
 * Loads every server for the same time first, shared among the scenarios it serves, so that
 * no slice meets a cold isolate or JIT and no server comes to the cycles better warmed than
 * another.
 */
async function warmUp(
  scenarios: Scenario[],
  servers: Record<ServerName, DevServer>,
  settings: LoadSettings,
) {
  const warmable = scenarios.filter(
    (scenario) => scenario.perRound === undefined && scenario.warmUp !== false,
  );
  for (const name of Object.keys(servers) as ServerName[]) {
    const served = warmable.filter((scenario) => scenario.server === name);
    for (const scenario of served) {
      await load(scenario, servers, settings, WARM_UP_MS / served.length);
    }
  }
}

/** Runs one slice of a scenario, with its server's CPU and, if followed, consumer runs. */
async function loadOnce(
  scenario: Scenario,
  servers: Record<ServerName, DevServer>,
  settings: LoadSettings,
): Promise<Omit<Slice, "round">> {
  const server = servers[scenario.server];
  const follower = scenario.followConsumer
    ? followConsumer(server.logPath, "hookgate-events")
    : undefined;
  const cpuBefore = server.cpu();
  const durationMs = (scenario.paired ? 1000 : 500) * settings.secondsPerSlice;
  const result = await load(scenario, servers, settings, durationMs);
  const cpuAfter = server.cpu();
  return {
    result,
    cpu: cpuBefore && cpuAfter && subtractCpu(cpuAfter, cpuBefore),
    consumerRuns: follower?.stop(),
  };
}

/** Pools a scenario's slices into its figures. */
function summarise(name: string, done: Slice[]): ScenarioFigures {
  const total = done.reduce<LoadResult | undefined>(
    (sum, { result }) => mergeLoad(sum, result),
    undefined,
  ) as LoadResult;
  const cpu = done.reduce<ServerCpu | null>(
    (sum, slice) => sum && slice.cpu && addCpu(sum, slice.cpu),
    { runtime: 0, proxy: 0, tooling: 0 },
  );
  const followed = done[0]?.consumerRuns !== undefined;
  const runs = followed ? done.flatMap((slice) => slice.consumerRuns ?? []) : null;
  return {
    name,
    requestsPerSecond: answered(total) / total.seconds,
    p50Ms: quantile(total.latenciesMs, 0.5),
    p99Ms: quantile(total.latenciesMs, 0.99),
    sliceRates: done.map(({ result }) => answered(result) / result.seconds),
    sliceP99Ms: done.map(({ result }) => quantile(result.latenciesMs, 0.99)),
    sliceRounds: done.map(({ round }) => round),
    cpuMsPerRequest: cpu && perRequest(cpu, sent(total)),
    statuses: total.statuses,
    unexpected: total.unexpected,
    errors: total.errors,
    ...(runs && { consumer: consumerFigures(runs, total.sentAtMs, total.latenciesMs) }),
  };
}

/** One load of one scenario; `cpu` is null where /proc could not be read. */
interface Slice {
  round: number;
  result: LoadResult;
  cpu: ServerCpu | null;
  /** The consumer's runs, where the scenario follows them. */
  consumerRuns?: ConsumerInvocation[] | undefined;
}

function answered(result: LoadResult): number {
  return Object.values(result.statuses).reduce((sum, count) => sum + count, 0);
}

function addCpu(a: ServerCpu, b: ServerCpu): ServerCpu {
  return {
    runtime: a.runtime + b.runtime,
    proxy: a.proxy + b.proxy,
    tooling: a.tooling + b.tooling,
  };
}

function subtractCpu(a: ServerCpu, b: ServerCpu): ServerCpu {
  return {
    runtime: a.runtime - b.runtime,
    proxy: a.proxy - b.proxy,
    tooling: a.tooling - b.tooling,
  };
}

function perRequest(cpu: ServerCpu, requests: number): ServerCpu & { total: number } {
  const ms = (seconds: number) => Number(((1000 * seconds) / requests).toFixed(3));
  return {
    total: ms(cpu.runtime + cpu.proxy + cpu.tooling),
    runtime: ms(cpu.runtime),
    proxy: ms(cpu.proxy),
    tooling: ms(cpu.tooling),
  };
}

function sent(result: LoadResult): number {
  const unexpected = Object.values(result.unexpected).reduce((sum, count) => sum + count, 0);
  return answered(result) + unexpected + result.errors;
}

// biome-ignore lint/suspicious/noExplicitAny: API answers are read field by field and checked by use.
async function postJson(baseUrl: string, path: string, token: string, body: unknown): Promise<any> {
  const response = await fetch(`${baseUrl}${path}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (response.status !== 201) throw new Error(`POST ${path} answered ${response.status}: ${text}`);
  return JSON.parse(text);
}
