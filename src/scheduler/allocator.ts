/**
 * The planner (planner.ts) applied to the store: lab-mode host allocation.
 *
 * A snapshot is read from the store (hosts with their effective flags, health and shares; who holds
 * what until when; the jobs of queued flights whose dependencies have settled; their history for
 * estimates), `plan` decides, and an `allocate` decision is applied with one atomic store call that
 * takes every host of the job or none (LabStore.takeHosts). If that call loses a race with another
 * worker (someone took a host, or the job, first), a new snapshot is read and the planner asked again.
 *
 * Two users: a worker claiming its next job (`claimNext`: the claim and the hosts in one
 * transaction), and ts-hosts-allocate in lab mode for a job run outside a worker (`allocateForJob`).
 */
import type { Config } from '../config/config.js';
import type {
  Announcement,
  HistoryAsk,
  HostShareRow,
  LabQueueJob,
  LabStore,
  PastJobRun,
  QueuedFlight,
  SchedulerHostRow,
  ShareTake,
  TakeHosts,
} from '../db/lab/types.js';
import type { Store } from '../db/store.js';
import { SchedulerInputError } from './errors.js';
import { estimateDuration, estimatesByHost, type PastRun } from './estimate.js';
import { decisionFor, type Plan, PlanCache, plan } from './planner.js';
import { defaultPriority } from './priority.js';
import { jobRequirements } from './requirements.js';
import type {
  Decision,
  HeldAllocation,
  Millis,
  QueuedJob,
  Reservation,
  SchedHost,
  Snapshot,
} from './types.js';
import type { WakeLedger } from './wake-ledger.js';

/** A job's runvar naming the host a health-check job checks (it is given that host whatever its health). */
export const HEALTH_CHECK_RUNVAR = 'health_check_host';
/** How far back job history is read for estimates and preferences. */
const HISTORY_MS = 30 * 24 * 3600_000;
/** Kept history is read again after this long even when no run has ended (old runs age out of HISTORY_MS). */
const HISTORY_REFRESH_MS = 60_000;
/** …and not before this long, even when one has. */
const HISTORY_MIN_AGE_MS = 5_000;

/** What schedulerState is asked about history, given the history kept. */
function historyAsk(kept: { mark: number; read: Millis } | undefined, now: Millis): { history?: HistoryAsk } {
  if (!kept) return {};
  const age = now - kept.read;
  if (age >= HISTORY_REFRESH_MS) return {};
  if (age < HISTORY_MIN_AGE_MS) return { history: 'skip' };
  return { history: { unlessMark: kept.mark } };
}

export interface AllocatorOptions {
  store: Store;
  /** The lab store to read and take with (default `store.lab`): the one a decision's turn gives. */
  lab?: LabStore;
  config: Config;
  /** Harness revision of the jobs' runners (shared build hosts are joined only on the same one). */
  harness: string | null;
  /** The host idents a job needs when it has no `host_idents` runvar (its recipe's); default [`host`]. */
  identsOf?: (job: LabQueueJob) => Promise<string[]> | string[];
  /** Keeps candidate sets between plans (a worker keeps one). */
  cache?: PlanCache;
  now?: () => Millis;
}

/** A queued job as the allocator planned it. */
export interface PlannedJob {
  key: string;
  flight: string;
  job: string;
  recipe: string;
  runvars: Record<string, string>;
  waitStart: Millis;
}

export interface LabSnapshot {
  snapshot: Snapshot;
  jobs: Map<string, PlannedJob>;
  /** Runnable health-check jobs (not planned: they take their host whatever its health). */
  healthChecks: { job: LabQueueJob; host: string }[];
  /** Jobs whose definition the scheduler cannot use: key → why. */
  bad: Map<string, { job: LabQueueJob; why: string }>;
  /** PostgreSQL: the database snapshot it was read at (see WakeLedger). */
  dbSnapshot?: string;
}

const labOf = (o: AllocatorOptions): LabStore => o.lab ?? o.store.lab;

export const jobKey = (flight: string, job: string): string => `${flight}/${job}`;

