/**
 * A bisection run against the database and real flights (OSSTEST-BEHAVIOUR §5): the engine
 * (engine.ts) decides, this module finds the failure and the basis, makes and runs the flights the
 * engine asks for, and records everything in the bisection tables — so a bisection can be taken up
 * again from the database alone, by this process or another, after a crash or the next day.
 *
 * One step: take up results of flights left running (running them to their end if no one else
 * is), ask the engine, make the flights it wants (one per tuple, k at once on k free equivalent
 * hosts), run them, record their results, and ask again to say where things stand. With `run`,
 * steps follow one another until the verdict, with no pause between them.
 */
import { join } from 'node:path';
import type { Config } from '../config/config.js';
import { ConflictError } from '../db/errors.js';
import type { Store } from '../db/store.js';
import type { Bisection, BisectionFlight } from '../db/types.js';
import { ExecuteFlightError, executeFlight } from '../flight/execute-flight.js';
import { bisectionDot, renderSvg } from './dot.js';
import {
  type DecideOptions,
  type Decision,
  decide,
  notPossible,
  type Observation,
  OUTCOME_WORDING,
  type Outcome,
  type OutcomeCode,
} from './engine.js';
import {
  describeHosts,
  type End,
  findBasis,
  findFailure,
  flightVerdict,
  isFinished,
  type JobCache,
  jobProfile,
  makeBisectFlight,
} from './flights.js';
import { BisectionNotPossible, loadTupleGraph, parseTupleId, type TupleGraph, tupleId } from './graph.js';
import { describeOutcome, formatLog, headerOf, type LogHeader, reconstructEvents } from './log.js';
import { type BisectionView, treeVerdicts, type WrittenReport, writeBisectionReport } from './page.js';
import { requestBisection } from './queue.js';
import { treeRepos } from './repos.js';

export interface BisectContext {
  store: Store;
  config: Config;
  /** Progress lines for people (stderr in the CLI). */
  say?: (line: string) => void;
}

export interface BisectOptions {
  /** Loop to the verdict instead of stopping after one round of flights. */
  run?: boolean;
  /** Most equivalent hosts used at once (default: all that are free). */
  maxHosts?: number;
  /** Engine bounds (engine.ts DecideOptions). */
  maxFlights?: number;
  maxTestsPerNode?: number;
  /** Stops the flights under way (they end aborted) and the loop. */
  signal?: AbortSignal;
  /** Added to the runners' environment. */
  env?: NodeJS.ProcessEnv;
  /** Write the page, graph, log and email under <Results>/bisect/<id> (default true). */
  report?: boolean;
}

export interface BisectResult {
  bisection: Bisection;
  /** 0 while testing; else the verdict (§5). */
  code: 0 | OutcomeCode;
  wording: string;
  summary: string;
  /** Flights made by this call. */
  made: string[];
  /** Tuple ids planned next (while testing). */
  next: string[];
  /** The replayable log. */
  log: string;
  report?: WrittenReport;
  outcome?: Outcome;
}

interface Loaded {
  graph?: TupleGraph;
  repos: Record<string, string>;
  /** Why there is no graph. */
  graphError?: string;
}

const now = () => Date.now();

function observationsOf(flights: readonly BisectionFlight[]): Observation[] {
  const out: Observation[] = [];
  for (const f of flights) {
    if (f.role === 'verify' || f.result === null || f.at === null) continue;
    out.push({ tuple: f.tuple, result: f.result, at: f.at, flight: f.flight });
  }
  return out;
}

function decideOptions(o: BisectOptions, k: number): Omit<DecideOptions, 'pending'> {
  const d: Omit<DecideOptions, 'pending'> = { hosts: k };
  if (o.maxFlights !== undefined) d.maxFlights = o.maxFlights;
  if (o.maxTestsPerNode !== undefined) d.maxTestsPerNode = o.maxTestsPerNode;
  return d;
}

