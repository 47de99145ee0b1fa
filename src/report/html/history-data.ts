/**
 * The data of the history pages, read through the Store interface (so it works on both stores) and
 * bounded: at most `limit` (default 100) flights per page, from a bounded scan of newest flights.
 *
 * Each page costs a few queries per flight shown; the per-flight queries run a few at a time.
 */
import type { Store } from '../../db/store.js';
import type { Flight, Runvar, Step } from '../../db/types.js';
import { isFinalJobStatus, type JobStatus, type StepStatus } from '../../model/status.js';
import { outcomeLine } from '../judge.js';
import type { Overall } from '../types.js';
import { isHostRunvar } from './flight-view.js';

export const DEFAULT_HISTORY_LIMIT = 100;
/** Job history looks at most this many of the newest flights to find the job's last `limit` runs. */
const SCAN_FACTOR = 5;
const PARALLEL = 8;

async function mapBounded<T, R>(items: readonly T[], fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, worker));
  return out;
}

function checkLimit(limit: number): number {
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
    throw new RangeError(`history limit must be a whole number from 1 to 1000, not ${limit}`);
  }
  return limit;
}

export interface JobHistoryRow {
  flight: string;
  branch: string;
  blessing: string;
  started: number | null;
  status: JobStatus;
  /** The first step that did not pass, by step number. */
  firstFailure: { stepno: number; testid: string; status: StepStatus } | null;
  /** From the first step's start to the last step's end; null while unknown. */
  duration: number | null;
  hosts: { ident: string; host: string }[];
  /** Tree → revision the job's artefacts were built from (see builtRevisions). */
  revisions: Record<string, string>;
  steps: { stepno: number; testid: string; status: StepStatus }[];
}

export interface JobHistory {
  job: string;
  branch?: string;
  /** Newest first. */
  rows: JobHistoryRow[];
  /** How many flights were looked at. */
  scanned: number;
  limit: number;
}

function runvarMap(rvs: readonly Runvar[]): Map<string, Runvar> {
  return new Map(rvs.map((r) => [r.name, r]));
}

function prefixed(rvs: ReadonlyMap<string, Runvar>, prefix: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, r] of rvs)
    if (name.startsWith(prefix) && name.length > prefix.length) out[name.slice(prefix.length)] = r.val;
  return out;
}

/**
 * What a job's run was built from: its own `built_revision_*` (a build job); else those of the
 * build job its `buildjob` runvar names (`job` in this flight, or `flight.job`); else its
 * definition `revision_*` runvars.
 */
async function builtRevisions(
  store: Store,
  flight: string,
  rvs: ReadonlyMap<string, Runvar>,
): Promise<Record<string, string>> {
  const own = prefixed(rvs, 'built_revision_');
  if (Object.keys(own).length > 0) return own;
  const bj = rvs.get('buildjob')?.val;
  if (bj !== undefined && bj !== '') {
    const dot = bj.indexOf('.');
    // A job name may itself hold dots; `flight.job` is only taken as such when that flight exists.
    let f = flight;
    let j = bj;
    if (dot > 0 && (await store.getFlight(bj.slice(0, dot))) !== undefined) {
      f = bj.slice(0, dot);
      j = bj.slice(dot + 1);
    }
    const theirs = prefixed(runvarMap(await store.listRunvars(f, j)), 'built_revision_');
    if (Object.keys(theirs).length > 0) return theirs;
  }
  return prefixed(rvs, 'revision_');
}

function jobSpan(steps: readonly Step[]): number | null {
  const starts = steps.map((s) => s.started).filter((t): t is number => t !== null);
  const ends = steps.map((s) => s.finished).filter((t): t is number => t !== null);
  if (starts.length === 0 || ends.length === 0 || steps.some((s) => s.finished === null)) return null;
  return Math.max(0, Math.max(...ends) - Math.min(...starts));
}

export async function loadJobHistory(
  store: Store,
  job: string,
  opts: { branch?: string; limit?: number } = {},
): Promise<JobHistory> {
  const limit = checkLimit(opts.limit ?? DEFAULT_HISTORY_LIMIT);
  const listOpts: { branch?: string; limit: number } = { limit: limit * SCAN_FACTOR };
  if (opts.branch !== undefined) listOpts.branch = opts.branch;
  const flights = await store.listFlights(listOpts);
  const found = await mapBounded(flights, async (f) => ({ f, j: await store.getJob(f.flight, job) }));
  const mine = found.filter((x) => x.j !== undefined).slice(0, limit);
  const rows = await mapBounded(mine, async ({ f, j }): Promise<JobHistoryRow> => {
    const [steps, rvList] = await Promise.all([
      store.listSteps(f.flight, job),
      store.listRunvars(f.flight, job),
    ]);
    steps.sort((a, b) => a.stepno - b.stepno);
    const rvs = runvarMap(rvList);
    const bad = steps.find((s) => s.status !== 'pass' && s.status !== 'running');
    return {
      flight: f.flight,
      branch: f.branch,
      blessing: f.blessing,
      started: f.started,
      status: j!.status,
      firstFailure: bad === undefined ? null : { stepno: bad.stepno, testid: bad.testid, status: bad.status },
      // A job still running has no duration yet, even between two steps.
      duration: isFinalJobStatus(j!.status) ? jobSpan(steps) : null,
      hosts: rvList
        .filter((r) => isHostRunvar(r.name) && r.val !== '')
        .map((r) => ({ ident: r.name, host: r.val }))
        .sort((a, b) => a.ident.localeCompare(b.ident)),
      revisions: await builtRevisions(store, f.flight, rvs),
      steps: steps.map((s) => ({ stepno: s.stepno, testid: s.testid, status: s.status })),
    };
  });
  const h: JobHistory = { job, rows, scanned: flights.length, limit };
  if (opts.branch !== undefined) h.branch = opts.branch;
  return h;
}