function schedHosts(
  config: Config,
  hosts: readonly SchedulerHostRow[],
  health: Map<string, string>,
  shares: HostShareRow[],
): SchedHost[] {
  return hosts.map((h) => {
    const props: Record<string, string> = { ...h.props };
    for (const p of ['SharedMaxTasks', 'SharedMaxWear']) {
      const v = config.hostProp(h.name, p, h.props);
      if (v !== undefined) props[p] = v;
    }
    const sh = shares.find((s) => s.host === h.name);
    const s: SchedHost = {
      name: h.name,
      flags: config.hostFlags(h.name, h.flags),
      props,
      health: (health.get(h.name) ?? 'good') as SchedHost['health'],
    };
    if (sh)
      s.share = {
        type: sh.type,
        harness: sh.harness,
        state: sh.state,
        slots: sh.slots,
        wear: sh.wear,
        wearLimit: sh.wearLimit,
      };
    return s;
  });
}

/** Same-flight jobs a job waits for: those its `*buildjob` runvars name (`flight.job` names another flight). */
function dependencies(j: LabQueueJob): string[] {
  const out: string[] = [];
  for (const [name, val] of Object.entries(j.runvars)) {
    if (!name.endsWith('buildjob')) continue;
    const dot = val.indexOf('.');
    if (dot > 0) continue;
    out.push(val);
  }
  return out;
}

function toPastRuns(runs: readonly PastJobRun[]): PastRun[] {
  return runs.map((r) => ({
    hosts: r.hosts,
    durationMs: r.finished - r.started,
    finished: r.finished,
    status: r.status,
  }));
}

const NO_RUNS: PastJobRun[] = [];

/** What labSnapshot worked out per queued job and per job name, kept between decisions with a PlanCache. */
class SnapshotMemo {
  /** The hosts the per-host estimates are for. */
  private hosts = '';
  readonly reqs = new Map<
    string,
    {
      sig: string;
      runvars: Record<string, string>;
      harness: string | null;
      idents: string;
      req: ReturnType<typeof jobRequirements>;
    }
  >();
  /** By job name; `runs` is the history array they were worked out from. */
  readonly estimates = new Map<
    string,
    {
      runs: readonly PastJobRun[];
      durationMs: number;
      byHost: Record<string, number>;
      prefs: NonNullable<QueuedJob['prefs']>;
    }
  >();
  /** Job history as last read: the store's mark for it, when, and for which job names. */
  history:
    | {
        mark: number;
        read: Millis;
        names: Set<string>;
        runs: PastJobRun[];
        byJob?: Map<string, PastJobRun[]>;
      }
    | undefined;
  /** A history refresh under way in the background (see claimNext). */
  refreshing: Promise<void> | undefined;
  /** Definition runvars of queued flights that have started (frozen), by flight and job. */
  readonly runvars = new Map<string, Map<string, Record<string, string>>>();

  forHosts(hosts: string): void {
    if (hosts !== this.hosts) {
      this.hosts = hosts;
      this.estimates.clear();
    }
    // Jobs leave the queue; keep a long-lived worker's memo from growing for ever.
    if (this.reqs.size > 20_000) this.reqs.clear();
    if (this.estimates.size > 20_000) this.estimates.clear();
  }
}
const memos = new WeakMap<PlanCache, SnapshotMemo>();
function memoFor(cache: PlanCache | undefined): SnapshotMemo {
  if (!cache) return new SnapshotMemo();
  let m = memos.get(cache);
  if (!m) {
    m = new SnapshotMemo();
    memos.set(cache, m);
  }
  return m;
}

/**
 * Adds the history of queued job names the kept history was not read for (a flight of new jobs).
 * The kept history is replaced, never changed in place: a refresh in the background (claimNext) and
 * a decision may both be at it, and neither may add a name's runs twice.
 */
async function addMissingHistory(
  o: AllocatorOptions,
  memo: SnapshotMemo,
  names: Iterable<string>,
  now: Millis,
): Promise<void> {
  const missing = [...names].filter((n) => !memo.history?.names.has(n));
  if (missing.length === 0) return;
  const more = await labOf(o).pastRuns(missing, { since: now - HISTORY_MS });
  const kept = memo.history;
  if (!kept) return;
  const fresh = new Set(missing.filter((n) => !kept.names.has(n)));
  if (fresh.size === 0) return;
  memo.history = {
    mark: kept.mark,
    read: kept.read,
    names: new Set([...kept.names, ...fresh]),
    runs: [...kept.runs, ...more.filter((r) => fresh.has(r.job))].sort((a, b) => b.finished - a.finished),
  };
}