/** Reads the trees' histories and builds the graph from the bisection's two ends. */
async function load(ctx: BisectContext, b: Bisection): Promise<Loaded> {
  if (!b.failureTuple || !b.basisTuple) return { repos: {}, graphError: 'the bisection has not started' };
  const failure = parseTupleId(b.failureTuple);
  const basis = parseTupleId(b.basisTuple);
  const revs: Record<string, string[]> = {};
  for (const t of Object.keys(b.trees)) revs[t] = [failure[t], basis[t]].filter((r): r is string => !!r);
  try {
    const repos = await treeRepos(b.trees, revs, ctx.config);
    const graph = await loadTupleGraph(
      Object.keys(b.trees).map((tree) => ({
        tree,
        repo: repos[tree]!,
        basis: basis[tree]!,
        failure: failure[tree]!,
      })),
    );
    return { graph, repos };
  } catch (e) {
    if (e instanceof BisectionNotPossible) return { repos: {}, graphError: e.reason };
    throw e;
  }
}

/** The hosts a bisect flight may be pinned to: the failure's, then free hosts equivalent to it. */
async function hostSlots(
  ctx: BisectContext,
  b: Bisection,
  max: number | undefined,
): Promise<Array<Record<string, string>>> {
  const idents = Object.entries(b.hosts);
  if (idents.length !== 1) return [b.hosts];
  const [ident, h0] = idents[0]!;
  const hosts = await ctx.store.listHosts();
  const flagsOf = (name: string) =>
    ctx.config.hostFlags(name, hosts.find((h) => h.name === name)?.flags ?? []);
  const equiv = flagsOf(h0).filter((f) => f.startsWith('equiv-'));
  const slots = [{ [ident]: h0 }];
  if (equiv.length > 0) {
    const held = new Set((await ctx.store.listAllocations()).map((a) => a.host));
    for (const h of hosts) {
      if (h.name === h0 || held.has(h.name)) continue;
      if (flagsOf(h.name).some((f) => equiv.includes(f))) slots.push({ [ident]: h.name });
    }
  }
  return slots.slice(0, Math.max(1, max ?? slots.length));
}

/**
 * Finds the ends and records them; a bisection that cannot start gets verdict 32. Returns the
 * bisection and, when it got that far, the trees and graph it loaded.
 */
async function start(ctx: BisectContext, b: Bisection): Promise<{ b: Bisection; loaded?: Loaded }> {
  const done = async (o: Outcome) => ({ b: await finish(ctx, b, o) });
  const { store } = ctx;
  const say = ctx.say ?? (() => undefined);
  const failure = await findFailure(store, b.branch, b.job, b.testid, {
    ...(b.requestedFlight ? { prefer: b.requestedFlight } : {}),
  });
  if (!failure) {
    return done(
      notPossible(
        `no finished flight of ${b.branch} in which ${b.job} ${b.testid} failed without a broken step`,
      ),
    );
  }
  const found = await findBasis(store, failure, b.testid);
  const patch = {
    failureFlight: failure.flight.flight,
    trees: failure.profile.trees,
    hosts: failure.profile.hosts,
    started: now(),
    state: 'running' as const,
  };
  if (!found.basis) {
    b = await store.updateBisection(b.id, patch);
    const why = found.why.length > 0 ? ` (${found.why.slice(0, 3).join('; ')})` : '';
    return done(
      notPossible(
        `no flight before ${failure.flight.flight} in which ${b.job} ${b.testid} passed on the same hosts (${describeHosts(failure.profile.hosts)})${why}`,
      ),
    );
  }
  const basis = found.basis;
  const missing = Object.keys(failure.profile.trees).filter(
    (t) => !failure.profile.tuple[t] || !basis.profile.tuple[t],
  );
  if (Object.keys(failure.profile.trees).length === 0 || missing.length > 0) {
    b = await store.updateBisection(b.id, { ...patch, basisFlight: basis.flight.flight });
    return done(
      notPossible(
        missing.length > 0
          ? `no revision recorded for tree(s) ${missing.join(', ')} in flight ${failure.flight.flight} or ${basis.flight.flight}`
          : `job ${b.job} of flight ${failure.flight.flight} names no trees (tree_<t> runvars)`,
      ),
    );
  }
  say(
    `bisection ${b.id}: failure flight ${failure.flight.flight}, basis flight ${basis.flight.flight}, hosts ${describeHosts(failure.profile.hosts)}`,
  );
  // The ends as the graph names them (full hashes), read from the trees themselves.
  const provisional = await store.updateBisection(b.id, {
    ...patch,
    basisFlight: basis.flight.flight,
    failureTuple: tupleId(failure.profile.tuple),
    basisTuple: tupleId(basis.profile.tuple),
  });
  const l = await load(ctx, provisional);
  const ends = (e: End, id: string | undefined) => id ?? tupleId(e.profile.tuple);
  const failureId = ends(failure, l.graph?.node(l.graph.failure).id);
  const basisId = ends(basis, l.graph?.node(l.graph.basis).id);
  b = await store.updateBisection(b.id, { failureTuple: failureId, basisTuple: basisId });
  await store.addBisectionFlight(b.id, {
    flight: basis.flight.flight,
    role: 'basis',
    tuple: basisId,
    result: 'pass',
    at: basis.at,
  });
  await store.addBisectionFlight(b.id, {
    flight: failure.flight.flight,
    role: 'failure',
    tuple: failureId,
    result: 'fail',
    at: failure.at,
  });
  if (!l.graph) return done(notPossible(l.graphError ?? 'the trees cannot be read'));
  return { b, loaded: l };
}

