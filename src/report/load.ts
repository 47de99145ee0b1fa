/**
 * The report loader: reads one flight and a bounded slice of its branch's history from the store,
 * judges it (judge.ts) and gathers what the writers show besides the judgement: versions, the
 * revision log per tree with the people in it, and "what changed" for each regression.
 *
 * Queries, whatever the size of the history (types.ts describes the plan):
 *  - the branch's flights newest first, `historyFlights + 1` rows (more only when the judged flight
 *    is not among the newest, or the baseline is older than the window);
 *  - per flight loaded (this one, the window, the baseline): its jobs, steps and runvars, one query
 *    each, all issued at once;
 *  - the runvars of build jobs that test jobs take from other flights (`buildjob=F.job`);
 *  - for regressions only: harness revisions, and the newest few flights of other branches.
 *
 * Limits of doing this through the Store interface alone (what a store method would add):
 *  - baseline-tuple flights older than the window are not found, except the baseline flight itself
 *    (wanted: `flightsWithRunvar(branch, name, val, limit)` over an index on runvars (name, val)).
 *  "Never pass" is not limited by the window: failures that passed nowhere in it are asked of the
 *  whole branch (`stepPassedOnBranch`).
 *
 * The baseline, until pushes are recorded (the push gate will record them): `--baseline F` when
 * given; else the newest flight of the branch older than this one that has the same intended
 * blessing and whose blessing is final (neither constructing nor running), i.e. the previous
 * finished flight of its kind. Its revisions are the tuple every failure is compared against.
 */
import type { Config } from '../config/config.js';
import type { Store } from '../db/store.js';
import type { Flight, Job, Runvar, Step } from '../db/types.js';
import { reportTestid } from '../model/testid.js';
import { readAllowFiles } from './allow.js';
import { hostOfStep, isBuildJob, stepKey } from './history.js';
import { judgeFlight } from './judge.js';
import type { JobDetail, ReportData, TreeChange, WhatChanged } from './report-data.js';
import { DEFAULT_LOG_BOUND, treeChange } from './trees.js';
import type { FlightRecord, JobRecord, Revisions, StepRecord } from './types.js';

export const DEFAULT_HISTORY_FLIGHTS = 40;
/** How many of the newest flights of other branches are searched for a regression's testid passing. */
export const DEFAULT_OTHER_BRANCH_FLIGHTS = 10;
/** Entries of `passedElsewhere` kept per regression. */
const PASSED_ELSEWHERE_MAX = 20;

const UNFINISHED_BLESSINGS: ReadonlySet<string> = new Set(['constructing', 'running']);

/** The report cannot be made as asked (no such flight, a bad option); the message says why. */
export class ReportError extends Error {
  override name = 'ReportError';
}

export interface LoadReportOptions {
  /** Compare against this flight instead of the one the rule picks. */
  baseline?: string;
  /** Flights of the branch before this one that are read for the history (default 40). */
  historyFlights?: number;
  /** Commits per tree in the revision log (default 200). */
  logBound?: number;
  /** Newest flights of other branches searched for a regression's testid passing (default 10). */
  otherBranchFlights?: number;
  /** The report's time (default now). */
  now?: number;
}

/** One flight as read from the store. */
interface RawFlight {
  flight: Flight;
  jobs: Job[];
  steps: Map<string, Step[]>;
  runvars: Map<string, Map<string, Runvar>>;
}

async function readFlight(store: Store, flight: Flight): Promise<RawFlight> {
  const [jobs, steps, runvars] = await Promise.all([
    store.listJobs(flight.flight),
    store.listSteps(flight.flight),
    store.listRunvars(flight.flight),
  ]);
  const byJob = new Map<string, Step[]>();
  for (const s of steps) {
    const l = byJob.get(s.job);
    if (l === undefined) byJob.set(s.job, [s]);
    else l.push(s);
  }
  return { flight, jobs, steps: byJob, runvars: groupRunvars(runvars) };
}

function groupRunvars(runvars: readonly Runvar[]): Map<string, Map<string, Runvar>> {
  const m = new Map<string, Map<string, Runvar>>();
  for (const r of runvars) {
    const j = m.get(r.job);
    if (j === undefined) m.set(r.job, new Map([[r.name, r]]));
    else j.set(r.name, r);
  }
  return m;
}