/**
 * Brings the kept job history up to date, so that decisions' own reads skip it. Estimates need no
 * history fresher than a few seconds, and reading it (or a new flight's names' history) inside the
 * turn made the slowest decisions and kept the other workers waiting: ~15 ms of a 20 ms read
 * (bench/scheduler, 2026-12-03).
 */
async function refreshHistory(o: AllocatorOptions): Promise<void> {
  const now = (o.now ?? Date.now)();
  const memo = memoFor(o.cache);
  const ask = historyAsk(memo.history, now);
  // Between refreshes, a flight queued since is read inside the turn (addMissingHistory): asking
  // before every turn cost every worker a round trip at each change, all at the same moment.
  if (memo.history && ask.history === 'skip') return;
  const h = await o.store.lab.jobHistory({ since: now - HISTORY_MS, ...ask });
  if (h.runs || !memo.history)
    memo.history = { mark: h.mark, read: now, names: new Set(h.queuedJobs), runs: h.runs ?? [] };
  else await addMissingHistory(o, memo, h.queuedJobs, now);
}

/** Reads the lab's state and the runnable queue; `extra` adds a job that is not queued for workers (a run-job by hand). */
export async function labSnapshot(
  o: AllocatorOptions,
  extra?: QueuedJobInput,
  /** The kept history is kept up to date apart from the decision (claimNext's refreshHistory): do not read it here. */
  historyFresh = false,
): Promise<LabSnapshot> {
  const { config } = o;
  const now = (o.now ?? Date.now)();
  const names = extra ? [extra.job] : [];
  const memo = memoFor(o.cache);
  // One read of everything, at one moment (one round trip on PostgreSQL): with separate reads, a
  // decision cost ~20 round trips and saw the lab at several moments. The definition runvars of
  // flights that have started cannot change, so they are read once, not at every decision (they
  // were most of the read: bench/scheduler).
  const state = await labOf(o).schedulerState({
    now,
    historySince: now - HISTORY_MS,
    alsoJobs: names,
    runvarsKnown: [...memo.runvars.keys()],
    // Job history changes only when a run ends: read again when it may have (but not more often
    // than every few seconds: estimates need no fresher history, and a busy lab's runs end all
    // the time), and at least once a minute.
    ...(historyFresh && memo.history ? { history: 'skip' as const } : historyAsk(memo.history, now)),
  });
  const { hosts, health, shares, holds, queue, reservations: booked } = state;
  const queuedNames = new Set([
    ...queue.jobs.filter((j) => j.status === 'queued').map((j) => j.job),
    ...names,
  ]);
  if (state.history || !memo.history) {
    memo.history = { mark: state.historyMark, read: now, names: queuedNames, runs: state.history ?? [] };
  } else {
    // A queued job name the kept history was not read for (a flight queued since): read its history now.
    await addMissingHistory(o, memo, queuedNames, now);
  }
  const queued = new Set(queue.flights.map((f) => f.flight));
  for (const f of memo.runvars.keys()) if (!queued.has(f)) memo.runvars.delete(f);
  const started = new Set(queue.flights.filter((f) => f.started !== null).map((f) => f.flight));
  for (const j of queue.jobs) {
    const known = memo.runvars.get(j.flight);
    if (known) j.runvars = known.get(j.job) ?? {};
    else if (started.has(j.flight)) {
      const m = new Map<string, Record<string, string>>();
      for (const x of queue.jobs) if (x.flight === j.flight) m.set(x.job, x.runvars);
      memo.runvars.set(j.flight, m);
    }
  }
  const snapHosts = schedHosts(config, hosts, new Map(health.map((h) => [h.host, h.state])), shares);
  const allocations: HeldAllocation[] = holds.map((h) => ({
    host: h.host,
    holder: jobKey(h.flight, h.job),
    since: h.allocated,
    expectedEnd: h.expectedEnd,
  }));
  // Blockages and hosts taken by hand: the planner books around them (takeHosts refuses them too).
  const reservations: Reservation[] = booked.map((r) => ({
    host: r.host,
    start: r.start,
    end: r.end,
    label: `${r.kind} ${r.id} by ${r.owner}: ${r.label}`,
  }));
  const flights = new Map<string, QueuedFlight>(queue.flights.map((f) => [f.flight, f]));
  const byKey = new Map(queue.jobs.map((j) => [jobKey(j.flight, j.job), j]));
  const runnable: LabQueueJob[] = [];
  for (const j of queue.jobs) {
    if (j.status !== 'queued' || j.claimedBy !== null) continue;
    const deps = dependencies(j).map((d) => byKey.get(jobKey(j.flight, d)));
    if (deps.some((d) => d !== undefined && ['queued', 'preparing', 'running'].includes(d.status))) continue;
    runnable.push(j);
  }
  const healthChecks: LabSnapshot['healthChecks'] = [];
  const planned = runnable.filter((j) => {
    const h = j.runvars[HEALTH_CHECK_RUNVAR];
    if (h === undefined) return true;
    healthChecks.push({ job: j, host: h });
    return false;
  });
  // By job name, made again only when the history was (so an unchanged name keeps its array, and
  // its estimates below are known by that array alone).
  const historyOf = memo.history.byJob ?? new Map<string, PastJobRun[]>();
  if (!memo.history.byJob) {
    for (const r of memo.history.runs) {
      const l = historyOf.get(r.job);
      if (l) l.push(r);
      else historyOf.set(r.job, [r]);
    }
    memo.history.byJob = historyOf;
  }
  const snapHostNames = snapHosts.map((h) => h.name);
  memo.forHosts(snapHostNames.join(','));
  const hostWait = config.int('FlightHostWait');
  const jobs = new Map<string, PlannedJob>();
  const bad = new Map<string, { job: LabQueueJob; why: string }>();
  const q: QueuedJob[] = [];
  const add = async (input: QueuedJobInput, lq?: LabQueueJob) => {
    const key = jobKey(input.flight, input.job);
    let defaultIdents: string[] | undefined = input.idents;
    try {
      if (!defaultIdents && lq && o.identsOf) defaultIdents = await o.identsOf(lq);
      // A queued job's requirements and estimates are the same decision after decision until its
      // runvars or its name's history change; working them out afresh for every queued job was most
      // of a worker's CPU (bench/scheduler).
      // Runvars of a started flight are the same object decision after decision (see runvarsKnown).
      const idents = defaultIdents?.join(' ') ?? '';
      let r = memo.reqs.get(key);
      if (r && (r.harness !== o.harness || r.idents !== idents)) r = undefined;
      if (r && r.runvars !== input.runvars) {
        if (JSON.stringify(input.runvars) === r.sig) r.runvars = input.runvars;
        else r = undefined;
      }
      if (!r) {
        r = {
          sig: JSON.stringify(input.runvars),
          runvars: input.runvars,
          harness: o.harness,
          idents,
          req: jobRequirements({
            flight: input.flight,
            job: input.job,
            runvars: input.runvars,
            intended: null,
            harness: o.harness,
            ...(defaultIdents ? { defaultIdents } : {}),
          }),
        };
        memo.reqs.set(key, r);
      }
      const req = r.req;
      const mine = historyOf.get(input.job) ?? NO_RUNS;
      let e = memo.estimates.get(input.job);
      if (e?.runs !== mine) {
        const past = toPastRuns(mine);
        const byHost = estimatesByHost(past, snapHostNames);
        for (const k of Object.keys(byHost)) byHost[k] = Math.max(1, byHost[k]!);
        const lastRanOn: Record<string, Millis> = {};
        for (const x of mine) for (const h of x.hosts) lastRanOn[h] = Math.max(lastRanOn[h] ?? 0, x.finished);
        // Newest first: the last run.
        const last = mine[0];
        e = {
          runs: mine,
          durationMs: Math.max(1, estimateDuration(past).ms),
          byHost,
          prefs: { lastRanOn, ...(last?.status === 'fail' ? { lastFailedHosts: last.hosts } : {}) },
        };
        memo.estimates.set(input.job, e);
      }
      const qj: QueuedJob = {
        key,
        req,
        durationMs: e.durationMs,
        priority: input.priority,
        waitStart: input.waitStart,
        prefs: e.prefs,
      };
      if (req.idents.length === 1 && Object.keys(e.byHost).length > 0) qj.durationByHost = e.byHost;
      const starve = input.starveAfterMs ?? (hostWait > 0 ? hostWait * 1000 : undefined);
      if (starve !== undefined) qj.starveAfterMs = starve;
      q.push(qj);
      jobs.set(key, {
        key,
        flight: input.flight,
        job: input.job,
        recipe: input.recipe,
        runvars: input.runvars,
        waitStart: input.waitStart,
      });
    } catch (e) {
      // A queued job the scheduler cannot read (bad host flags, unknown recipe) is reported, not fatal.
      if (!lq || !(e instanceof Error)) throw e;
      bad.set(key, {
        job: lq,
        why: e instanceof SchedulerInputError ? e.message : `${e.name}: ${e.message}`,
      });
    }
  };
  for (const j of planned) {
    const f = flights.get(j.flight)!;
    const depEnds = dependencies(j).map((d) => byKey.get(jobKey(j.flight, d))?.lastFinished ?? 0);
    await add(
      {
        flight: j.flight,
        job: j.job,
        recipe: j.recipe,
        runvars: j.runvars,
        priority: f.priority ?? defaultPriority(f.intended),
        waitStart: Math.max(f.queued, ...depEnds),
      },
      j,
    );
  }
  if (extra && !jobs.has(jobKey(extra.flight, extra.job))) await add(extra);
  return {
    snapshot: { now, hosts: snapHosts, allocations, reservations, queue: q },
    jobs,
    healthChecks,
    bad,
    ...(state.snapshot === undefined ? {} : { dbSnapshot: state.snapshot }),
  };
}