async function finish(ctx: BisectContext, b: Bisection, o: Outcome): Promise<Bisection> {
  (ctx.say ?? (() => undefined))(`bisection ${b.id}: ${describeOutcome(o).join(' / ').replace(/^# /, '')}`);
  return ctx.store.updateBisection(b.id, {
    state: 'done',
    code: o.code,
    wording: o.wording,
    detail: o.detail,
    culpritTree: o.culprit?.tree ?? null,
    culpritRev: o.culprit?.rev ?? null,
    culpritParents: o.culprit?.parentRevs ?? [],
    confidence: o.confidence,
    finished: now(),
  });
}

/** Runs a flight to its end (or takes over one whose executor died) and records what it says. */
async function runAndRecord(
  ctx: BisectContext,
  b: Bisection,
  flight: string,
  o: BisectOptions,
): Promise<'recorded' | 'busy' | 'interrupted'> {
  const { store } = ctx;
  const say = ctx.say ?? (() => undefined);
  const f = await store.getFlight(flight);
  if (!f) {
    await store.setBisectionFlightResult(b.id, flight, 'broken', now());
    say(`flight ${flight}: gone from the database; counted as broken`);
    return 'recorded';
  }
  if (!isFinished(f)) {
    try {
      const r = await executeFlight({
        store,
        config: ctx.config,
        flight,
        ...(o.signal ? { signal: o.signal } : {}),
        ...(o.env ? { env: o.env } : {}),
      });
      if (r.interrupted) return 'interrupted';
    } catch (e) {
      if (e instanceof ExecuteFlightError) {
        say(`flight ${flight}: ${e.message}`);
        return 'busy';
      }
      throw e;
    }
  }
  const v = await flightVerdict(store, flight, b.job, b.testid);
  await store.setBisectionFlightResult(b.id, flight, v.result, v.at);
  say(`flight ${flight}: ${v.result} (${v.detail})`);
  return 'recorded';
}

function logOf(
  b: Bisection,
  graph: TupleGraph | undefined,
  flights: readonly BisectionFlight[],
  o: BisectOptions,
): string {
  const obs = observationsOf(flights);
  const k = b.parallel ?? 1;
  if (graph)
    return formatLog(
      headerOf(graph, k),
      reconstructEvents(graph, obs, { ...decideOptions(o, k), unknownTuples: 'ignore' }),
    );
  if (!b.failureTuple || !b.basisTuple) return '# osstest bisection log\n# (not started)\n';
  const header: LogHeader = { failure: b.failureTuple, basis: b.basisTuple, hosts: k };
  return formatLog(
    header,
    [...obs].sort((x, y) => x.at - y.at).map((ob) => ({ type: 'observe' as const, obs: ob })),
  );
}

/** The log of bisection ID from the database (decisions included when the trees can be read). */
export async function bisectionLog(
  ctx: BisectContext,
  id: number,
  o: { decisions?: boolean } = {},
): Promise<string> {
  const b = await ctx.store.getBisection(id);
  if (!b) throw new Error(`no bisection ${id}`);
  const flights = await ctx.store.listBisectionFlights(id);
  const graph = o.decisions === false ? undefined : (await load(ctx, b)).graph;
  return logOf(b, graph, flights, {});
}

