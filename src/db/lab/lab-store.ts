/**
 * The lab store's logic, once for both databases (see driver.ts for how a transaction runs on each).
 *
 * Exclusivity of hosts rests on two things: an exclusive allocation is a row of `allocations`, whose
 * primary key is the host; and every change that looks at a host before giving it away (taking
 * hosts, joining or starting a share) first locks the host's row `FOR UPDATE` on PostgreSQL, which
 * also waits for (and is waited for by) the core store's allocateHost (its insert takes a key-share
 * lock on that row). sqlite's BEGIN IMMEDIATE makes every writer wait its turn.
 *
 * Lock order on PostgreSQL: worker → job → hosts → holds; the reaper only ever SKIPs rows others
 * hold, so it never waits while holding a lock a worker needs.
 */
import { isFinalJobStatus, isJobStatus, type JobStatus, nextJobStatus } from '../../model/status.js';
import { ConflictError, NotFoundError, StoreError } from '../errors.js';
import { checkHostIdent, checkHostName, checkNonEmpty } from '../names.js';
import type { Millis } from '../types.js';
import {
  batch,
  type Dialect,
  inline,
  type LabDriver,
  omitted,
  query,
  type Stmt,
  sql,
  type TxBody,
} from './driver.js';
import {
  type Announcement,
  type HealthChange,
  type HealthState,
  type HistoryAsk,
  type Hold,
  type HoldEvent,
  type HostHealthRecord,
  type HostShareRow,
  isHealthState,
  type JobClaim,
  type JobOutcome,
  type LabQueue,
  type LabQueueJob,
  type LabReservation,
  type LabStore,
  type LabWake,
  type NewReservations,
  type PastJobRun,
  type QueuedFlight,
  RESERVATION_KINDS,
  type ReapResult,
  type ReservationKind,
  type SchedulerHostRow,
  type SchedulerState,
  type TakeHosts,
  type TakeResult,
  type Worker,
} from './types.js';

/** pg_advisory_lock's key for workers' allocation decisions (two int4s: "osst", "decd"). */
const DECIDING_LOCK = [0x6f737374, 0x64656364];

/** The LISTEN/NOTIFY channel workers wait on. */
export const LAB_CHANNEL = 'osstest_lab';

interface WorkerRow {
  id: string;
  host: string;
  pid: number;
  started: number;
  lease_until: number;
  draining: number;
  max_jobs: number;
  ended: number | null;
  end_reason: string | null;
}
const WORKER_COLS = 'id, host, pid, started, lease_until, draining, max_jobs, ended, end_reason';
const toWorker = (r: WorkerRow): Worker => ({
  id: r.id,
  host: r.host,
  pid: Number(r.pid),
  started: Number(r.started),
  leaseUntil: Number(r.lease_until),
  draining: Number(r.draining) !== 0,
  maxJobs: Number(r.max_jobs),
  ended: r.ended === null ? null : Number(r.ended),
  endReason: r.end_reason,
});

interface HoldRow {
  host: string;
  flight: string;
  job: string;
  ident: string;
  allocated: number;
  lease_until: number | null;
  expected_end: number | null;
  share: string | null;
}
const toHold = (r: HoldRow): Hold => ({
  host: r.host,
  flight: r.flight,
  job: r.job,
  ident: r.ident,
  allocated: Number(r.allocated),
  leaseUntil: r.lease_until === null ? null : Number(r.lease_until),
  expectedEnd: r.expected_end === null ? null : Number(r.expected_end),
  share: r.share,
});

interface HealthRow {
  host: string;
  state: string;
  reason: string;
  since: number | null;
  broken_streak: number;
  check_flight: string | null;
  check_queued: number | null;
}
const toHealth = (r: HealthRow): HostHealthRecord => ({
  host: r.host,
  state: r.state as HealthState,
  reason: r.reason,
  since: r.since === null ? null : Number(r.since),
  brokenStreak: Number(r.broken_streak),
  checkFlight: r.check_flight,
  checkQueued: r.check_queued === null ? null : Number(r.check_queued),
});

interface ReservationRow {
  id: number;
  host: string;
  starts: number;
  ends: number;
  kind: string;
  owner: string;
  label: string;
  created: number;
}
const RESERVATION_COLS = 'id, host, starts, ends, kind, owner, label, created';
const toReservation = (r: ReservationRow): LabReservation => ({
  id: Number(r.id),
  host: r.host,
  start: Number(r.starts),
  end: Number(r.ends),
  kind: r.kind as ReservationKind,
  owner: r.owner,
  label: r.label,
  created: Number(r.created),
});
const describeReservation = (r: LabReservation): string =>
  `${r.kind} ${r.id} by ${r.owner} from ${iso(r.start)} to ${iso(r.end)}: ${r.label}`;

/** Holds of a WHERE over `allocations a` and `share_holders s` (with the share's type), in host order. */
function holdsSql(d: Dialect, whereA: string, whereS: string): string {
  return `SELECT * FROM (
  SELECT a.host, a.flight, a.job, a.ident, a.allocated, a.lease_until, a.expected_end, CAST(NULL AS TEXT) AS share
  FROM allocations a WHERE ${whereA}
  UNION ALL
  SELECT s.host, s.flight, s.job, s.ident, s.allocated, s.lease_until, s.expected_end, h.type AS share
  FROM share_holders s JOIN host_shares h ON h.host = s.host WHERE ${whereS}
) AS u ORDER BY host${d.c}, flight${d.c}, job${d.c}`;
}

interface QueuedFlightRow {
  flight: string;
  queued: number;
  priority: number | null;
  queued_by: string;
  intended: string;
  blessing: string;
  started: number | null;
}
const queuedFlightsSql = (d: Dialect) =>
  `SELECT q.flight, q.queued, q.priority, q.queued_by, f.intended, f.blessing, f.started
   FROM queued_flights q JOIN flights f ON f.flight = q.flight ORDER BY q.queued, q.flight${d.c}`;

interface QueueJobRow {
  flight: string;
  job: string;
  recipe: string;
  status: string;
  claimed_by: string | null;
  last_finished: number | null;
}
// Unordered (toLabQueue sorts): sorting in the server cost a fifth of the statement. The ends come
// from one aggregate over the queued flights' steps, not a probe per job: 1.5 ms → 0.9 ms for a
// 400-job queue (bench/scheduler's database, EXPLAIN ANALYZE, 2026-12-03).
const QUEUE_JOBS_SQL = `SELECT j.flight, j.job, j.recipe, j.status, c.worker AS claimed_by,
     -- Only a dependency's end is wanted (a queued job has not ended).
     CASE WHEN j.status <> 'queued' THEN e.last_finished END AS last_finished
   FROM jobs j JOIN queued_flights q ON q.flight = j.flight
   LEFT JOIN job_claims c ON c.flight = j.flight AND c.job = j.job
   LEFT JOIN (SELECT s.flight, s.job, MAX(s.finished) AS last_finished
              FROM steps s JOIN queued_flights sq ON sq.flight = s.flight
              GROUP BY s.flight, s.job) e ON e.flight = j.flight AND e.job = j.job`;

interface RunvarRow {
  flight: string;
  job: string;
  name: string;
  val: string;
}
/**
 * Definition runvars of queued flights' jobs, but for the `known` flights' (a `?` each, given twice).
 * When every queued flight is known the statement reads no runvar at all (a condition evaluated
 * once, first): most decisions, and scanning them to return nothing cost 1.4 ms (bench/scheduler).
 */
function queueRunvarsSql(known: number): string {
  // Not joined to jobs: joining let PostgreSQL, with statistics not yet caught up on a freshly made
  // flight, pick a plan 100 times slower (bench/scheduler).
  if (known === 0)
    return `SELECT r.flight, r.job, r.name, r.val FROM runvars r
   JOIN queued_flights q ON q.flight = r.flight WHERE NOT r.synth`;
  const list = placeholders(known);
  return `SELECT r.flight, r.job, r.name, r.val FROM runvars r
   JOIN queued_flights q ON q.flight = r.flight
   WHERE EXISTS (SELECT 1 FROM queued_flights u WHERE u.flight NOT IN (${list}))
     AND NOT r.synth AND r.flight NOT IN (${list})`;
}

const toQueuedFlight = (r: QueuedFlightRow): QueuedFlight => ({
  flight: r.flight,
  queued: Number(r.queued),
  priority: r.priority === null ? null : Number(r.priority),
  queuedBy: r.queued_by,
  intended: r.intended,
  blessing: r.blessing,
  started: r.started === null ? null : Number(r.started),
});