/** A job to plan that is not (or not only) in the workers' queue. */
export interface QueuedJobInput {
  flight: string;
  job: string;
  recipe: string;
  /** Definition runvars (a `<ident>` runvar pins that ident's host). */
  runvars: Record<string, string>;
  priority: number;
  waitStart: Millis;
  /** Default: config FlightHostWait (0: never starved). */
  starveAfterMs?: number;
  /** The job's idents when it has no host_idents runvar. */
  idents?: string[];
}

type AllocateDecision = Extract<Decision, { kind: 'allocate' }>;

function shareTake(d: AllocateDecision): ShareTake | undefined {
  return d.share;
}

export interface Claimed {
  flight: string;
  job: string;
  recipe: string;
  /** Host by ident. */
  hosts: Record<string, string>;
  share?: ShareTake;
  /** The planner's expected end. */
  expectedEnd: Millis;
  /** Set for a health-check job: the host it checks. */
  healthCheck?: string;
}

/**
 * The plan's decisions in the order this worker tries them: the jobs it may start now that share the
 * first one's priority begin at a place that depends on the worker, so workers woken by the same
 * change and planning the same lab do not all race for the same job (they start now either way, on
 * different hosts); every other decision keeps its place.
 */
export function tryOrder(
  decisions: readonly Decision[],
  queue: readonly QueuedJob[],
  worker: string,
): Decision[] {
  const prio = new Map(queue.map((j) => [j.key, j.priority]));
  const now: Decision[] = decisions.filter((d) => d.kind === 'allocate');
  if (now.length < 2) return [...decisions];
  const first = prio.get(now[0]!.key);
  const peers: Decision[] = now.filter((d) => prio.get(d.key) === first);
  let h = 0;
  for (const c of worker) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  const k = h % peers.length;
  const turned = [...peers.slice(k), ...peers.slice(0, k)];
  let i = 0;
  return decisions.map((d) => (peers.includes(d) ? turned[i++]! : d));
}