async function harnessOf(store: Store, flight: string | null): Promise<string[]> {
  if (!flight || !(await store.getFlight(flight))) return [];
  return store.harnessRevisions(flight);
}

/** Writes the page, graph, log and (with a verdict) the email; returns where. */
export async function writeReport(
  ctx: BisectContext,
  b: Bisection,
  l: Loaded,
  flights: readonly BisectionFlight[],
  state: { code: number; wording: string; summary: string; next: readonly string[]; log: string },
): Promise<WrittenReport> {
  const view: BisectionView = {
    bisection: b,
    flights,
    trees: await treeVerdicts(b, l.graph, l.repos),
    code: state.code,
    wording: state.wording,
    summary: state.summary,
    next: state.next,
    log: state.log,
    harness: {
      failure: await harnessOf(ctx.store, b.failureFlight),
      basis: await harnessOf(ctx.store, b.basisFlight),
    },
    ...(l.graphError ? { graphError: l.graphError } : {}),
  };
  let drawn: { dot: string; svg: string } | undefined;
  if (l.graph) {
    const targets = b.culpritRev && b.failureTuple ? culpritNodes(l.graph, b) : [...state.next];
    const parents = targets.flatMap((t) => {
      const i = l.graph!.find(t);
      return i === undefined ? [] : l.graph!.node(i).parents.map((p) => l.graph!.node(p).id);
    });
    const dot = bisectionDot(l.graph, observationsOf(flights), {
      targets,
      extra: b.culpritRev ? parents : [],
      title: `${b.branch} ${b.job} ${b.testid}`,
    });
    drawn = { dot, svg: await renderSvg(dot) };
  }
  return writeBisectionReport(join(ctx.config.path('Results'), 'bisect', String(b.id)), view, drawn);
}

/** The tested node that adds the culprit (the one the verdict rests on), else every such node. */
function culpritNodes(graph: TupleGraph, b: Bisection): string[] {
  const change = graph.changes.find((c) => c.tree === b.culpritTree && c.sha === b.culpritRev);
  if (!change) return [];
  return graph.introducing(change.index).map((i) => graph.node(i).id);
}

/**
 * One step of bisection B (or, with `run`, every step to the verdict). The bisection must exist
 * (requestBisection); a finished one is only reported again.
 */