/** Byte order (PostgreSQL's COLLATE "C", sqlite's BINARY) for names, which are ASCII (names.ts). */
const byteOrder = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function toLabQueue(fs: QueuedFlightRow[], jobs: QueueJobRow[], vars: RunvarRow[]): LabQueue {
  const byJob = new Map<string, Record<string, string>>();
  for (const v of vars) {
    const k = `${v.flight}\0${v.job}`;
    const m = byJob.get(k) ?? {};
    m[v.name] = v.val;
    byJob.set(k, m);
  }
  const listed = new Set(fs.map((r) => r.flight));
  return {
    flights: fs.map(toQueuedFlight),
    // READ COMMITTED on PostgreSQL (labQueue): a flight queued between the first SELECT and the
    // second has jobs here but no row above; it is seen whole by the next look.
    jobs: jobs
      .filter((r) => listed.has(r.flight))
      // Byte order, as the rest of the store sorts names (PostgreSQL's COLLATE "C").
      .sort((a, b) => byteOrder(a.flight, b.flight) || byteOrder(a.job, b.job))
      .map(
        (r): LabQueueJob => ({
          flight: r.flight,
          job: r.job,
          recipe: r.recipe,
          status: r.status as JobStatus,
          claimedBy: r.claimed_by,
          runvars: byJob.get(`${r.flight}\0${r.job}`) ?? {},
          lastFinished: r.last_finished === null ? null : Number(r.last_finished),
        }),
      ),
  };
}

interface ShareRow {
  host: string;
  type: string;
  harness: string;
  state: string;
  slots: number;
  wear: number;
  wear_limit: number;
  created: number;
  holders: number;
}
const sharesSql = (d: Dialect) =>
  `SELECT h.host, h.type, h.harness, h.state, h.slots, h.wear, h.wear_limit, h.created,
     (SELECT COUNT(*) FROM share_holders s WHERE s.host = h.host) AS holders
   FROM host_shares h ORDER BY h.host${d.c}`;
const toShare = (r: ShareRow): HostShareRow => ({
  host: r.host,
  type: r.type,
  harness: r.harness,
  state: r.state as 'prep' | 'ready',
  slots: Number(r.slots),
  wear: Number(r.wear),
  wearLimit: Number(r.wear_limit),
  created: Number(r.created),
  holders: Number(r.holders),
});

/** Every host's health (good when never judged), or one host's with `one` (a `?` for its name). */
const healthSql = (d: Dialect, one: boolean) =>
  `SELECT h.name AS host, COALESCE(x.state, 'good') AS state, COALESCE(x.reason, '') AS reason, x.since,
     COALESCE(x.broken_streak, 0) AS broken_streak, x.check_flight, x.check_queued
   FROM hosts h LEFT JOIN host_health x ON x.host = h.name
   ${one ? 'WHERE h.name = ?' : ''} ORDER BY h.name${d.c}`;

/**
 * Changes whenever a job's history can have: a run ends by giving its hosts back, which is a new
 * `release` row in allocation_log (found by walking its primary key back from the newest row; not
 * MAX(id) of every row, which every allocation changes too).
 */
const HISTORY_MARK =
  "(SELECT COALESCE((SELECT id FROM allocation_log WHERE event = 'release' ORDER BY id DESC LIMIT 1), 0))";

interface PastRunRow {
  flight: string;
  job: string;
  status: string;
  started: number | null;
  finished: number | null;
}
interface PastRunHostRow {
  flight: string;
  job: string;
  host: string;
}
/** `IN (…)` for the names of queued flights' queued jobs plus `extra` more (`?` each). */
const queuedJobNames = (extra: number) =>
  `(SELECT qj.job FROM jobs qj JOIN queued_flights qq ON qq.flight = qj.flight WHERE qj.status = 'queued'
    ${extra > 0 ? `UNION SELECT * FROM (VALUES ${Array.from({ length: extra }, () => '(?)').join(', ')}) AS x` : ''})`;
/**
 * Pass/fail runs of the jobs named `names` (an IN list) since a time (`?`), and `also` (a condition
 * with its own `?`s), at most `?` per name, newest first.
 */
const pastRunsSql = (names: string, also = '') =>
  `SELECT flight, job, status, started, finished FROM (
     SELECT j.flight, j.job, j.status, MIN(s.started) AS started, MAX(s.finished) AS finished,
       ROW_NUMBER() OVER (PARTITION BY j.job ORDER BY MAX(s.finished) DESC) AS n
     FROM jobs j JOIN steps s ON s.flight = j.flight AND s.job = j.job
     WHERE j.job IN ${names} AND j.status IN ('pass', 'fail') AND s.started >= ? ${also}
     GROUP BY j.flight, j.job, j.status
   ) AS r WHERE n <= ? ORDER BY finished DESC`;
/** The hosts those jobs were given since a time (`?`), and `also`. */
const pastRunHostsSql = (names: string, also = '') =>
  `SELECT DISTINCT flight, job, host FROM allocation_log
   WHERE event = 'allocate' AND job IN ${names} AND at >= ? ${also}`;
/**
 * The job history's two statements for a batch (schedulerState, jobHistory), for the queued jobs'
 * names and `also`: left out when skipped (planning them alone cost 0.7 ms of server time), and
 * doing nothing when the mark is the caller's (a condition PostgreSQL and sqlite evaluate once,
 * before reading any row; -1 is never a mark); `read` makes their rows the history, or undefined.
 */
function historyStatements(ask: HistoryAsk | undefined, since: Millis, also: readonly string[] = []) {
  const from = ask === undefined || ask === 'skip' ? -1 : ask.unlessMark;
  const names = queuedJobNames(also.length);
  const unlessMarkIs = `AND ${HISTORY_MARK} <> ?`;
  return {
    runs:
      ask === 'skip'
        ? omitted<PastRunRow>()
        : query<PastRunRow>(pastRunsSql(names, unlessMarkIs), ...also, since, from, 20),
    hosts:
      ask === 'skip'
        ? omitted<PastRunHostRow>()
        : query<PastRunHostRow>(pastRunHostsSql(names, unlessMarkIs), ...also, since, from),
    read: (mark: number, runs: PastRunRow[], hosts: PastRunHostRow[]): PastJobRun[] | undefined =>
      ask === 'skip' || mark === from ? undefined : toPastRuns(runs, hosts),
  };
}

function toPastRuns(runs: PastRunRow[], hosts: PastRunHostRow[]): PastJobRun[] {
  const byRun = new Map<string, string[]>();
  for (const h of hosts) {
    const k = `${h.flight}\0${h.job}`;
    const l = byRun.get(k) ?? [];
    l.push(h.host);
    byRun.set(k, l);
  }
  return runs
    .filter((r) => r.started !== null && r.finished !== null)
    .map((r) => ({
      flight: r.flight,
      job: r.job,
      status: r.status as JobStatus,
      started: Number(r.started),
      finished: Number(r.finished),
      hosts: (byRun.get(`${r.flight}\0${r.job}`) ?? []).sort(),
    }));
}

function checkMs(what: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0)
    throw new StoreError(`${what} must be a whole number of ms ≥ 0, not ${v}`);
  return v;
}

function placeholders(n: number): string {
  return Array.from({ length: n }, () => '?').join(', ');
}

const iso = (t: Millis) => new Date(t).toISOString();

function* notify(d: Dialect, what: string): TxBody<void> {
  // Delivered when the transaction commits, to every worker's LISTEN connection. The transaction's
  // id lets a worker tell whether another's decision has seen this change (scheduler/wake-ledger.ts).
  if (d.pg) yield* sql("SELECT pg_notify(?, ? || ' ' || pg_current_xact_id()::text)", LAB_CHANNEL, what);
}

/**
 * The NOTIFY of a decision (see Announcement). It names its own transaction, which commits
 * after the decision's claims (see LabWake).
 */
function announcement(a: Announcement): Stmt {
  const when = a.due === undefined ? '?' : Number.isFinite(a.due) ? String(Math.round(a.due)) : '-';
  return query(
    "SELECT pg_notify(?, ? || ' ' || pg_current_xact_id()::text)",
    LAB_CHANNEL,
    `decided ${a.more ? 'more' : 'done'} ${a.snapshot} ${when}`,
  );
}

/**
 * A notification's payload: `WHAT XID` for a change, `decided more|done SNAPSHOT [DUE]` for a
 * decision (DUE: epoch ms, or `-` for nothing due).
 */
export function parseWake(payload: string): LabWake {
  const parts = payload.trim().split(/\s+/);
  // `decided more|done SNAPSHOT [DUE [XID]]`, DUE a time, `-` (nothing falls due) or `?` (not said).
  if (parts[0] === 'decided' && parts.length >= 3 && parts.length <= 5 && /^(more|done)$/.test(parts[1]!)) {
    const decided: NonNullable<LabWake['decided']> = { more: parts[1] === 'more', snapshot: parts[2]! };
    if (parts[3] === '-') decided.due = Number.POSITIVE_INFINITY;
    else if (parts[3] !== undefined && /^\d+$/.test(parts[3])) decided.due = Number(parts[3]);
    const xid = parts[4] !== undefined && /^\d+$/.test(parts[4]) ? { xid: BigInt(parts[4]) } : {};
    return { what: 'decided', ...xid, decided };
  }
  const last = parts.at(-1) ?? '';
  if (parts.length >= 2 && /^\d+$/.test(last))
    return { what: parts.slice(0, -1).join(' '), xid: BigInt(last) };
  return { what: payload };
}