export interface ClaimOutcome {
  /** The first job claimed (see `claims`). */
  claimed?: Claimed;
  /** Every job claimed, at most `maxClaims`, in the plan's order. */
  claims: Claimed[];
  /** Jobs ended without running (starved, or broken: no host can ever serve them, bad definition). */
  settled: { flight: string; job: string; status: 'starved' | 'broken'; reason: string }[];
  /** Times a write lost a race and the planner was asked again. */
  replans: number;
  /** Why each lost take lost (the store's words), for diagnosis. */
  lost: string[];
  /**
   * After a claim: whether the plan had more jobs to start now (false: asking again at once would
   * find nothing, until the lab changes).
   */
  more: boolean;
  /**
   * No decision was made: another worker's had already seen what woke this one, or another worker
   * was deciding and its announcement will say (see WakeLedger, LabStore.deciding).
   */
  skipped: boolean;
  /** PostgreSQL: the snapshot the (last) plan was made from. */
  dbSnapshot?: string;
  /** When that plan has something fall due with time alone (a booking, a job starving); Infinity: nothing. */
  nextDue?: Millis;
  /** Where the call's time went, ms: bringing the job history up to date (before its turn), waiting for other workers' decisions, reading the lab (and working out the snapshot), planning, taking hosts. */
  ms: { history: number; waitingForTurn: number; reading: number; planning: number; taking: number };
  /** Runnable jobs left waiting (with why), for display. */
  waiting: { key: string; reason: string }[];
}