/** `job` (this flight) or `flight.job` (another): OSSTest's convention, the flight part has no dot. */
function parseBuildRef(val: string, flight: string): { flight: string; job: string } {
  const dot = val.indexOf('.');
  return dot > 0 ? { flight: val.slice(0, dot), job: val.slice(dot + 1) } : { flight, job: val };
}

/** Runvars naming a host by ident: `host`, `<ident>_host` (src_host, dst_host), `buildhost`. */
function isHostRunvar(name: string): boolean {
  return name === 'host' || name === 'buildhost' || name.endsWith('_host');
}

function prefixed(vars: Map<string, Runvar> | undefined, prefix: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, r] of vars ?? []) {
    if (name.startsWith(prefix) && name.length > prefix.length && r.val !== '') {
      out[name.slice(prefix.length)] = r.val;
    }
  }
  return out;
}

/** What a build job built: `built_revision_*`, else (it did not get that far) `revision_*`. */
function buildRevisions(vars: Map<string, Runvar> | undefined): Record<string, string> {
  const built = prefixed(vars, 'built_revision_');
  return Object.keys(built).length > 0 ? built : prefixed(vars, 'revision_');
}

/** Runvars of build jobs in flights that are not loaded, read on demand and kept. */
class ExternalBuilds {
  private readonly cache = new Map<string, Promise<Map<string, Runvar> | undefined>>();
  constructor(private readonly store: Store) {}

  get(flight: string, job: string): Promise<Map<string, Runvar> | undefined> {
    const key = `${flight}\u0000${job}`;
    let p = this.cache.get(key);
    if (p === undefined) {
      p = this.store.listRunvars(flight, job).then(
        (rs) => new Map(rs.map((r) => [r.name, r])),
        // A test job naming a build job that is gone: its revisions fall back to its own runvars.
        () => undefined,
      );
      this.cache.set(key, p);
    }
    return p;
  }
}

/** The build jobs a job takes its artefacts from: (flight, job) of each `*buildjob` runvar. */
function buildRefs(raw: RawFlight, job: string): { flight: string; job: string }[] {
  const refs: { flight: string; job: string }[] = [];
  for (const [name, r] of raw.runvars.get(job) ?? []) {
    if (name.endsWith('buildjob') && r.val !== '') refs.push(parseBuildRef(r.val, raw.flight.flight));
  }
  return refs;
}

async function toRecord(
  raw: RawFlight,
  loaded: Map<string, RawFlight>,
  ext: ExternalBuilds,
): Promise<FlightRecord> {
  const jobs: JobRecord[] = [];
  const flightRevs: Record<string, string> = {};
  const testRevs: Record<string, string> = {};
  for (const j of raw.jobs) {
    const vars = raw.runvars.get(j.job);
    const isBuild = isBuildJob(j.job, j.recipe);
    let revisions: Record<string, string> = {};
    if (isBuild) {
      revisions = buildRevisions(vars);
      for (const [t, r] of Object.entries(revisions)) flightRevs[t] ??= r;
    } else {
      for (const ref of buildRefs(raw, j.job)) {
        const from = loaded.get(ref.flight);
        const bv = from !== undefined ? from.runvars.get(ref.job) : await ext.get(ref.flight, ref.job);
        for (const [t, r] of Object.entries(buildRevisions(bv))) revisions[t] ??= r;
      }
      if (Object.keys(revisions).length === 0) revisions = prefixed(vars, 'revision_');
      for (const [t, r] of Object.entries(revisions)) testRevs[t] ??= r;
    }
    const hosts: Record<string, string> = {};
    for (const [name, r] of vars ?? []) if (isHostRunvar(name) && r.val !== '') hosts[name] = r.val;
    const steps: StepRecord[] = (raw.steps.get(j.job) ?? []).map((s) => ({
      stepno: s.stepno,
      testid: s.testid,
      status: s.status,
      script: s.testcase,
    }));
    const rec: JobRecord = { job: j.job, status: j.status, isBuild, hosts, steps };
    if (Object.keys(revisions).length > 0) rec.revisions = revisions;
    jobs.push(rec);
  }
  // A flight whose builds come from another flight tested what its test jobs were given.
  for (const [t, r] of Object.entries(testRevs)) flightRevs[t] ??= r;
  return {
    flight: raw.flight.flight,
    branch: raw.flight.branch,
    blessing: raw.flight.blessing,
    intended: raw.flight.intended,
    started: raw.flight.started,
    revisions: flightRevs,
    jobs,
  };
}

