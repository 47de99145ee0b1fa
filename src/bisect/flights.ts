/**
 * Bisection's view of flights (OSSTEST-BEHAVIOUR §5): what a job tested (its trees, the revisions
 * its builds were made from, the hosts it ran on), where the failure and the basis are, and how a
 * bisect flight is made — the failing job's definition with new revisions, a passed build of
 * identical definition reused when its stash is still there, the test pinned to the failure's hosts.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/config.js';
import type { Store } from '../db/store.js';
import type { BisectionResult, Flight, Millis, Step } from '../db/types.js';
import { hostIdentsFrom } from '../executor/recipe.js';
import type { JobStatus } from '../model/status.js';
import { reportTestid } from '../model/testid.js';
import type { Tuple } from './graph.js';

/** The intended blessing of the flights a bisection makes; they are never a failure or basis. */
export const BISECT_BLESSING = 'bisect';

const UNFINISHED = new Set(['constructing', 'running']);

export interface JobRef {
  /** The runvar that names it (`buildjob`, `xenbuildjob`…). */
  name: string;
  flight: string;
  job: string;
}

export interface JobProfile {
  flight: string;
  job: string;
  recipe: string;
  status: JobStatus;
  /** Definition runvars (synth = false): what a copy of the job is made from. */
  definition: Record<string, string>;
  /** Every runvar, definition and execution. */
  runvars: Record<string, string>;
  /** ident → host the job ran on. */
  hosts: Record<string, string>;
  /** The build jobs it took its artefacts from. */
  builds: JobRef[];
  /** tree → URL of every tree the job or its builds name. */
  trees: Record<string, string>;
  /** tree → the revision it tested: what its build built, else what was asked for. */
  tuple: Record<string, string>;
}

/** `job` is in FLIGHT, `flight.job` in another flight (the flight part has no dot). */
export function parseJobRef(v: string, flight: string): { flight: string; job: string } {
  const dot = v.indexOf('.');
  return dot > 0 ? { flight: v.slice(0, dot), job: v.slice(dot + 1) } : { flight, job: v };
}

function split(runvars: ReadonlyArray<{ name: string; val: string; synth: boolean }>) {
  const all: Record<string, string> = {};
  const definition: Record<string, string> = {};
  for (const r of runvars) {
    all[r.name] = r.val;
    if (!r.synth) definition[r.name] = r.val;
  }
  return { all, definition };
}

function treesOf(runvars: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [n, v] of Object.entries(runvars)) if (n.startsWith('tree_') && v !== '') out[n.slice(5)] = v;
  return out;
}

export async function jobProfile(store: Store, flight: string, job: string): Promise<JobProfile> {
  const j = await store.getJob(flight, job);
  if (!j) throw new Error(`flight ${flight} has no job ${job}`);
  const { all, definition } = split(await store.listRunvars(flight, job));
  const hosts: Record<string, string> = {};
  for (const ident of hostIdentsFrom(all, ['host'])) if (all[ident]) hosts[ident] = all[ident];
  const builds: JobRef[] = Object.entries(all)
    .filter(([n]) => n.endsWith('buildjob'))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, v]) => ({ name, ...parseJobRef(v, flight) }));
  const trees: Record<string, string> = {};
  const tuple: Record<string, string> = {};
  // The builds say what was built; the job's own runvars only fill what they do not.
  for (const b of builds) {
    const bj = await store.getJob(b.flight, b.job);
    if (!bj) continue;
    const brv = split(await store.listRunvars(b.flight, b.job)).all;
    for (const [t, url] of Object.entries(treesOf(brv))) {
      if (t in trees) continue;
      trees[t] = url;
      const rev = brv[`built_revision_${t}`] ?? brv[`revision_${t}`];
      if (rev) tuple[t] = rev;
    }
  }
  for (const [t, url] of Object.entries(treesOf(all))) {
    if (t in trees) continue;
    trees[t] = url;
    const rev = all[`built_revision_${t}`] ?? all[`revision_${t}`];
    if (rev) tuple[t] = rev;
  }
  return {
    flight,
    job,
    recipe: j.recipe,
    status: j.status,
    definition,
    runvars: all,
    hosts,
    builds,
    trees,
    tuple,
  };
}

/** The step of TESTID (compared as reports do: a trailing `(N)` does not count). */
export function stepFor(steps: readonly Step[], testid: string): Step | undefined {
  const want = reportTestid(testid);
  return steps.find((s) => reportTestid(s.testid) === want);
}

export interface End {
  flight: Flight;
  profile: JobProfile;
  step: Step;
  /** When its result came: the step's end. */
  at: Millis;
}

export interface FindOptions {
  /** Flights of the branch looked at, newest first (default 500). */
  scan?: number;
  /** Look at this flight first for the failure (the one the push gate saw the regression in). */
  prefer?: string;
}