/**
 * Claims the next job this worker can start now, with all its hosts, in one transaction; re-plans
 * when another worker got there first. Ends jobs the planner finds starved or impossible.
 */
export async function claimNext(o: ClaimOptions): Promise<ClaimOutcome> {
  const cache = o.cache ?? new PlanCache();
  const h0 = performance.now();
  const memo = memoFor(cache);
  // With history kept, the decision does not wait for its refresh: a few seconds' staleness changes
  // no estimate worth having, and waiting for it made the call slower (bench/scheduler, 2026-12-03).
  if (!memo.history) await refreshHistory({ ...o, cache });
  else
    memo.refreshing ??= refreshHistory({ ...o, cache })
      // Nothing is lost: the next call asks again, and the decision reads what it lacks itself.
      .catch(() => undefined)
      .finally(() => {
        memo.refreshing = undefined;
      });
  const t0 = performance.now();
  let waited = 0;
  // With a ledger, a worker that finds another deciding does not wait for it: that one's
  // announcement settles this one's changes in the ledger, or says there is more (and this one
  // decides then).
  const busy = o.ledger ? () => ({ ...emptyOutcome(), skipped: true }) : undefined;
  // Said while still holding the turn. "More" too when this worker heard of changes its read did
  // not see: the workers it turned away meanwhile rely on it.
  const announced = (got: ClaimOutcome): Announcement | undefined =>
    got.skipped
      ? undefined
      : {
          snapshot: got.dbSnapshot,
          more: leftMore(got) || (o.ledger?.needed ?? false),
          ...(got.nextDue === undefined ? {} : { due: got.nextDue }),
        };
  const out = await o.store.lab.deciding(
    async (lab) => {
      waited = performance.now() - t0;
      // Another worker's decision, announced since this one was woken (or, without a ledger, made
      // while it waited for its turn), may have seen all that woke it and left nothing to start.
      if (o.ledger && !o.ledger.needed) return { ...emptyOutcome(), skipped: true };
      o.ledger?.deciding();
      const got = await decideNext({ ...o, cache, lab });
      o.ledger?.decided(got.dbSnapshot, leftMore(got), got.nextDue);
      return got;
    },
    busy,
    announced,
  );
  out.ms.waitingForTurn = waited;
  out.ms.history = t0 - h0;
  return out;
}

/** Whether a decision leaves more to start than it took (or cannot tell: it lost a race). */
function leftMore(got: ClaimOutcome): boolean {
  return got.claimed ? got.more : got.lost.length > 0;
}

export interface ClaimOptions extends AllocatorOptions {
  worker: string;
  leaseMs: number;
  maxReplans?: number;
  /** The worker's record of what woke it (PostgreSQL): lets it skip a decision another has made. */
  ledger?: WakeLedger;
  /** Most jobs to claim in this one decision (its free slots; default 1). */
  maxClaims?: number;
}

/** The first time at which the plan changes with time alone: a booking's start, a job's starving. */
export function nextDue(p: Plan, s: Snapshot): Millis {
  let due = Number.POSITIVE_INFINITY;
  for (const d of p.decisions) if (d.kind === 'book') due = Math.min(due, d.start);
  for (const j of s.queue)
    if (j.starveAfterMs !== undefined) due = Math.min(due, j.waitStart + j.starveAfterMs);
  return due;
}

function emptyOutcome(): ClaimOutcome {
  return {
    settled: [],
    claims: [],
    replans: 0,
    waiting: [],
    lost: [],
    more: false,
    skipped: false,
    ms: { history: 0, waitingForTurn: 0, reading: 0, planning: 0, taking: 0 },
  };
}