export async function stepBisection(
  ctx: BisectContext,
  id: number,
  o: BisectOptions = {},
): Promise<BisectResult> {
  const { store } = ctx;
  const say = ctx.say ?? (() => undefined);
  let b = await store.getBisection(id);
  if (!b) throw new Error(`no bisection ${id}`);
  const made: string[] = [];
  let loaded: Loaded | undefined;
  if (b.state === 'pending') {
    try {
      ({ b, loaded } = await start(ctx, b));
    } catch (e) {
      // Another process started it at the same moment: take it up as it recorded it.
      if (!(e instanceof ConflictError)) throw e;
      b = (await store.getBisection(id))!;
    }
  }
  const l: Loaded =
    loaded ??
    (b.state === 'done' && !b.failureTuple
      ? { repos: {}, graphError: b.detail ?? 'not started' }
      : await load(ctx, b));
  const cache: JobCache = new Map();
  let decision: Decision | undefined;
  let outcome: Outcome | undefined;
  let rounds = 0;
  let stopped = '';
  while (b.state !== 'done' && l.graph) {
    const graph = l.graph;
    // Results of flights left running by an earlier step (or a crash).
    const open = (await store.listBisectionFlights(b.id)).filter(
      (f) => f.role === 'test' && f.result === null,
    );
    const busy: string[] = [];
    const outcomes = await Promise.all(open.map((f) => runAndRecord(ctx, b!, f.flight, o)));
    outcomes.forEach((r, i) => {
      if (r === 'busy') busy.push(open[i]!.tuple);
    });
    if (outcomes.includes('interrupted')) {
      stopped = 'interrupted';
      break;
    }
    const flights = await store.listBisectionFlights(b.id);
    const slots = await hostSlots(ctx, b, o.maxHosts);
    if (b.parallel !== slots.length) b = await store.updateBisection(b.id, { parallel: slots.length });
    decision = decide(graph, observationsOf(flights), { ...decideOptions(o, slots.length), pending: busy });
    if (decision.kind === 'done') {
      outcome = decision.outcome;
      b = await finish(ctx, b, decision.outcome);
      break;
    }
    if (decision.kind === 'wait') break;
    if (rounds > 0 && !o.run) break;
    if (o.signal?.aborted) {
      stopped = 'interrupted';
      break;
    }
    rounds++;
    // The failure's job, read again each round: its definition is what every flight copies.
    const failure = await jobProfile(store, b.failureFlight!, b.job);
    // Builds of flights whose test ran (pass or fail) are known good; newest first.
    const reuseFrom = [...flights]
      .filter((f) => f.role !== 'verify' && (f.result === 'pass' || f.result === 'fail'))
      .reverse()
      .map((f) => f.flight);
    const free = slots.slice(0, Math.max(0, slots.length - busy.length));
    const round: string[] = [];
    for (const [i, t] of decision.tests.entries()) {
      const hosts = free[i] ?? slots[0]!;
      const m = await makeBisectFlight(
        { store, config: ctx.config, branch: b.branch, failure, tuple: t.tuple, hosts, reuseFrom },
        cache,
      );
      await store.addBisectionFlight(b.id, { flight: m.flight, role: 'test', tuple: t.id, reason: t.reason });
      say(
        `flight ${m.flight}: ${t.reason} ${Object.entries(t.tuple)
          .map(([tr, r]) => `${tr}=${r.slice(0, 12)}`)
          .join(
            ' ',
          )} on ${describeHosts(hosts)}; ${m.reused.length > 0 ? `reusing ${m.reused.join(', ')}` : `building ${m.built.join(', ')}`} -- ${t.why}`,
      );
      made.push(m.flight);
      round.push(m.flight);
    }
    const ran = await Promise.all(round.map((f) => runAndRecord(ctx, b!, f, o)));
    if (ran.includes('interrupted')) {
      stopped = 'interrupted';
      break;
    }
  }
  if (b.state !== 'done' && !l.graph) {
    outcome = notPossible(l.graphError ?? 'the trees cannot be read');
    b = await finish(ctx, b, outcome);
  }
  const flights = await store.listBisectionFlights(b.id);
  const log = logOf(b, l.graph, flights, o);
  let code: 0 | OutcomeCode = 0;
  let wording = OUTCOME_WORDING[0];
  let summary: string;
  let next: string[] = [];
  if (b.state === 'done') {
    code = (b.code ?? 32) as OutcomeCode;
    wording = b.wording ?? OUTCOME_WORDING[code];
    summary = b.detail ?? '';
  } else if (decision && decision.kind !== 'done') {
    summary = stopped ? `${stopped}: ${decision.summary}` : decision.summary;
    if (decision.kind === 'test') next = decision.tests.map((t) => t.id);
  } else {
    summary = stopped || 'testing';
  }
  const result: BisectResult = { bisection: b, code, wording, summary, made, next, log };
  if (outcome) result.outcome = outcome;
  if (o.report !== false)
    result.report = await writeReport(ctx, b, l, flights, { code, wording, summary, next, log });
  return result;
}

/**
 * `osstest bisect BRANCH JOB TESTID`: the open bisection of that key, or a new one. A finished
 * bisection whose failure is still the newest is reported again rather than started over.
 */
export async function bisect(
  ctx: BisectContext,
  key: { branch: string; job: string; testid: string },
  o: BisectOptions = {},
): Promise<BisectResult> {
  const latest = (await ctx.store.listBisections({ ...key, limit: 1 }))[0];
  if (latest?.state === 'done') {
    const f = await findFailure(ctx.store, key.branch, key.job, key.testid);
    if (!f || f.flight.flight === latest.failureFlight) return stepBisection(ctx, latest.id, o);
  }
  const { bisection } = await requestBisection(ctx.store, key);
  return stepBisection(ctx, bisection.id, o);
}