function logHoldStmt(
  h: Omit<Hold, 'allocated' | 'leaseUntil' | 'expectedEnd'>,
  event: 'allocate' | 'release',
  at: Millis,
): Stmt {
  return query(
    'INSERT INTO allocation_log (host, flight, job, ident, event, at, share) VALUES (?, ?, ?, ?, ?, ?, ?)',
    h.host,
    h.flight,
    h.job,
    h.ident,
    event,
    at,
    h.share,
  );
}

function* logHold(
  h: Omit<Hold, 'allocated' | 'leaseUntil' | 'expectedEnd'>,
  event: 'allocate' | 'release',
  at: Millis,
): TxBody<void> {
  const st = logHoldStmt(h, event, at);
  yield* sql(st.sql, ...st.params);
}

function* hostEvent(host: string, kind: string, detail: string, at: Millis): TxBody<void> {
  yield* sql('INSERT INTO host_events (host, kind, detail, at) VALUES (?, ?, ?, ?)', host, kind, detail, at);
}

/** Deletes the holds given (each by its table) and logs their release. */
function* releaseHolds(holds: readonly Hold[], at: Millis): TxBody<void> {
  for (const h of holds) {
    if (h.share === null) {
      yield* sql(
        'DELETE FROM allocations WHERE host = ? AND flight = ? AND job = ?',
        h.host,
        h.flight,
        h.job,
      );
    } else {
      yield* sql(
        'DELETE FROM share_holders WHERE host = ? AND flight = ? AND job = ?',
        h.host,
        h.flight,
        h.job,
      );
    }
    yield* logHold(h, 'release', at);
  }
}

/** Closes a job's running steps (the runner is gone); returns their numbers. */
function* closeRunningSteps(
  flight: string,
  job: string,
  status: 'broken' | 'aborted',
  at: Millis,
): TxBody<number[]> {
  // The log path the executor would have recorded (executor/run-job.ts stepLogPath).
  const rows = yield* sql<{ stepno: number }>(
    `UPDATE steps SET status = ?, finished = ?,
       log_path = COALESCE(log_path, CAST(? AS TEXT) || '/' || CAST(? AS TEXT) || '/' || CAST(stepno AS TEXT) || '.' || testcase || '.log')
     WHERE flight = ? AND job = ? AND status = 'running' RETURNING stepno`,
    status,
    at,
    flight,
    job,
    flight,
    job,
  );
  return rows.map((r) => Number(r.stepno)).sort((a, b) => a - b);
}

/** Ends a job whose runner is gone: unfinished → broken, running steps closed. */
function* breakJob(
  d: Dialect,
  flight: string,
  job: string,
  at: Millis,
): TxBody<{ status: JobStatus; steps: number[] }> {
  const j = (yield* sql<{ status: string }>(
    `SELECT status FROM jobs WHERE flight = ? AND job = ? ${d.lock('FOR NO KEY UPDATE')}`,
    flight,
    job,
  ))[0];
  if (!j) throw new NotFoundError(`flight ${flight} has no job '${job}'`);
  let status = j.status as JobStatus;
  if (!isFinalJobStatus(status)) {
    status = nextJobStatus(status, 'broken');
    yield* sql('UPDATE jobs SET status = ? WHERE flight = ? AND job = ?', status, flight, job);
  }
  const steps = yield* closeRunningSteps(flight, job, status === 'aborted' ? 'aborted' : 'broken', at);
  return { status, steps };
}

/** The host's health row, made (good) if it has none, locked for the rest of the transaction. */
function* healthRow(d: Dialect, host: string, at: Millis): TxBody<HealthRow> {
  yield* sql(
    "INSERT INTO host_health (host, state, reason, since, broken_streak) VALUES (?, 'good', '', ?, 0) ON CONFLICT (host) DO NOTHING",
    host,
    at,
  );
  const r = (yield* sql<HealthRow>(
    `SELECT host, state, reason, since, broken_streak, check_flight, check_queued FROM host_health WHERE host = ? ${d.lock('FOR UPDATE')}`,
    host,
  ))[0];
  if (!r) throw new StoreError(`host ${host}: health row missing right after it was made`);
  return r;
}

function* setHealth(
  host: string,
  from: HealthRow,
  to: HealthState,
  reason: string,
  streak: number,
  at: Millis,
): TxBody<HealthChange> {
  const changed = from.state !== to;
  yield* sql(
    'UPDATE host_health SET state = ?, reason = ?, since = ?, broken_streak = ? WHERE host = ?',
    to,
    reason,
    changed ? at : (from.since ?? at),
    streak,
    host,
  );
  if (changed) yield* hostEvent(host, 'health', `${from.state} → ${to}: ${reason}`, at);
  return { host, from: from.state as HealthState, to, brokenStreak: streak, reason };
}

/** A take checked for what it can say by itself, with its times worked out. */
interface CheckedTake {
  t: TakeHosts;
  now: Millis;
  names: string[];
  lease: Millis | null;
  expectedEnd: Millis | null;
  claim: boolean;
}

function checkTake(t: TakeHosts): CheckedTake {
  const now = t.now ?? Date.now();
  if (t.holds.length === 0) throw new StoreError(`takeHosts ${t.flight}/${t.job}: no hosts asked for`);
  for (const h of t.holds) {
    checkHostName(h.host);
    checkHostIdent(h.ident);
  }
  const names = [...new Set(t.holds.map((h) => h.host))].sort();
  if (names.length !== t.holds.length)
    throw new StoreError(`takeHosts ${t.flight}/${t.job}: one host named for two idents`);
  if (t.share && !names.includes(t.share.host))
    throw new StoreError(
      `takeHosts ${t.flight}/${t.job}: share of ${t.share.host}, which the job does not take`,
    );
  if (t.share && t.holds.length !== 1)
    throw new StoreError(`takeHosts ${t.flight}/${t.job}: a shared build host is for one-host jobs`);
  const lease = t.leaseMs === undefined || t.leaseMs === null ? null : now + checkMs('lease', t.leaseMs);
  if (t.claimFor !== undefined && lease === null)
    throw new StoreError(`takeHosts ${t.flight}/${t.job}: a claim for worker ${t.claimFor} needs a lease`);
  return { t, now, names, lease, expectedEnd: t.expectedEnd ?? null, claim: t.claimFor !== undefined };
}

type TakeRows = [
  { draining: number; ended: number | null }[],
  { status: string }[],
  { worker: string }[],
  { name: string }[],
  { name: string }[],
  { host: string; flight: string; job: string; ident: string }[],
  { host: string; state: string }[],
  (Omit<ShareRow, 'created'> & { mine: number })[],
  ReservationRow[],
];

/** One take's reads (see takeEach), in TakeRows' order. */
function takeReads(d: Dialect, c: CheckedTake): Stmt[] {
  const { t, names, claim, now } = c;
  const { flight, job } = t;
  const inList = placeholders(names.length);
  return [
    claim
      ? query(`SELECT draining, ended FROM workers WHERE id = ? ${d.lock('FOR SHARE')}`, t.claimFor)
      : query('SELECT 0 AS draining, NULL AS ended'),
    query(
      `SELECT status FROM jobs WHERE flight = ? AND job = ? ${claim ? d.lock('FOR NO KEY UPDATE SKIP LOCKED') : ''}`,
      flight,
      job,
    ),
    query('SELECT worker FROM job_claims WHERE flight = ? AND job = ?', flight, job),
    // A worker's claim skips hosts another transaction is taking or giving back this moment (it
    // tries its plan's other jobs, and hears the NOTIFY when that commits) instead of queueing
    // behind it only to find the host gone; the existence check below tells the two apart.
    query(
      `SELECT name FROM hosts WHERE name IN (${inList}) ORDER BY name${d.c} ${d.lock(claim ? 'FOR UPDATE SKIP LOCKED' : 'FOR UPDATE')}`,
      ...names,
    ),
    query(`SELECT name FROM hosts WHERE name IN (${inList})`, ...names),
    query(`SELECT host, flight, job, ident FROM allocations WHERE host IN (${inList})`, ...names),
    query(`SELECT host, state FROM host_health WHERE host IN (${inList})`, ...names),
    query(
      `SELECT h.host, h.type, h.harness, h.state, h.slots, h.wear, h.wear_limit,
         (SELECT COUNT(*) FROM share_holders s WHERE s.host = h.host) AS holders,
         (SELECT COUNT(*) FROM share_holders s WHERE s.host = h.host AND s.flight = ? AND s.job = ?) AS mine
       FROM host_shares h WHERE h.host IN (${inList})`,
      flight,
      job,
      ...names,
    ),
    // A host under a reservation now (a blockage, taken by hand) goes to nobody, health checks included.
    query(
      `SELECT ${RESERVATION_COLS} FROM reservations WHERE host IN (${inList}) AND starts <= ? AND ends > ?`,
      ...names,
      now,
      now,
    ),
  ];
}