export interface HostHistoryRow {
  flight: string;
  job: string;
  /** The ident the job knew the host by (`host`, `src_host`…): its role in the job. */
  role: string;
  allocated: number;
  released: number | null;
  /** Undefined when the flight has since been deleted. */
  branch?: string;
  status?: JobStatus;
}

export interface HostHistory {
  host: string;
  /** False when the host is not (or no longer) in the host database. */
  known: boolean;
  flags: string[];
  /** Newest first. */
  rows: HostHistoryRow[];
  limit: number;
}

export async function loadHostHistory(
  store: Store,
  host: string,
  opts: { limit?: number } = {},
): Promise<HostHistory> {
  const limit = checkLimit(opts.limit ?? DEFAULT_HISTORY_LIMIT);
  const [h, events] = await Promise.all([
    store.getHost(host),
    // Each run is an allocate and a release; a little more covers runs whose release is still to come.
    store.allocationLog({ host, limit: limit * 2 + 2 }),
  ]);
  const open = new Map<string, HostHistoryRow>();
  const runs: HostHistoryRow[] = [];
  for (const e of events) {
    const key = `${e.flight}\u0000${e.job}\u0000${e.ident}`;
    if (e.event === 'allocate') {
      const row: HostHistoryRow = {
        flight: e.flight,
        job: e.job,
        role: e.ident,
        allocated: e.at,
        released: null,
      };
      open.set(key, row);
      runs.push(row);
    } else {
      const row = open.get(key);
      if (row !== undefined) {
        row.released = e.at;
        open.delete(key);
      }
    }
  }
  const rows = runs.reverse().slice(0, limit);
  const flights = new Map<string, Promise<Flight | undefined>>();
  await mapBounded(rows, async (r) => {
    let fp = flights.get(r.flight);
    if (fp === undefined) {
      fp = store.getFlight(r.flight);
      flights.set(r.flight, fp);
    }
    const f = await fp;
    if (f === undefined) return;
    r.branch = f.branch;
    const j = await store.getJob(r.flight, r.job);
    if (j !== undefined) r.status = j.status;
  });
  return { host, known: h !== undefined, flags: h?.flags ?? [], rows, limit };
}

/** The judgement of a flight, when someone made one (the report writes it; the gate knows pushes). */
export interface FlightVerdict {
  heading: string;
  overall: Overall;
  tolerable: boolean;
  pushed?: boolean;
}

export interface BranchFlightRow {
  flight: string;
  blessing: string;
  intended: string;
  created: number;
  started: number | null;
  jobs: number;
  /** Job status → how many jobs. */
  counts: Record<string, number>;
  /** `all pass`, `FAIL`, `trouble: …` from the job statuses (judge.ts outcomeLine). */
  outcome: string;
  verdict?: FlightVerdict;
}

export interface BranchHistory {
  branch: string;
  /** Newest first. */
  rows: BranchFlightRow[];
  limit: number;
}

export async function loadBranchHistory(
  store: Store,
  branch: string,
  opts: { limit?: number; verdictOf?: (f: Flight) => Promise<FlightVerdict | undefined> } = {},
): Promise<BranchHistory> {
  const limit = checkLimit(opts.limit ?? DEFAULT_HISTORY_LIMIT);
  const flights = await store.listFlights({ branch, limit });
  const rows = await mapBounded(flights, async (f): Promise<BranchFlightRow> => {
    const jobs = await store.listJobs(f.flight);
    const counts: Record<string, number> = {};
    for (const j of jobs) counts[j.status] = (counts[j.status] ?? 0) + 1;
    const row: BranchFlightRow = {
      flight: f.flight,
      blessing: f.blessing,
      intended: f.intended,
      created: f.created,
      started: f.started,
      jobs: jobs.length,
      counts,
      outcome: jobs.length === 0 ? 'no jobs' : outcomeLine(jobs),
    };
    const v = await opts.verdictOf?.(f);
    if (v !== undefined) row.verdict = v;
    return row;
  });
  return { branch, rows, limit };
}

export interface FlightList {
  branch?: string;
  flights: (Flight & { jobs: number; outcome: string })[];
  limit: number;
}

export async function loadFlightList(
  store: Store,
  opts: { branch?: string; limit?: number } = {},
): Promise<FlightList> {
  const limit = checkLimit(opts.limit ?? DEFAULT_HISTORY_LIMIT);
  const listOpts: { branch?: string; limit: number } = { limit };
  if (opts.branch !== undefined) listOpts.branch = opts.branch;
  const flights = await store.listFlights(listOpts);
  const withJobs = await mapBounded(flights, async (f) => {
    const jobs = await store.listJobs(f.flight);
    return { ...f, jobs: jobs.length, outcome: jobs.length === 0 ? 'no jobs' : outcomeLine(jobs) };
  });
  const l: FlightList = { flights: withJobs, limit };
  if (opts.branch !== undefined) l.branch = opts.branch;
  return l;
}