function isBaselineCandidate(f: Flight, of: Flight): boolean {
  return f.intended === of.intended && f.started !== null && !UNFINISHED_BLESSINGS.has(f.blessing);
}

/**
 * The window (up to `window` flights of the branch older than `flight`, newest first) and, when
 * none was named, the baseline the rule picks. Reads more rows only when it has to.
 */
async function branchHistory(
  store: Store,
  flight: Flight,
  window: number,
  findBaseline: boolean,
): Promise<{ history: Flight[]; baseline: Flight | undefined }> {
  let limit = window + 1;
  for (;;) {
    const list = await store.listFlights({ branch: flight.branch, limit });
    const older = list.filter((f) => f.seq < flight.seq);
    const baseline = findBaseline ? older.find((f) => isBaselineCandidate(f, flight)) : undefined;
    if ((older.length >= window && (!findBaseline || baseline !== undefined)) || list.length < limit) {
      return { history: older.slice(0, window), baseline };
    }
    limit *= 4;
  }
}

/**
 * The judge's `everPassed`: of this flight's failed steps that passed nowhere in the window, those
 * that passed in an older flight of the branch, asked of the store step by step (an indexed lookup
 * each, by the testid as recorded and without its `(N)`). Steps that passed in the window need no
 * question: the judge sees those passes itself.
 */
async function passedBeyondWindow(
  store: Store,
  flight: Flight,
  record: FlightRecord,
  history: readonly FlightRecord[],
): Promise<Set<string>> {
  const passedInWindow = new Set<string>();
  for (const h of history) {
    for (const j of h.jobs)
      for (const st of j.steps) if (st.status === 'pass') passedInWindow.add(stepKey(j.job, st.testid));
  }
  const asks: { key: string; job: string; testids: string[] }[] = [];
  for (const j of record.jobs) {
    for (const st of j.steps) {
      if (st.status === 'pass' || st.status === 'blocked' || st.status === 'running') continue;
      const key = stepKey(j.job, st.testid);
      if (passedInWindow.has(key) || asks.some((a) => a.key === key)) continue;
      asks.push({ key, job: j.job, testids: [...new Set([st.testid, reportTestid(st.testid)])] });
    }
  }
  const answers = await Promise.all(
    asks.map((a) => store.stepPassedOnBranch(flight.branch, a.job, a.testids, flight.seq)),
  );
  return new Set(asks.filter((_, i) => answers[i]).map((a) => a.key));
}

function positiveInt(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < 0)
    throw new ReportError(`${name} must be a whole number ≥ 0, not ${v}`);
  return v;
}