async function decideNext(o: ClaimOptions): Promise<ClaimOutcome> {
  const out = emptyOutcome();
  const cache = o.cache ?? new PlanCache();
  const timed = async <T>(phase: 'reading' | 'taking', f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await f();
    } finally {
      out.ms[phase] += performance.now() - t0;
    }
  };
  for (;;) {
    const snap = await timed('reading', () => labSnapshot({ ...o, cache }, undefined, true));
    if (snap.dbSnapshot !== undefined) out.dbSnapshot = snap.dbSnapshot;
    for (const { job, why } of snap.bad.values()) {
      const reason = `cannot plan hosts: ${why}`;
      if (await labOf(o).settleUnclaimed(job.flight, job.job, 'broken', reason))
        out.settled.push({ flight: job.flight, job: job.job, status: 'broken', reason });
    }
    for (const hc of snap.healthChecks) {
      const r = await labOf(o).takeHosts({
        flight: hc.job.flight,
        job: hc.job.job,
        holds: [{ ident: 'host', host: hc.host }],
        claimFor: o.worker,
        leaseMs: o.leaseMs,
        outOfService: true,
        expectedEnd: snap.snapshot.now + 600_000,
      });
      if (r.ok) {
        out.claimed = {
          flight: hc.job.flight,
          job: hc.job.job,
          recipe: hc.job.recipe,
          hosts: { host: hc.host },
          expectedEnd: snap.snapshot.now + 600_000,
          healthCheck: hc.host,
        };
        out.claims.push(out.claimed);
        // The plan was not even made: the other workers must not take this decision for one that
        // found nothing more to start.
        out.more = true;
        return out;
      }
      out.waiting.push({ key: jobKey(hc.job.flight, hc.job.job), reason: r.why });
    }
    const p0 = performance.now();
    const p: Plan = plan(snap.snapshot, { cache });
    out.ms.planning += performance.now() - p0;
    out.nextDue = nextDue(p, snap.snapshot);
    let lost = false;
    let lostNow = 0;
    out.waiting = [];
    const allocs: AllocateDecision[] = [];
    for (const d of tryOrder(p.decisions, snap.snapshot.queue, o.worker)) {
      const pj = snap.jobs.get(d.key)!;
      if (d.kind === 'starved' || d.kind === 'impossible') {
        const status = d.kind === 'starved' ? 'starved' : 'broken';
        const reason = d.kind === 'starved' ? d.reason : `no host can ever serve it: ${d.reason}`;
        if (await labOf(o).settleUnclaimed(pj.flight, pj.job, status, reason))
          out.settled.push({ flight: pj.flight, job: pj.job, status, reason });
        continue;
      }
      if (d.kind !== 'allocate') {
        out.waiting.push({
          key: d.key,
          reason:
            d.kind === 'wait'
              ? d.reason
              : `booked ${Object.values(d.hosts).join(',')} in ${Math.round((d.start - p.now) / 1000)} s`,
        });
        continue;
      }
      allocs.push(d);
    }
    // The plan's jobs to start now use other hosts, so this worker takes as many as it has slots in
    // one turn, in one transaction (they went one after another, two round trips each; at once, on
    // connections of their own, ten takes cost 106 ms instead of ~20 on 2 cores: bench/scheduler,
    // 2026-12-03). The ones after a refused take are tried too, as far as slots allow.
    let next = 0;
    while (next < allocs.length && out.claims.length < (o.maxClaims ?? 1)) {
      const group = allocs.slice(next, next + (o.maxClaims ?? 1) - out.claims.length);
      next += group.length;
      const takes = group.map((d): TakeHosts => {
        const pj = snap.jobs.get(d.key)!;
        const share = shareTake(d);
        return {
          flight: pj.flight,
          job: pj.job,
          holds: Object.entries(d.hosts).map(([ident, host]) => ({ ident, host })),
          ...(share ? { share } : {}),
          claimFor: o.worker,
          leaseMs: o.leaseMs,
          expectedEnd: d.end,
        };
      });
      const results = await timed('taking', () => labOf(o).takeEach(takes));
      for (const [k, r] of results.entries()) {
        const d = group[k]!;
        const pj = snap.jobs.get(d.key)!;
        if (r.ok) {
          const c: Claimed = {
            flight: pj.flight,
            job: pj.job,
            recipe: pj.recipe,
            hosts: d.hosts,
            expectedEnd: d.end,
          };
          const share = shareTake(d);
          if (share) c.share = share;
          out.claims.push(c);
          out.claimed ??= c;
          continue;
        }
        if (/draining|has ended/.test(r.why)) return out;
        out.lost.push(r.why);
        lostNow += 1;
        // Someone else changed the lab since the snapshot: most often another worker, woken by the
        // same change, took this very job or its hosts. The plan's other decisions use other hosts,
        // so try them before reading the lab again (with 4 workers, re-planning at once on every lost
        // race made most decisions read the lab several times: bench/scheduler).
        lost = true;
      }
    }
    // Another job the plan would start now that no one was seen to take: worth asking again at once.
    if (out.claimed) out.more = allocs.length - out.claims.length - lostNow > 0;
    if (out.claimed || !lost || out.replans >= (o.maxReplans ?? 5)) return out;
    out.replans += 1;
  }
}