async function failedIn(store: Store, f: Flight, job: string, testid: string): Promise<End | undefined> {
  if (f.intended === BISECT_BLESSING || UNFINISHED.has(f.blessing)) return undefined;
  if (!(await store.getJob(f.flight, job))) return undefined;
  const steps = await store.listSteps(f.flight, job);
  const step = stepFor(steps, testid);
  if (step?.status !== 'fail' || steps.some((s) => s.status === 'broken')) return undefined;
  return {
    flight: f,
    profile: await jobProfile(store, f.flight, job),
    step,
    at: step.finished ?? step.started ?? f.created,
  };
}

/** The newest finished, non-bisect flight of BRANCH in which JOB's TESTID failed, with no broken step. */
export async function findFailure(
  store: Store,
  branch: string,
  job: string,
  testid: string,
  o: FindOptions = {},
): Promise<End | undefined> {
  if (o.prefer) {
    const f = await store.getFlight(o.prefer);
    if (f && f.branch === branch) {
      const e = await failedIn(store, f, job, testid);
      if (e) return e;
    }
  }
  for (const f of await store.listFlights({ branch, limit: o.scan ?? 500 })) {
    const e = await failedIn(store, f, job, testid);
    if (e) return e;
  }
  return undefined;
}

const sameKeys = (a: Record<string, string>, b: Record<string, string>) =>
  Object.keys(a).sort().join(',') === Object.keys(b).sort().join(',');

/**
 * The basis: the newest flight older than the failure where TESTID passed, on the same hosts, with
 * the same trees. `why` says what was passed over when there is none.
 */
export async function findBasis(
  store: Store,
  failure: End,
  testid: string,
  o: FindOptions = {},
): Promise<{ basis?: End; why: string[] }> {
  const why: string[] = [];
  const { job } = failure.profile;
  for (const f of await store.listFlights({ branch: failure.flight.branch, limit: o.scan ?? 500 })) {
    if (f.seq >= failure.flight.seq) continue;
    if (f.intended === BISECT_BLESSING || UNFINISHED.has(f.blessing)) continue;
    if (!(await store.getJob(f.flight, job))) continue;
    const step = stepFor(await store.listSteps(f.flight, job), testid);
    if (step?.status !== 'pass') continue;
    const profile = await jobProfile(store, f.flight, job);
    const hostsSame =
      sameKeys(profile.hosts, failure.profile.hosts) &&
      Object.entries(profile.hosts).every(([i, h]) => failure.profile.hosts[i] === h);
    if (!hostsSame) {
      why.push(`flight ${f.flight} passed on other hosts (${describeHosts(profile.hosts)})`);
      continue;
    }
    if (!sameKeys(profile.trees, failure.profile.trees)) {
      why.push(
        `flight ${f.flight} passed with other trees (${Object.keys(profile.trees).sort().join(', ')})`,
      );
      continue;
    }
    return { basis: { flight: f, profile, step, at: step.finished ?? step.started ?? f.created }, why };
  }
  return { why };
}

export function describeHosts(hosts: Readonly<Record<string, string>>): string {
  const e = Object.entries(hosts);
  return e.length === 0 ? 'none recorded' : e.map(([i, h]) => `${i}=${h}`).join(' ');
}

/** DEF with the revisions of TUPLE for the trees it names (`revision_<t>` or `tree_<t>`). */
export function withRevisions(def: Readonly<Record<string, string>>, tuple: Tuple): Record<string, string> {
  const out = { ...def };
  for (const [t, rev] of Object.entries(tuple)) {
    if (`revision_${t}` in out || `tree_${t}` in out) out[`revision_${t}`] = rev;
  }
  return out;
}

function sameDefinition(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => b[k] === a[k]);
}

/** A build job's outputs are still in the stash: its directory and every `path_*` file. */
export function stashPresent(
  config: Config,
  flight: string,
  job: string,
  runvars: Record<string, string>,
): boolean {
  const stash = config.path('Stash');
  const dir = join(stash, flight, job);
  try {
    if (!statSync(dir).isDirectory()) return false;
  } catch {
    return false;
  }
  return Object.entries(runvars)
    .filter(([n]) => n.startsWith('path_'))
    .every(([, v]) => existsSync(join(dir, v)));
}

export interface MakeBisectFlight {
  store: Store;
  config: Config;
  branch: string;
  /** The failing job, whose definition is copied. */
  failure: JobProfile;
  tuple: Tuple;
  /** ident → host the test job is pinned to. */
  hosts: Readonly<Record<string, string>>;
  /** Flights whose passed builds may be reused, best first. */
  reuseFrom: readonly string[];
  /** Intended blessing (default `bisect`). */
  intended?: string;
  /** tree → URL overriding the failure's (bisect verify tests a scratch clone). */
  treeUrls?: Readonly<Record<string, string>>;
}