export async function loadReport(
  store: Store,
  config: Config,
  flightName: string,
  opts: LoadReportOptions = {},
): Promise<ReportData> {
  const window = positiveInt('historyFlights', opts.historyFlights, DEFAULT_HISTORY_FLIGHTS);
  const logBound = positiveInt('logBound', opts.logBound, DEFAULT_LOG_BOUND);
  const otherN = positiveInt('otherBranchFlights', opts.otherBranchFlights, DEFAULT_OTHER_BRANCH_FLIGHTS);

  const flight = await store.getFlight(flightName);
  if (flight === undefined) throw new ReportError(`no flight '${flightName}'`);

  let baseline: Flight | undefined;
  let baselineWhy: string | undefined;
  if (opts.baseline !== undefined) {
    baseline = await store.getFlight(opts.baseline);
    if (baseline === undefined) throw new ReportError(`--baseline: no flight '${opts.baseline}'`);
    if (baseline.flight === flight.flight) {
      throw new ReportError(`--baseline: flight ${flight.flight} cannot be its own baseline`);
    }
    baselineWhy = `flight ${baseline.flight}, as asked (--baseline)`;
  }
  const { history, baseline: picked } = await branchHistory(store, flight, window, baseline === undefined);
  if (baseline === undefined && picked !== undefined) {
    baseline = picked;
    baselineWhy = `flight ${picked.flight}: the newest earlier finished ${flight.intended} flight of ${flight.branch}`;
  }
  if (baseline === undefined) {
    baselineWhy = `none: no earlier finished ${flight.intended} flight of ${flight.branch} (a baseline test)`;
  }

  // This flight and its baseline first: they say which revision logs to read, and git runs in
  // child processes while the history is read (the sqlite store blocks this thread as it reads).
  const ext = new ExternalBuilds(store);
  const firstRaws = await Promise.all(
    [flight, ...(baseline ? [baseline] : [])].map((f) => readFlight(store, f)),
  );
  const thisRaw = firstRaws[0]!;
  const loaded = new Map(firstRaws.map((r) => [r.flight.flight, r]));
  const [thisRecord, baselineRecord] = (await Promise.all(
    firstRaws.map((r) => toRecord(r, loaded, ext)),
  )) as [FlightRecord, FlightRecord | undefined];

  const baseRevs: Revisions = baselineRecord?.revisions ?? {};
  const versions = Object.keys(thisRecord.revisions)
    .sort()
    .map((tree) => ({ tree, now: thisRecord.revisions[tree]!, baseline: baseRevs[tree] ?? null }));
  const urls = await treeUrls(thisRaw, loaded, ext, config);
  const reposDir = config.path('Repos');
  const changesRead = Promise.all(
    versions.map((v) =>
      treeChange(
        { tree: v.tree, url: urls.get(v.tree) ?? '', from: v.baseline, to: v.now },
        { reposDir, bound: logBound },
      ),
    ),
  );

  // The history, newest first, with the baseline in its place when it is older than the window.
  const rest = history.filter((f) => !loaded.has(f.flight));
  const historyRaws = await Promise.all(rest.map((f) => readFlight(store, f)));
  for (const r of historyRaws) loaded.set(r.flight.flight, r);
  const historyRecords = await Promise.all(historyRaws.map((r) => toRecord(r, loaded, ext)));
  if (baselineRecord !== undefined) historyRecords.push(baselineRecord);
  const seqOf = new Map([...loaded.values()].map((r) => [r.flight.flight, r.flight.seq]));
  historyRecords.sort((a, b) => (seqOf.get(b.flight) ?? 0) - (seqOf.get(a.flight) ?? 0));

  const allow = await readAllowFiles(config.path('AllowDir'), flight.branch);
  const everPassed = await passedBeyondWindow(store, flight, thisRecord, historyRecords);
  const judgement = judgeFlight({
    flight: thisRecord,
    baseline: baselineRecord ? { flight: baselineRecord.flight, revisions: baselineRecord.revisions } : null,
    history: historyRecords,
    everPassed,
    allow,
  });

  const changes = await changesRead;
  for (const c of changes) {
    if (c.url === '' && c.from !== null && c.from !== c.to) {
      c.error = `no URL for tree ${c.tree}: no tree_${c.tree} runvar in the flight's build jobs and no Tree_${c.tree} setting`;
    }
  }

  const regressions = judgement.failures.filter((f) => f.verdict === 'regression');
  const whatChanged =
    regressions.length === 0
      ? []
      : await whatChangedFor(store, {
          flight,
          baseline,
          record: thisRecord,
          changes,
          regressions: regressions.map((f) => ({ job: f.job, testid: f.testid })),
          otherN,
        });

  const jobs: JobDetail[] = thisRaw.jobs.map((j) => ({
    ...j,
    steps: thisRaw.steps.get(j.job) ?? [],
    runvars: [...(thisRaw.runvars.get(j.job)?.values() ?? [])],
  }));

  const data: ReportData = {
    flight,
    jobs,
    judgement,
    baseline: baseline ?? null,
    versions,
    changes,
    whatChanged,
    generated: opts.now ?? Date.now(),
  };
  if (baselineWhy !== undefined) data.baselineWhy = baselineWhy;
  return data;
}