export type AllocateOutcome =
  | { ok: true; hosts: Record<string, string>; waitedMs: number; replans: number }
  | { ok: false; status: 'starved' | 'broken'; reason: string };

/**
 * Hosts for a job run outside a worker (ts-hosts-allocate in lab mode): the job's holds if it has
 * them already for every ident (a worker took them when it claimed the job), else the planner's
 * choice, waiting (polling, and woken by NOTIFY on PostgreSQL) up to `waitMs` while the planner
 * says wait or book. Holds made here have no lease (nobody would renew it).
 */
export async function allocateForJob(
  o: AllocatorOptions & {
    flight: string;
    job: string;
    idents: string[];
    /** `ident=host` given on the command line: pins, like the `<ident>` runvar. */
    pinned?: Record<string, string>;
    waitMs: number;
    pollMs?: number;
    log?: (line: string) => void;
  },
): Promise<AllocateOutcome> {
  const { store, flight, job } = o;
  const t0 = Date.now();
  const mine = (await store.lab.listHolds()).filter((h) => h.flight === flight && h.job === job);
  if (o.idents.every((i) => mine.some((h) => h.ident === i))) {
    const hosts: Record<string, string> = {};
    for (const i of o.idents) hosts[i] = mine.find((h) => h.ident === i)!.host;
    return { ok: true, hosts, waitedMs: 0, replans: 0 };
  }
  const f = await store.getFlight(flight);
  const j = await store.getJob(flight, job);
  if (!f || !j) return { ok: false, status: 'broken', reason: `no job ${flight}/${job}` };
  const runvars: Record<string, string> = {};
  for (const r of await store.listRunvars(flight, job)) if (!r.synth) runvars[r.name] = r.val;
  Object.assign(runvars, o.pinned ?? {});
  if (runvars.host_idents === undefined) runvars.host_idents = o.idents.join(' ');
  const input: QueuedJobInput = {
    flight,
    job,
    recipe: j.recipe,
    runvars,
    priority: defaultPriority(f.intended),
    waitStart: t0,
    idents: o.idents,
  };
  if (o.waitMs > 0) input.starveAfterMs = o.waitMs;
  const cache = o.cache ?? new PlanCache();
  let replans = 0;
  let lastSaid = '';
  let wake: (() => void) | undefined;
  const stop = await store.lab.listen(() => wake?.());
  try {
    for (;;) {
      const snap = await labSnapshot({ ...o, cache }, input);
      const key = jobKey(flight, job);
      const d = decisionFor(plan(snap.snapshot, { cache }), key);
      if (!d) return { ok: false, status: 'broken', reason: `the planner did not consider ${key}` };
      if (d.kind === 'impossible')
        return { ok: false, status: 'broken', reason: `no host can ever serve it: ${d.reason}` };
      if (d.kind === 'starved') return { ok: false, status: 'starved', reason: d.reason };
      if (d.kind === 'allocate') {
        const share = shareTake(d);
        const r = await store.lab.takeHosts({
          flight,
          job,
          holds: Object.entries(d.hosts).map(([ident, host]) => ({ ident, host })),
          ...(share ? { share } : {}),
          expectedEnd: d.end,
        });
        if (r.ok) return { ok: true, hosts: d.hosts, waitedMs: Date.now() - t0, replans };
        replans += 1;
        continue;
      }
      const why =
        d.kind === 'wait'
          ? d.reason
          : `hosts ${Object.values(d.hosts).join(',')} booked for it in ${Math.round((d.start - snap.snapshot.now) / 1000)} s`;
      if (o.waitMs === 0) return { ok: false, status: 'broken', reason: why };
      if (Date.now() - t0 >= o.waitMs)
        return {
          ok: false,
          status: 'starved',
          reason: `no hosts within ${Math.round(o.waitMs / 1000)} s: ${why}`,
        };
      if (why !== lastSaid) {
        o.log?.(`waiting: ${why}`);
        lastSaid = why;
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(o.pollMs ?? 2000, Math.max(0, t0 + o.waitMs - Date.now())));
        wake = () => {
          clearTimeout(t);
          r();
        };
      });
      wake = undefined;
    }
  } finally {
    await stop();
  }
}