export interface MadeBisectFlight {
  flight: string;
  /** Build jobs made in the new flight. */
  built: string[];
  /** Builds reused, as `flight.job`. */
  reused: string[];
}

/** Memo of (flight, job) → recipe, status, runvars: the candidates are looked at once per step. */
export type JobCache = Map<
  string,
  Promise<
    | { recipe: string; status: string; all: Record<string, string>; definition: Record<string, string> }
    | undefined
  >
>;

function cachedJob(store: Store, cache: JobCache, flight: string, job: string) {
  const key = `${flight}\u0000${job}`;
  let p = cache.get(key);
  if (!p) {
    p = (async () => {
      const j = await store.getJob(flight, job);
      if (!j) return undefined;
      return { recipe: j.recipe, status: j.status, ...split(await store.listRunvars(flight, job)) };
    })();
    cache.set(key, p);
  }
  return p;
}

function withUrls(def: Record<string, string>, urls: Readonly<Record<string, string>> | undefined) {
  if (!urls) return def;
  for (const [t, url] of Object.entries(urls)) if (`tree_${t}` in def) def[`tree_${t}`] = url;
  return def;
}

export async function makeBisectFlight(
  o: MakeBisectFlight,
  cache: JobCache = new Map(),
): Promise<MadeBisectFlight> {
  const { store, failure } = o;
  const testDef = withUrls(withRevisions(failure.definition, o.tuple), o.treeUrls);
  const buildJobs = new Map<string, { recipe: string; def: Record<string, string> }>();
  const reused: string[] = [];
  for (const ref of failure.builds) {
    const src = await cachedJob(store, cache, ref.flight, ref.job);
    if (!src)
      throw new Error(`${ref.name}=${failure.runvars[ref.name]}: flight ${ref.flight} has no job ${ref.job}`);
    const want = withUrls(withRevisions(src.definition, o.tuple), o.treeUrls);
    let found: string | undefined;
    for (const cf of o.reuseFrom) {
      const c = await cachedJob(store, cache, cf, ref.job);
      if (c?.status !== 'pass' || c.recipe !== src.recipe) continue;
      if (!sameDefinition(c.definition, want)) continue;
      if (!stashPresent(o.config, cf, ref.job, c.all)) continue;
      found = `${cf}.${ref.job}`;
      break;
    }
    if (found) {
      testDef[ref.name] = found;
      reused.push(found);
      continue;
    }
    const existing = buildJobs.get(ref.job);
    if (existing && !sameDefinition(existing.def, want))
      throw new Error(`two different build jobs named ${ref.job} would be needed in one flight`);
    buildJobs.set(ref.job, { recipe: src.recipe, def: want });
    testDef[ref.name] = ref.job;
  }
  for (const [ident, host] of Object.entries(o.hosts)) testDef[ident] = host;

  const flight = await store.createFlight({ branch: o.branch, intended: o.intended ?? BISECT_BLESSING });
  try {
    for (const [job, b] of buildJobs) await store.createJob(flight.flight, job, b.recipe, b.def);
    await store.createJob(flight.flight, failure.job, failure.recipe, testDef);
  } catch (err) {
    await store.deleteFlight(flight.flight);
    throw err;
  }
  return { flight: flight.flight, built: [...buildJobs.keys()], reused };
}

export interface FlightVerdict {
  result: BisectionResult;
  at: Millis;
  /** The job's status and the step's, for logs. */
  detail: string;
}

/**
 * What a finished flight says about TESTID of JOB: the step's pass or fail; a job that was blocked
 * (its build failed) is `blocked`; anything else (broken, starved, aborted, no such step) `broken`.
 */
export async function flightVerdict(
  store: Store,
  flight: string,
  job: string,
  testid: string,
): Promise<FlightVerdict> {
  const j = await store.getJob(flight, job);
  if (!j) return { result: 'broken', at: Date.now(), detail: `flight ${flight} has no job ${job}` };
  const steps = await store.listSteps(flight, job);
  const step = stepFor(steps, testid);
  const end = Math.max(0, ...steps.map((s) => s.finished ?? s.started ?? 0));
  const at = step?.finished ?? (end > 0 ? end : Date.now());
  if (
    step &&
    (step.status === 'pass' || step.status === 'fail') &&
    !steps.some((s) => s.status === 'broken')
  ) {
    return { result: step.status, at, detail: `${job} ${j.status}, ${step.testid} ${step.status}` };
  }
  const result: BisectionResult = j.status === 'blocked' ? 'blocked' : 'broken';
  return {
    result,
    at,
    detail: `${job} ${j.status}${step ? `, ${step.testid} ${step.status}` : `, no ${testid} step`}`,
  };
}

export function isFinished(f: Flight): boolean {
  return !UNFINISHED.has(f.blessing);
}