/** tree → URL: `tree_<t>` of this flight's jobs, else of the builds it took from other flights, else `Tree_<t>`. */
async function treeUrls(
  raw: RawFlight,
  loaded: Map<string, RawFlight>,
  ext: ExternalBuilds,
  config: Config,
): Promise<Map<string, string>> {
  const urls = new Map<string, string>();
  const take = (vars: Map<string, Runvar> | undefined) => {
    for (const [t, url] of Object.entries(prefixed(vars, 'tree_'))) if (!urls.has(t)) urls.set(t, url);
  };
  for (const j of raw.jobs) take(raw.runvars.get(j.job));
  for (const j of raw.jobs) {
    for (const ref of buildRefs(raw, j.job)) {
      const from = loaded.get(ref.flight);
      take(from !== undefined ? from.runvars.get(ref.job) : await ext.get(ref.flight, ref.job));
    }
  }
  for (const { suffix, value } of config.prefixed('Tree_'))
    if (!urls.has(suffix) && value !== '') urls.set(suffix, value);
  return urls;
}

async function whatChangedFor(
  store: Store,
  c: {
    flight: Flight;
    baseline: Flight | undefined;
    record: FlightRecord;
    changes: TreeChange[];
    regressions: { job: string; testid: string }[];
    otherN: number;
  },
): Promise<WhatChanged[]> {
  const [now, before] = await Promise.all([
    store.harnessRevisions(c.flight.flight),
    c.baseline === undefined ? Promise.resolve([]) : store.harnessRevisions(c.baseline.flight),
  ]);
  const wanted = new Set(c.regressions.map((r) => reportTestid(r.testid)));
  const others = await otherBranchPasses(store, c.flight, wanted, c.otherN);

  const seen = new Set<string>();
  const out: WhatChanged[] = [];
  for (const r of c.regressions) {
    const key = `${r.job}\u0000${r.testid}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const job = c.record.jobs.find((j) => j.job === r.job);
    const trees = Object.keys(job?.revisions ?? c.record.revisions);
    const tid = reportTestid(r.testid);
    const passedElsewhere: WhatChanged['passedElsewhere'] = [];
    for (const other of c.record.jobs) {
      if (other.job === r.job) continue;
      const s = other.steps.find((s) => s.status === 'pass' && reportTestid(s.testid) === tid);
      if (s !== undefined) {
        passedElsewhere.push({
          flight: c.record.flight,
          branch: c.record.branch,
          job: other.job,
          host: hostOfStep(other, s) ?? null,
        });
      }
    }
    passedElsewhere.push(...(others.get(tid) ?? []));
    out.push({
      job: r.job,
      testid: r.testid,
      trees: c.changes.filter((t) => trees.includes(t.tree) && t.from !== t.to),
      harness: { now, baseline: before },
      hosts: [...new Set(Object.values(job?.hosts ?? {}))].sort(),
      passedElsewhere: passedElsewhere.slice(0, PASSED_ELSEWHERE_MAX),
    });
  }
  return out;
}

/** report testid → where it passed in the newest `n` flights of other branches, newest first. */
async function otherBranchPasses(
  store: Store,
  flight: Flight,
  wanted: ReadonlySet<string>,
  n: number,
): Promise<Map<string, WhatChanged['passedElsewhere']>> {
  const out = new Map<string, WhatChanged['passedElsewhere']>();
  if (n === 0) return out;
  // Newest flights of every branch, until n of other branches are in hand (or there are no more).
  let limit = 4 * n;
  let picked: Flight[] = [];
  for (;;) {
    const list = await store.listFlights({ limit });
    picked = list.filter((f) => f.branch !== flight.branch && f.started !== null).slice(0, n);
    if (picked.length >= n || list.length < limit || limit >= 64 * n) break;
    limit *= 4;
  }
  const raws = await Promise.all(picked.map((f) => readFlight(store, f)));
  const ext = new ExternalBuilds(store);
  for (const raw of raws) {
    const rec = await toRecord(raw, new Map([[raw.flight.flight, raw]]), ext);
    for (const j of rec.jobs) {
      for (const s of j.steps) {
        const tid = reportTestid(s.testid);
        if (s.status !== 'pass' || !wanted.has(tid)) continue;
        const entry = { flight: rec.flight, branch: rec.branch, job: j.job, host: hostOfStep(j, s) ?? null };
        const l = out.get(tid);
        if (l === undefined) out.set(tid, [entry]);
        else l.push(entry);
      }
    }
  }
  return out;
}