/** What the takes before this one in the same transaction did (its reads were made before any). */
interface TakeBatch {
  /** Host → the take that holds it outright, or started a share on it. */
  taken: Map<string, { flight: string; job: string; ident: string }>;
  /** Host → slots joined by earlier takes. */
  joined: Map<string, number>;
  /** Hosts whose share an earlier take started (still being prepared). */
  started: Set<string>;
  /** Jobs claimed or given hosts by earlier takes. */
  jobs: Set<string>;
}

function judgeTake(
  c: CheckedTake,
  [workers, jobs, claims, locked, found, allocs, health, shares, reservedRows]: TakeRows,
  done: TakeBatch,
): { ok: true; writes: Stmt[] } | { ok: false; why: string } {
  const { t, now, names, lease, expectedEnd, claim } = c;
  const { flight, job } = t;
  if (claim) {
    const w = workers[0];
    if (!w) throw new NotFoundError(`no worker '${t.claimFor}'`);
    if (w.ended !== null) return { ok: false, why: `worker ${t.claimFor} has ended` };
    if (Number(w.draining) !== 0) return { ok: false, why: `worker ${t.claimFor} is draining` };
    const j = jobs[0];
    if (!j) return { ok: false, why: `${flight}/${job} is being taken by someone else, or is gone` };
    if (j.status !== 'queued') return { ok: false, why: `${flight}/${job} is ${j.status}` };
    const cl = claims[0];
    if (cl) return { ok: false, why: `${flight}/${job} is claimed by worker ${cl.worker}` };
  } else if (jobs.length === 0) throw new NotFoundError(`flight ${flight} has no job '${job}'`);
  if (done.jobs.has(`${flight}/${job}`))
    return { ok: false, why: `${flight}/${job} was given hosts in this same transaction` };
  const missing = names.filter((n) => !found.some((f) => f.name === n));
  if (missing.length > 0) return { ok: false, why: `no host ${missing.join(', ')}` };
  const busy = names.filter((n) => !locked.some((f) => f.name === n));
  if (busy.length > 0)
    return { ok: false, why: `host ${busy.join(', ')} is being taken or given back by someone else` };
  const reserved = reservedRows.map(toReservation);
  const writes: Stmt[] = [];
  const hold = (table: 'allocations' | 'share_holders', ident: string, h: string) =>
    query(
      `INSERT INTO ${table} (host, flight, job, ident, allocated, lease_until, expected_end) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      h,
      flight,
      job,
      ident,
      now,
      lease,
      expectedEnd,
    );
  const joins: string[] = [];
  const takes: { host: string; ident: string; start: boolean }[] = [];
  for (const want of t.holds) {
    const h = want.host;
    const st = health.find((x) => x.host === h)?.state ?? 'good';
    if (!t.outOfService && (st === 'quarantined' || st === 'maintenance'))
      return { ok: false, why: `host ${h} is ${st}` };
    const a = allocs.find((x) => x.host === h) ?? done.taken.get(h);
    const sh = shares.find((x) => x.host === h);
    if (a) {
      if (a.flight === flight && a.job === job && a.ident === want.ident && !t.share) continue;
      return { ok: false, why: `host ${h} is held by ${a.flight}/${a.job} (${a.ident})` };
    }
    const rv = reserved.find((x) => x.host === h);
    if (rv) return { ok: false, why: `host ${h} is reserved (${describeReservation(rv)})` };
    if (sh && Number(sh.mine) > 0) return { ok: false, why: `${flight}/${job} already holds a slot of ${h}` };
    const earlier = done.joined.get(h) ?? 0;
    const holders = (sh ? Number(sh.holders) : 0) + earlier;
    const sa = t.share;
    if (sa?.action === 'join') {
      // A share started by an earlier take of this transaction is not in the reads.
      if (done.started.has(h)) return { ok: false, why: `share of ${h} is still being prepared` };
      if (!sh) return { ok: false, why: `host ${h} is not shared` };
      if (sh.state !== 'ready') return { ok: false, why: `share of ${h} is still being prepared` };
      if (sh.type !== sa.type || sh.harness !== sa.harness)
        return { ok: false, why: `share of ${h} is for ${sh.type} at harness ${sh.harness}` };
      if (holders >= Number(sh.slots)) return { ok: false, why: `every slot of ${h} is taken` };
      if (Number(sh.wear) + earlier >= Number(sh.wear_limit))
        return { ok: false, why: `share of ${h} is worn out` };
      writes.push(
        query('UPDATE host_shares SET wear = wear + 1 WHERE host = ?', h),
        hold('share_holders', want.ident, h),
        logHoldStmt({ host: h, flight, job, ident: want.ident, share: sa.type }, 'allocate', now),
      );
      joins.push(h);
      continue;
    }
    if (holders > 0) return { ok: false, why: `host ${h} is shared by ${holders} job(s)` };
    if (sa?.action === 'start') {
      if (sa.slots < 1 || sa.wearLimit < 1)
        throw new StoreError(`share of ${h}: slots and wear limit must be ≥ 1`);
      writes.push(
        // An idle share left on the host ends here: the host is prepared afresh.
        query('DELETE FROM host_shares WHERE host = ?', h),
        query(
          `INSERT INTO host_shares (host, type, harness, state, slots, wear, wear_limit, created)
           VALUES (?, ?, ?, 'prep', ?, 1, ?, ?)`,
          h,
          sa.type,
          sa.harness,
          sa.slots,
          sa.wearLimit,
          now,
        ),
        hold('share_holders', want.ident, h),
        logHoldStmt({ host: h, flight, job, ident: want.ident, share: sa.type }, 'allocate', now),
      );
      takes.push({ host: h, ident: want.ident, start: true });
      continue;
    }
    if (sh) writes.push(query('DELETE FROM host_shares WHERE host = ?', h));
    writes.push(
      hold('allocations', want.ident, h),
      logHoldStmt({ host: h, flight, job, ident: want.ident, share: null }, 'allocate', now),
    );
    takes.push({ host: h, ident: want.ident, start: false });
  }
  if (claim)
    writes.push(
      query(
        'INSERT INTO job_claims (flight, job, worker, claimed, renewed, lease_until) VALUES (?, ?, ?, ?, ?, ?)',
        flight,
        job,
        t.claimFor,
        now,
        now,
        lease ?? now,
      ),
    );
  // Said only once the whole take is known to go ahead (all or none).
  done.jobs.add(`${flight}/${job}`);
  for (const h of joins) done.joined.set(h, (done.joined.get(h) ?? 0) + 1);
  for (const x of takes) {
    // A share started here counts as one holder, as its share_holders row will.
    if (x.start) {
      done.started.add(x.host);
      done.joined.set(x.host, (done.joined.get(x.host) ?? 0) + 1);
    } else done.taken.set(x.host, { flight, job, ident: x.ident });
  }
  return { ok: true, writes };
}

export class LabStoreImpl implements LabStore {
  constructor(private readonly db: LabDriver) {}

  get notifies(): boolean {
    return this.db.dialect.pg;
  }

  // ---- workers

  async registerWorker(w: {
    id: string;
    host: string;
    pid: number;
    leaseMs: number;
    maxJobs: number;
    now?: Millis;
  }): Promise<Worker> {
    checkNonEmpty('worker id', w.id);
    checkNonEmpty('worker host', w.host);
    checkMs('worker lease', w.leaseMs);
    if (!Number.isSafeInteger(w.maxJobs) || w.maxJobs < 1)
      throw new StoreError(`worker ${w.id}: most jobs at once must be a whole number ≥ 1, not ${w.maxJobs}`);
    const now = w.now ?? Date.now();
    return this.db.tx('registerWorker', function* () {
      const r = yield* sql<WorkerRow>(
        `INSERT INTO workers (id, host, pid, started, lease_until, draining, max_jobs) VALUES (?, ?, ?, ?, ?, 0, ?)
         ON CONFLICT (id) DO NOTHING RETURNING ${WORKER_COLS}`,
        w.id,
        w.host,
        w.pid,
        now,
        now + w.leaseMs,
        w.maxJobs,
      );
      if (!r[0]) throw new ConflictError(`a worker '${w.id}' is already registered`);
      return toWorker(r[0]);
    });
  }

  async renewWorker(id: string, leaseMs: number, now = Date.now()): Promise<Worker | undefined> {
    checkMs('worker lease', leaseMs);
    const until = now + leaseMs;
    return this.db.tx('renewWorker', function* () {
      const r = (yield* sql<WorkerRow>(
        `UPDATE workers SET lease_until = ? WHERE id = ? AND ended IS NULL RETURNING ${WORKER_COLS}`,
        until,
        id,
      ))[0];
      if (!r) return undefined;
      yield* sql('UPDATE job_claims SET lease_until = ?, renewed = ? WHERE worker = ?', until, now, id);
      const mine =
        'EXISTS (SELECT 1 FROM job_claims c WHERE c.worker = ? AND c.flight = t.flight AND c.job = t.job)';
      yield* sql(
        `UPDATE allocations AS t SET lease_until = ? WHERE lease_until IS NOT NULL AND ${mine}`,
        until,
        id,
      );
      yield* sql(
        `UPDATE share_holders AS t SET lease_until = ? WHERE lease_until IS NOT NULL AND ${mine}`,
        until,
        id,
      );
      return toWorker(r);
    });
  }

  async drainWorkers(sel: { id?: string; host?: string }): Promise<Worker[]> {
    const where = sel.id !== undefined ? 'id = ?' : sel.host !== undefined ? 'host = ?' : '1 = 1';
    const params = sel.id !== undefined ? [sel.id] : sel.host !== undefined ? [sel.host] : [];
    return this.db.tx('drainWorkers', function* (d) {
      const rows = yield* sql<WorkerRow>(
        `UPDATE workers SET draining = 1 WHERE ended IS NULL AND ${where} RETURNING ${WORKER_COLS}`,
        ...params,
      );
      if (rows.length > 0) yield* notify(d, 'drain');
      return rows.map(toWorker).sort((a, b) => a.started - b.started || (a.id < b.id ? -1 : 1));
    });
  }

  async endWorker(id: string, reason: string, now = Date.now()): Promise<void> {
    await this.db.tx('endWorker', function* () {
      yield* sql(
        'UPDATE workers SET ended = ?, end_reason = ? WHERE id = ? AND ended IS NULL',
        now,
        reason,
        id,
      );
    });
  }

  async listWorkers(opts: { all?: boolean } = {}): Promise<Worker[]> {
    const where = opts.all ? '' : 'WHERE ended IS NULL';
    return this.db.tx('listWorkers', function* (d) {
      const rows = yield* sql<WorkerRow>(
        `SELECT ${WORKER_COLS} FROM workers ${where} ORDER BY started, id${d.c}`,
      );
      return rows.map(toWorker);
    });
  }

  // ---- the queue

  async queueFlight(
    flight: string,
    opts: { priority?: number | null; by: string; now?: Millis },
  ): Promise<QueuedFlight> {
    const priority = opts.priority ?? null;
    if (priority !== null && !Number.isSafeInteger(priority))
      throw new StoreError(`flight ${flight}: priority must be a whole number, not ${priority}`);
    const now = opts.now ?? Date.now();
    return this.db.tx('queueFlight', function* (d) {
      const f = (yield* sql<{ intended: string; blessing: string; started: number | null }>(
        `SELECT intended, blessing, started FROM flights WHERE flight = ? ${d.lock('FOR SHARE')}`,
        flight,
      ))[0];
      if (!f) throw new NotFoundError(`no flight '${flight}'`);
      if (f.blessing !== 'constructing' && f.blessing !== 'running')
        throw new ConflictError(
          `flight ${flight} has finished (blessed ${f.blessing}): make a new flight to run its jobs again`,
        );
      const n = (yield* sql<{ n: number }>('SELECT COUNT(*) AS n FROM jobs WHERE flight = ?', flight))[0]!;
      if (Number(n.n) === 0) throw new ConflictError(`flight ${flight} has no jobs`);
      const r = (yield* sql<{ flight: string; queued: number; priority: number | null; queued_by: string }>(
        `INSERT INTO queued_flights (flight, queued, priority, queued_by) VALUES (?, ?, ?, ?)
         ON CONFLICT (flight) DO UPDATE SET priority = COALESCE(excluded.priority, queued_flights.priority)
         RETURNING flight, queued, priority, queued_by`,
        flight,
        now,
        priority,
        opts.by,
      ))[0]!;
      yield* notify(d, 'queue');
      return toQueuedFlight({ ...r, ...f });
    });
  }

  async labQueue(): Promise<LabQueue> {
    return this.db.tx('labQueue', function* (d) {
      const fs = yield* sql<QueuedFlightRow>(queuedFlightsSql(d));
      const jobs = yield* sql<QueueJobRow>(QUEUE_JOBS_SQL);
      const vars = yield* sql<RunvarRow>(queueRunvarsSql(0));
      return toLabQueue(fs, jobs, vars);
    });
  }

  async schedulerState(opts: {
    now: Millis;
    historySince: Millis;
    alsoJobs?: readonly string[];
    runvarsKnown?: readonly string[];
    history?: HistoryAsk;
  }): Promise<SchedulerState> {
    const also = [...new Set(opts.alsoJobs ?? [])];
    const known = [...new Set(opts.runvarsKnown ?? [])];
    for (const j of also) checkNonEmpty('job', j);
    const history = historyStatements(opts.history, opts.historySince, also);
    return this.db.tx(
      'schedulerState',
      function* (d) {
        const [
          hosts,
          flags,
          props,
          health,
          shares,
          holds,
          fs,
          jobs,
          vars,
          reservations,
          runs,
          runHosts,
          marks,
        ] = yield* batch(
          [
            query<{ name: string }>(`SELECT name FROM hosts ORDER BY name${d.c}`),
            query<{ host: string; flag: string }>(`SELECT host, flag FROM host_flags ORDER BY flag${d.c}`),
            query<{ host: string; name: string; val: string }>('SELECT host, name, val FROM host_props'),
            query<HealthRow>(healthSql(d, false)),
            query<ShareRow>(sharesSql(d)),
            query<HoldRow>(holdsSql(d, '1 = 1', '1 = 1')),
            query<QueuedFlightRow>(queuedFlightsSql(d)),
            query<QueueJobRow>(QUEUE_JOBS_SQL),
            query<RunvarRow>(queueRunvarsSql(known.length), ...known, ...known),
            query<ReservationRow>(
              `SELECT ${RESERVATION_COLS} FROM reservations WHERE ends > ? ORDER BY starts, host${d.c}, id`,
              opts.now,
            ),
            history.runs,
            history.hosts,
            query<{ mark: number; snapshot: string | null }>(
              `SELECT ${HISTORY_MARK} AS mark, ${d.pg ? 'pg_current_snapshot()::text' : 'NULL'} AS snapshot`,
            ),
          ],
          // COMMIT in the same round trip: a read alone needs no second one.
          { commit: true },
        );
        const mark = Number(marks[0]!.mark);
        const past = history.read(mark, runs, runHosts);
        const byHost = new Map<string, SchedulerHostRow>(
          hosts.map((h) => [h.name, { name: h.name, flags: [], props: {} }]),
        );
        for (const f of flags) byHost.get(f.host)?.flags.push(f.flag);
        for (const p of props) {
          const h = byHost.get(p.host);
          if (h) h.props[p.name] = p.val;
        }
        return {
          hosts: [...byHost.values()],
          health: health.map(toHealth),
          shares: shares.map(toShare),
          holds: holds.map(toHold),
          queue: toLabQueue(fs, jobs, vars),
          reservations: reservations.map(toReservation),
          historyMark: mark,
          ...(marks[0]!.snapshot === null ? {} : { snapshot: marks[0]!.snapshot }),
          ...(past ? { history: past } : {}),
        };
      },
      { readOnly: true },
    );
  }

  async jobHistory(opts: { since: Millis; history?: HistoryAsk }): Promise<{
    queuedJobs: string[];
    mark: number;
    runs?: PastJobRun[];
  }> {
    const history = historyStatements(opts.history, opts.since);
    return this.db.tx(
      'jobHistory',
      function* () {
        const [names, marks, runs, runHosts] = yield* batch(
          [
            query<{ job: string }>(
              `SELECT j.job FROM jobs j JOIN queued_flights q ON q.flight = j.flight
             WHERE j.status = 'queued' GROUP BY j.job`,
            ),
            query<{ mark: number }>(`SELECT ${HISTORY_MARK} AS mark`),
            history.runs,
            history.hosts,
          ],
          { commit: true },
        );
        const mark = Number(marks[0]!.mark);
        const got = history.read(mark, runs, runHosts);
        return { queuedJobs: names.map((n) => n.job), mark, ...(got ? { runs: got } : {}) };
      },
      { readOnly: true },
    );
  }

  async completeFlights(): Promise<{ flight: string; blessing: string }[]> {
    return this.db.tx('completeFlights', function* (d) {
      const done = yield* sql<{ flight: string }>(
        `SELECT q.flight FROM queued_flights q
         WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.flight = q.flight AND j.status IN ('queued', 'preparing', 'running'))
           AND NOT EXISTS (SELECT 1 FROM job_claims c WHERE c.flight = q.flight)
         ORDER BY q.flight${d.c} ${d.lock('FOR UPDATE SKIP LOCKED')}`,
      );
      const out: { flight: string; blessing: string }[] = [];
      for (const { flight } of done) {
        const del = yield* sql<{ flight: string }>(
          'DELETE FROM queued_flights WHERE flight = ? RETURNING flight',
          flight,
        );
        if (del.length === 0) continue;
        const b = yield* sql<{ blessing: string }>(
          'UPDATE flights SET blessing = intended WHERE flight = ? RETURNING blessing',
          flight,
        );
        out.push({ flight, blessing: b[0]!.blessing });
      }
      if (out.length > 0) yield* notify(d, 'flight-done');
      return out;
    });
  }

  async settleUnclaimed(flight: string, job: string, status: JobStatus, reason: string): Promise<boolean> {
    if (!isJobStatus(status) || !isFinalJobStatus(status))
      throw new StoreError(`settleUnclaimed ${flight}/${job}: '${status}' is not a final job status`);
    return this.db.tx('settleUnclaimed', function* (d) {
      const j = (yield* sql<{ status: string }>(
        `SELECT status FROM jobs WHERE flight = ? AND job = ? ${d.lock('FOR NO KEY UPDATE SKIP LOCKED')}`,
        flight,
        job,
      ))[0];
      if (j?.status !== 'queued') return false;
      const claimed = yield* sql('SELECT 1 FROM job_claims WHERE flight = ? AND job = ?', flight, job);
      if (claimed.length > 0) return false;
      yield* sql('UPDATE jobs SET status = ? WHERE flight = ? AND job = ?', status, flight, job);
      yield* sql(
        `INSERT INTO runvars (flight, job, name, val, synth) VALUES (?, ?, 'lab_reason', ?, ?)
         ON CONFLICT (flight, job, name) DO UPDATE SET val = excluded.val, synth = excluded.synth`,
        flight,
        job,
        reason,
        d.pg ? true : 1,
      );
      yield* notify(d, 'settled');
      return true;
    });
  }

  // ---- holds

  async takeHosts(t: TakeHosts): Promise<TakeResult> {
    return (await this.takeEach([t]))[0]!;
  }

  async takeEach(takes: readonly TakeHosts[]): Promise<TakeResult[]> {
    if (takes.length === 0) return [];
    const checked = takes.map((t) => checkTake(t));
    return this.db.tx('takeHosts', function* (d): TxBody<TakeResult[]> {
      // Every take's reads in one round trip on PostgreSQL, its locks taken in the usual order
      // (worker, job, hosts); the checks follow in code, then the writes and COMMIT in a second round
      // trip. A decision's takes go together: one after another, they were two round trips each.
      const reads = checked.map((c) => takeReads(d, c));
      const rows = yield* batch(reads.flat());
      const batchState: TakeBatch = {
        taken: new Map(),
        joined: new Map(),
        started: new Set(),
        jobs: new Set(),
      };
      const out: TakeResult[] = [];
      const writes: Stmt[] = [];
      let at = 0;
      for (const [k, c] of checked.entries()) {
        const mine = rows.slice(at, at + reads[k]!.length) as TakeRows;
        at += reads[k]!.length;
        const r = judgeTake(c, mine, batchState);
        if (r.ok) writes.push(...r.writes);
        out.push(r.ok ? { ok: true } : r);
      }
      // Every check passed for these: now, and only now, write.
      if (writes.length > 0) yield* batch(writes, { commit: true });
      return out;
    });
  }

  async listHolds(): Promise<Hold[]> {
    return this.db.tx('listHolds', function* (d) {
      return (yield* sql<HoldRow>(holdsSql(d, '1 = 1', '1 = 1'))).map(toHold);
    });
  }

  async listClaims(): Promise<JobClaim[]> {
    return this.db.tx('listClaims', function* (d) {
      const rows = yield* sql<{
        flight: string;
        job: string;
        worker: string;
        claimed: number;
        renewed: number;
        lease_until: number;
      }>(
        `SELECT flight, job, worker, claimed, renewed, lease_until FROM job_claims ORDER BY flight${d.c}, job${d.c}`,
      );
      return rows.map((r) => ({
        flight: r.flight,
        job: r.job,
        worker: r.worker,
        claimed: Number(r.claimed),
        renewed: Number(r.renewed),
        leaseUntil: Number(r.lease_until),
      }));
    });
  }

  async listShares(): Promise<HostShareRow[]> {
    return this.db.tx('listShares', function* (d) {
      return (yield* sql<ShareRow>(sharesSql(d))).map(toShare);
    });
  }

  async holdHistory(opts: { host?: string; flight?: string } = {}): Promise<HoldEvent[]> {
    const conds: string[] = [];
    const params: unknown[] = [];
    if (opts.host !== undefined) {
      conds.push('host = ?');
      params.push(opts.host);
    }
    if (opts.flight !== undefined) {
      conds.push('flight = ?');
      params.push(opts.flight);
    }
    const where = conds.length > 0 ? `WHERE ${conds.join(' AND ')}` : '';
    return this.db.tx('holdHistory', function* () {
      const rows = yield* sql<HoldEvent>(
        `SELECT id, host, flight, job, ident, event, at, share FROM allocation_log ${where} ORDER BY id`,
        ...params,
      );
      return rows.map((r) => ({ ...r, id: Number(r.id), at: Number(r.at) }));
    });
  }

  async markShareReady(host: string, holder: { flight: string; job: string }): Promise<boolean> {
    return this.db.tx('markShareReady', function* (d) {
      const r = yield* sql<{ host: string }>(
        `UPDATE host_shares SET state = 'ready' WHERE host = ? AND state = 'prep'
           AND EXISTS (SELECT 1 FROM share_holders s WHERE s.host = ? AND s.flight = ? AND s.job = ?)
         RETURNING host`,
        host,
        host,
        holder.flight,
        holder.job,
      );
      if (r.length > 0) yield* notify(d, 'share-ready');
      return r.length > 0;
    });
  }

  async closeJob(c: {
    flight: string;
    job: string;
    worker?: string;
    sharesPrepared: boolean;
    now?: Millis;
  }): Promise<{ status: JobStatus; stepsClosed: number[]; released: Hold[] }> {
    const now = c.now ?? Date.now();
    return this.db.tx('closeJob', function* (d) {
      const { status, steps } = yield* breakJob(d, c.flight, c.job, now);
      const held = (yield* sql<HoldRow>(
        holdsSql(d, 'a.flight = ? AND a.job = ?', 's.flight = ? AND s.job = ?'),
        c.flight,
        c.job,
        c.flight,
        c.job,
      )).map(toHold);
      yield* releaseHolds(held, now);
      for (const h of held.filter((x) => x.share !== null)) {
        if (c.sharesPrepared)
          yield* sql("UPDATE host_shares SET state = 'ready' WHERE host = ? AND state = 'prep'", h.host);
        // A share nobody finished preparing, or one worn out, ends once its last holder has gone.
        yield* sql(
          `DELETE FROM host_shares WHERE host = ? AND (state = 'prep' OR wear >= wear_limit)
             AND NOT EXISTS (SELECT 1 FROM share_holders s WHERE s.host = host_shares.host)`,
          h.host,
        );
      }
      if (c.worker !== undefined)
        yield* sql(
          'DELETE FROM job_claims WHERE flight = ? AND job = ? AND worker = ?',
          c.flight,
          c.job,
          c.worker,
        );
      else yield* sql('DELETE FROM job_claims WHERE flight = ? AND job = ?', c.flight, c.job);
      yield* notify(d, 'release');
      return { status, stepsClosed: steps, released: held };
    });
  }

  async reapExpired(opts: { graceMs: number; now?: Millis }): Promise<ReapResult> {
    const grace = checkMs('grace', opts.graceMs);
    const now = opts.now ?? Date.now();
    return this.db.tx('reapExpired', function* (d): TxBody<ReapResult> {
      const out: ReapResult = { workers: [], jobs: [], released: [] };
      const dead = yield* sql<WorkerRow>(
        `SELECT ${WORKER_COLS} FROM workers WHERE ended IS NULL AND lease_until < ? ORDER BY id${d.c} ${d.lock('FOR UPDATE SKIP LOCKED')}`,
        now,
      );
      for (const w of dead) {
        const why = `lease expired at ${iso(Number(w.lease_until))} (not renewed)`;
        yield* sql('UPDATE workers SET ended = ?, end_reason = ? WHERE id = ?', now, why, w.id);
        out.workers.push({ ...toWorker(w), ended: now, endReason: why });
      }
      const claims = yield* sql<{ flight: string; job: string; worker: string }>(
        `SELECT flight, job, worker FROM job_claims
         WHERE lease_until < ? OR worker IN (SELECT id FROM workers WHERE ended IS NOT NULL)
         ORDER BY flight${d.c}, job${d.c} ${d.lock('FOR UPDATE SKIP LOCKED')}`,
        now,
      );
      for (const cl of claims) {
        const { status, steps } = yield* breakJob(d, cl.flight, cl.job, now);
        // Holds made without a lease for this job now expire like the rest, after the grace.
        yield* sql(
          'UPDATE allocations SET lease_until = ? WHERE flight = ? AND job = ? AND lease_until IS NULL',
          now,
          cl.flight,
          cl.job,
        );
        yield* sql(
          'UPDATE share_holders SET lease_until = ? WHERE flight = ? AND job = ? AND lease_until IS NULL',
          now,
          cl.flight,
          cl.job,
        );
        yield* sql('DELETE FROM job_claims WHERE flight = ? AND job = ?', cl.flight, cl.job);
        out.jobs.push({ ...cl, status, stepsClosed: steps });
      }
      const cutoff = now - grace;
      const expired = (yield* sql<HoldRow>(
        holdsSql(
          d,
          'a.lease_until IS NOT NULL AND a.lease_until < ?',
          's.lease_until IS NOT NULL AND s.lease_until < ?',
        ),
        cutoff,
        cutoff,
      )).map(toHold);
      // Lock what we release, skipping holds another transaction is renewing or releasing right now.
      const gone: Hold[] = [];
      for (const h of expired) {
        const table = h.share === null ? 'allocations' : 'share_holders';
        const still = yield* sql(
          `SELECT 1 FROM ${table} WHERE host = ? AND flight = ? AND job = ? AND lease_until < ? ${d.lock('FOR UPDATE SKIP LOCKED')}`,
          h.host,
          h.flight,
          h.job,
          cutoff,
        );
        if (still.length > 0) gone.push(h);
      }
      yield* releaseHolds(gone, now);
      for (const h of gone) {
        yield* hostEvent(
          h.host,
          'lease',
          `released from ${h.flight}/${h.job} (${h.ident}${h.share ? `, share ${h.share}` : ''}): its lease expired at ${iso(h.leaseUntil!)}, grace ${grace} ms`,
          now,
        );
        if (h.share !== null) {
          // The dead holder may have left the host half-used: the share ends with its last holder.
          yield* sql(
            'DELETE FROM host_shares WHERE host = ? AND NOT EXISTS (SELECT 1 FROM share_holders s WHERE s.host = host_shares.host)',
            h.host,
          );
        }
      }
      out.released = gone;
      if (out.workers.length + out.jobs.length + gone.length > 0) yield* notify(d, 'reaped');
      return out;
    });
  }

  async pastRuns(jobs: readonly string[], opts: { since: Millis; limit?: number }): Promise<PastJobRun[]> {
    if (jobs.length === 0) return [];
    const names = [...new Set(jobs)];
    const limit = opts.limit ?? 20;
    const inList = `(${placeholders(names.length)})`;
    return this.db.tx(
      'pastRuns',
      function* () {
        const [runs, hosts] = yield* batch(
          [
            query<PastRunRow>(pastRunsSql(inList), ...names, opts.since, limit),
            query<PastRunHostRow>(pastRunHostsSql(inList), ...names, opts.since),
          ],
          { commit: true },
        );
        return toPastRuns(runs, hosts);
      },
      { readOnly: true },
    );
  }

  // ---- health

  async hostHealth(host?: string): Promise<HostHealthRecord[]> {
    return this.db.tx('hostHealth', function* (d) {
      const rows = yield* sql<HealthRow>(
        healthSql(d, host !== undefined),
        ...(host === undefined ? [] : [host]),
      );
      if (host !== undefined && rows.length === 0) throw new NotFoundError(`no host '${host}'`);
      return rows.map(toHealth);
    });
  }

  async setHostHealth(
    host: string,
    state: HealthState,
    reason: string,
    now = Date.now(),
  ): Promise<HealthChange> {
    if (!isHealthState(state))
      throw new StoreError(
        `host ${host}: health '${state}' is not one of good, suspect, quarantined, maintenance`,
      );
    checkNonEmpty(`reason for host ${host}'s health`, reason);
    return this.db.tx('setHostHealth', function* (d) {
      const exists = yield* sql('SELECT 1 FROM hosts WHERE name = ?', host);
      if (exists.length === 0) throw new NotFoundError(`no host '${host}'`);
      const cur = yield* healthRow(d, host, now);
      const change = yield* setHealth(
        host,
        cur,
        state,
        reason,
        state === 'good' ? 0 : Number(cur.broken_streak),
        now,
      );
      if (cur.state === state) yield* hostEvent(host, 'health', `${state} (set again): ${reason}`, now);
      yield* sql('UPDATE host_health SET check_flight = NULL, check_queued = NULL WHERE host = ?', host);
      yield* notify(d, 'health');
      return change;
    });
  }

  async recordJobOutcome(o: JobOutcome): Promise<HealthChange[]> {
    const now = o.now ?? Date.now();
    if (!Number.isSafeInteger(o.quarantineAfter) || o.quarantineAfter < 1)
      throw new StoreError(`quarantine after ${o.quarantineAfter} broken jobs: must be a whole number ≥ 1`);
    const counts = o.status === 'broken' || o.status === 'pass' || o.status === 'fail';
    if (!counts) return [];
    const hosts = [...new Set(o.hosts)].sort();
    return this.db.tx('recordJobOutcome', function* (d) {
      const out: HealthChange[] = [];
      for (const host of hosts) {
        const known = yield* sql('SELECT 1 FROM hosts WHERE name = ?', host);
        if (known.length === 0) continue;
        const cur = yield* healthRow(d, host, now);
        const state = cur.state as HealthState;
        // A host out of service ran the job by hand or for a health check: that is judged elsewhere.
        if (state !== 'good' && state !== 'suspect') continue;
        const streak = Number(cur.broken_streak);
        if (o.status !== 'broken') {
          if (state === 'suspect')
            out.push(
              yield* setHealth(host, cur, 'good', `${o.flight}/${o.job} ended ${o.status} here`, 0, now),
            );
          else if (streak > 0) yield* sql('UPDATE host_health SET broken_streak = 0 WHERE host = ?', host);
          continue;
        }
        const passedElsewhere = yield* sql<{ flight: string; host: string }>(
          `SELECT l.flight, l.host FROM allocation_log l JOIN jobs j ON j.flight = l.flight AND j.job = l.job
           WHERE l.job = ? AND l.event = 'allocate' AND l.host <> ? AND l.at >= ? AND j.status = 'pass'
           ORDER BY l.id DESC LIMIT 1`,
          o.job,
          host,
          now - o.lookbackMs,
        );
        const seen = passedElsewhere[0];
        if (!seen) continue;
        const n = streak + 1;
        const why = `${n} job(s) in a row broken here while they passed on other hosts (last: ${o.flight}/${o.job}, which passed in flight ${seen.flight} on ${seen.host})`;
        if (n >= o.quarantineAfter) out.push(yield* setHealth(host, cur, 'quarantined', why, n, now));
        else out.push(yield* setHealth(host, cur, 'suspect', why, n, now));
      }
      return out;
    });
  }

  async startHealthCheck(host: string, intervalMs: number, now = Date.now()): Promise<boolean> {
    checkMs('health check interval', intervalMs);
    return this.db.tx('startHealthCheck', function* () {
      const r = yield* sql(
        `UPDATE host_health SET check_queued = ?
         WHERE host = ? AND state = 'quarantined' AND check_flight IS NULL AND (check_queued IS NULL OR check_queued <= ?)
         RETURNING host`,
        now,
        host,
        now - intervalMs,
      );
      return r.length > 0;
    });
  }

  async setHealthCheckFlight(host: string, flight: string): Promise<void> {
    await this.db.tx('setHealthCheckFlight', function* () {
      yield* sql('UPDATE host_health SET check_flight = ? WHERE host = ?', flight, host);
    });
  }

  async recordHealthCheck(
    host: string,
    passed: boolean,
    detail: string,
    now = Date.now(),
  ): Promise<HealthChange | undefined> {
    return this.db.tx('recordHealthCheck', function* (d) {
      const exists = yield* sql('SELECT 1 FROM hosts WHERE name = ?', host);
      if (exists.length === 0) throw new NotFoundError(`no host '${host}'`);
      const cur = yield* healthRow(d, host, now);
      yield* sql('UPDATE host_health SET check_flight = NULL WHERE host = ?', host);
      if (!passed) {
        yield* hostEvent(host, 'health', `health check failed: ${detail}`, now);
        return undefined;
      }
      yield* hostEvent(host, 'health', `health check passed: ${detail}`, now);
      if (cur.state !== 'quarantined') return undefined;
      const change = yield* setHealth(host, cur, 'good', `health check passed: ${detail}`, 0, now);
      yield* notify(d, 'health');
      return change;
    });
  }

  // ---- reservations

  async addReservations(r: NewReservations): Promise<LabReservation[]> {
    const now = r.now ?? Date.now();
    if (r.hosts.length === 0) throw new StoreError('reservation: no hosts named');
    for (const h of r.hosts) checkHostName(h);
    if (!(RESERVATION_KINDS as readonly string[]).includes(r.kind))
      throw new StoreError(`reservation kind '${r.kind}' is not one of ${RESERVATION_KINDS.join(', ')}`);
    checkMs('reservation start', r.start);
    checkMs('reservation end', r.end);
    if (r.end <= r.start)
      throw new StoreError(`reservation from ${iso(r.start)} to ${iso(r.end)}: it must end after it starts`);
    checkNonEmpty('reservation owner', r.owner);
    checkNonEmpty('reservation label', r.label);
    const names = [...new Set(r.hosts)].sort();
    return this.db.tx('addReservations', function* (d): TxBody<LabReservation[]> {
      const inList = placeholders(names.length);
      // Locking the hosts' rows orders this against takeHosts (which locks them too) on PostgreSQL.
      const found = yield* sql<{ name: string }>(
        `SELECT name FROM hosts WHERE name IN (${inList}) ORDER BY name${d.c} ${d.lock('FOR UPDATE')}`,
        ...names,
      );
      const missing = names.filter((n) => !found.some((f) => f.name === n));
      if (missing.length > 0) throw new NotFoundError(`no host ${missing.join(', ')}`);
      if (r.exclusive) {
        const held = (yield* sql<HoldRow>(
          holdsSql(d, `a.host IN (${inList})`, `s.host IN (${inList})`),
          ...names,
          ...names,
        )).map(toHold);
        if (held.length > 0)
          throw new ConflictError(
            held.map((h) => `host ${h.host} is held by ${h.flight}/${h.job} (${h.ident})`).join('; '),
          );
        const over = (yield* sql<ReservationRow>(
          `SELECT ${RESERVATION_COLS} FROM reservations WHERE host IN (${inList}) AND starts < ? AND ends > ?
           ORDER BY host${d.c}, starts`,
          ...names,
          r.end,
          r.start,
        )).map(toReservation);
        if (over.length > 0)
          throw new ConflictError(
            over.map((x) => `host ${x.host} is reserved (${describeReservation(x)})`).join('; '),
          );
      }
      const out: LabReservation[] = [];
      for (const h of names) {
        const row = (yield* sql<ReservationRow>(
          `INSERT INTO reservations (host, starts, ends, kind, owner, label, created)
           VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING ${RESERVATION_COLS}`,
          h,
          r.start,
          r.end,
          r.kind,
          r.owner,
          r.label,
          now,
        ))[0];
        if (!row) throw new StoreError(`reservation of ${h}: insert returned nothing`);
        const res = toReservation(row);
        out.push(res);
        yield* hostEvent(h, 'reservation', `made: ${describeReservation(res)}`, now);
      }
      return out;
    });
  }

  async listReservations(opts: { current?: boolean; now?: Millis } = {}): Promise<LabReservation[]> {
    const now = opts.now ?? Date.now();
    return this.db.tx('listReservations', function* (d) {
      const rows = yield* sql<ReservationRow>(
        `SELECT ${RESERVATION_COLS} FROM reservations ${opts.current ? 'WHERE ends > ?' : ''}
         ORDER BY starts, host${d.c}, id`,
        ...(opts.current ? [now] : []),
      );
      return rows.map(toReservation);
    });
  }

  async removeReservation(id: number, now = Date.now()): Promise<LabReservation | undefined> {
    if (!Number.isSafeInteger(id) || id < 1)
      throw new StoreError(`reservation id must be a whole number ≥ 1, not ${id}`);
    return this.db.tx('removeReservation', function* (d): TxBody<LabReservation | undefined> {
      const row = (yield* sql<ReservationRow>(
        `DELETE FROM reservations WHERE id = ? RETURNING ${RESERVATION_COLS}`,
        id,
      ))[0];
      if (!row) return undefined;
      const res = toReservation(row);
      yield* hostEvent(res.host, 'reservation', `removed: ${describeReservation(res)}`, now);
      yield* notify(d, 'reservations');
      return res;
    });
  }

  async endReservations(sel: {
    hosts: readonly string[];
    owner: string;
    kind: ReservationKind;
    now?: Millis;
  }): Promise<LabReservation[]> {
    const now = sel.now ?? Date.now();
    if (sel.hosts.length === 0) return [];
    const names = [...new Set(sel.hosts)].sort();
    return this.db.tx('endReservations', function* (d): TxBody<LabReservation[]> {
      const rows = (yield* sql<ReservationRow>(
        `SELECT ${RESERVATION_COLS} FROM reservations
         WHERE host IN (${placeholders(names.length)}) AND owner = ? AND kind = ? AND ends > ?
         ORDER BY host${d.c}, starts ${d.lock('FOR UPDATE')}`,
        ...names,
        sel.owner,
        sel.kind,
        now,
      )).map(toReservation);
      for (const r of rows) {
        if (r.start < now) yield* sql('UPDATE reservations SET ends = ? WHERE id = ?', now, r.id);
        else yield* sql('DELETE FROM reservations WHERE id = ?', r.id);
        yield* hostEvent(r.host, 'reservation', `ended: ${describeReservation(r)}`, now);
      }
      if (rows.length > 0) yield* notify(d, 'reservations');
      return rows;
    });
  }

  // ---- wake-ups

  async deciding<T>(
    fn: (lab: LabStore) => Promise<T>,
    unlessBusy?: () => T,
    announce?: (r: T) => Announcement | undefined,
  ): Promise<T> {
    const own = this.db.withConnection;
    if (!own) return fn(this);
    // The decision's own reads and takes run on the connection that holds the turn: waiting for a
    // pooled one (busy with this process's other work) would keep every worker of the lab waiting.
    return own(async (on, c, spoilt) => {
      // Session locks: if this process dies, its connection goes and PostgreSQL lets the locks go.
      if (unlessBusy) {
        // Nobody waits for the turn: when changes came faster than decisions, every worker queued
        // for it and each decided in turn, so a call waited behind up to three decisions (p99 ~115
        // ms against one decision's ~15, bench/scheduler, 2026-12-03). The holder's announcement
        // covers what it saw and says "more" for what it heard of and did not see.
        const free = await c.query<{ got: boolean }>(
          'SELECT pg_try_advisory_lock($1, $2) AS got',
          DECIDING_LOCK,
        );
        if (!free.rows[0]?.got) return unlessBusy();
      } else await c.query('SELECT pg_advisory_lock($1, $2)', DECIDING_LOCK);
      const unlock = `SELECT pg_advisory_unlock(${DECIDING_LOCK.join(', ')})`;
      let r: T;
      try {
        r = await fn(new LabStoreImpl(on));
      } catch (e) {
        // Still holding the turn, the connection must not go back to the pool.
        await c.query(unlock).catch(spoilt);
        throw e;
      }
      const a = announce?.(r);
      // Said before the turn is given up (a worker turned away, hearing it, may find the turn free),
      // in the same round trip: under load every round trip of a turn delayed the next decision.
      const say = a?.snapshot === undefined ? [] : ['BEGIN', inline(c, announcement(a)), 'COMMIT'];
      await c.query([...say, unlock].join(';\n')).catch(spoilt);
      return r;
    });
  }

  async listen(onWake: (what: string, wake: LabWake) => void): Promise<() => Promise<void>> {
    const connect = this.db.listenClient;
    if (!connect) return async () => undefined;
    const c = await connect();
    let failed: Error | undefined;
    c.on('notification', (m) => {
      if (m.channel === LAB_CHANNEL) {
        const w = parseWake(m.payload ?? '');
        onWake(w.what, w);
      }
    });
    // A dropped connection only costs wake-ups: workers poll as well.
    c.on('error', (e) => {
      failed = e;
    });
    try {
      await c.query(`LISTEN ${LAB_CHANNEL}`);
    } catch (e) {
      c.release(e as Error);
      throw new StoreError(`LISTEN on PostgreSQL ${this.db.where}: ${(e as Error).message}`, { cause: e });
    }
    return async () => {
      if (!failed)
        await c.query(`UNLISTEN ${LAB_CHANNEL}`).catch((e: Error) => {
          failed = e;
        });
      c.release(failed);
    };
  }
}
