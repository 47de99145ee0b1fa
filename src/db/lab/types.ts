/**
 * Lab mode's part of the store: workers and their leases, the flights queued for them, which worker
 * runs which job (claims), holds on hosts with leases (exclusive allocations and slots of shared
 * build hosts), and host health. PostgreSQL is the coordination engine (row locks, SKIP LOCKED,
 * LISTEN/NOTIFY); sqlite runs the same code with BEGIN IMMEDIATE and polling.
 *
 * Times are milliseconds since the epoch. A lease is a time after which, unless its holder renewed
 * it, anyone may act as if the holder were gone.
 */
import type { JobStatus } from '../../model/status.js';
import type { Job, Millis } from '../types.js';

export const HEALTH_STATES = ['good', 'suspect', 'quarantined', 'maintenance'] as const;
/** Same words as the scheduler's HostHealth (src/scheduler/types.ts). */
export type HealthState = (typeof HEALTH_STATES)[number];

export function isHealthState(s: string): s is HealthState {
  return (HEALTH_STATES as readonly string[]).includes(s);
}

export interface Worker {
  /** `MACHINE:PID:RANDOM`, unique for ever (a pid may come back; the random part does not). */
  id: string;
  /** The machine it runs on (its hostname). */
  host: string;
  pid: number;
  started: Millis;
  leaseUntil: Millis;
  /** Told to take no new jobs and to exit once its current ones are done. */
  draining: boolean;
  maxJobs: number;
  /** When it stopped (exited, or found dead by its lease); null while it runs. */
  ended: Millis | null;
  endReason: string | null;
}

export interface QueuedFlight {
  flight: string;
  queued: Millis;
  /** Overrides the priority of the flight's intended blessing (lower is sooner); null: the default. */
  priority: number | null;
  queuedBy: string;
  intended: string;
  blessing: string;
  /** When its first job started (null: not yet); from then on its jobs' definitions cannot change. */
  started: Millis | null;
}

/** A job of a queued flight, as a worker deciding what to take sees it. */
export interface LabQueueJob extends Job {
  /** The worker running it, if one claimed it. */
  claimedBy: string | null;
  /** Definition runvars (what the flight asked for, not what a run wrote). */
  runvars: Record<string, string>;
  /** When its last step finished, if it has steps and is not queued (a dependency's end, for wait start). */
  lastFinished: Millis | null;
}

export interface LabQueue {
  flights: QueuedFlight[];
  /** Every job of every queued flight, by flight then job name. */
  jobs: LabQueueJob[];
}

/** A host as the allocator sees it: its database flags and properties (config overlays them). */
export interface SchedulerHostRow {
  name: string;
  flags: string[];
  props: Record<string, string>;
}

/** A notification on the lab's channel, parsed. */
export interface LabWake {
  /** What changed (`queue`, `released`, …), or `decided`. */
  what: string;
  /** The transaction that made the change. */
  xid?: bigint;
  /**
   * For `decided`: the snapshot the decision read, whether it left more to start, and when its plan
   * has something fall due with time alone (Infinity: nothing). `xid` is then the announcement's own
   * transaction, committed after the decision's claims: a later decision that sees it saw them.
   */
  decided?: { snapshot: string; more: boolean; due?: Millis };
}

/**
 * Whether schedulerState reads job history: `skip` not at all; `unlessMark` only if its mark has
 * moved from the one given (the caller keeps the history it read with that mark).
 */
export type HistoryAsk = 'skip' | { unlessMark: number };

/** The lab as the allocator reads it for one decision, all as of one moment. */
export interface SchedulerState {
  hosts: SchedulerHostRow[];
  health: HostHealthRecord[];
  shares: HostShareRow[];
  holds: Hold[];
  /** The queue, as labQueue gives it, but for the runvars of the flights the caller said it knows. */
  queue: LabQueue;
  /** Reservations in force now or later. */
  reservations: LabReservation[];
  /**
   * Past runs (pass or fail) since `historySince` of the queued jobs' names and `alsoJobs`: at most
   * 20 per name, newest first. Absent when not asked for (see HistoryAsk).
   */
  history?: PastJobRun[];
  /** Changes whenever any job's history may have changed. */
  historyMark: number;
  /** PostgreSQL: the snapshot all of it was read at (`pg_current_snapshot()`), for a decision's announcement. */
  snapshot?: string;
}

export interface JobClaim {
  flight: string;
  job: string;
  worker: string;
  claimed: Millis;
  renewed: Millis;
  leaseUntil: Millis;
}

/** One holder of a host: an exclusive allocation, or one slot of a shared build host (`share` set). */
export interface Hold {
  host: string;
  flight: string;
  job: string;
  ident: string;
  allocated: Millis;
  /** null: no lease (allocated by hand or by a run-job outside a worker); it never expires. */
  leaseUntil: Millis | null;
  /** When the holder was expected to be done, for the planner; null: unknown. */
  expectedEnd: Millis | null;
  /** The share type when this is a slot of a shared host; null for an exclusive allocation. */
  share: string | null;
}

/** An allocation-log entry, with the share type for slots of shared hosts (null: exclusive). */
export interface HoldEvent {
  id: number;
  host: string;
  flight: string;
  job: string;
  ident: string;
  event: 'allocate' | 'release';
  at: Millis;
  share: string | null;
}

export interface HostShareRow {
  host: string;
  /** `build-<suite>-<arch>`. */
  type: string;
  harness: string;
  state: 'prep' | 'ready';
  slots: number;
  wear: number;
  wearLimit: number;
  created: Millis;
  /** Jobs holding a slot now. */
  holders: number;
}

/** What the planner said about a shared build host for this job (see ShareAction in the scheduler). */
export type ShareTake =
  | { action: 'join'; host: string; type: string; harness: string }
  | { action: 'start'; host: string; type: string; harness: string; slots: number; wearLimit: number };

/**
 * What an allocation decision tells the other workers (PostgreSQL: NOTIFY; see deciding): it read
 * the lab at `snapshot` and did or did not leave `more` to start; its plan has something fall due at
 * `due`. See scheduler/wake-ledger.ts.
 */
export interface Announcement {
  snapshot: string | undefined;
  more: boolean;
  due?: Millis;
}

export interface TakeHosts {
  flight: string;
  job: string;
  /** Every ident of the job with its host: all are taken or none. */
  holds: { ident: string; host: string }[];
  share?: ShareTake;
  /** Lease length; null or absent: the holds have no lease. */
  leaseMs?: number | null;
  expectedEnd?: Millis | null;
  /** Claim the job for this worker in the same transaction: the job must be queued and unclaimed. */
  claimFor?: string;
  /** Take hosts whatever their health (a health-check job on a quarantined host). */
  outOfService?: boolean;
  now?: Millis;
}

export type TakeResult = { ok: true } | { ok: false; why: string };

export interface HostHealthRecord {
  host: string;
  state: HealthState;
  reason: string;
  /** Since when it is in this state; null for a host never judged (good by default). */
  since: Millis | null;
  /** Jobs in a row that ended broken on it while passing elsewhere. */
  brokenStreak: number;
  /** A health-check flight queued for it and not yet judged. */
  checkFlight: string | null;
  checkQueued: Millis | null;
}

export interface HealthChange {
  host: string;
  from: HealthState;
  to: HealthState;
  brokenStreak: number;
  reason: string;
}

export interface ReapResult {
  /** Workers whose lease ran out, now marked ended. */
  workers: Worker[];
  /** Jobs whose worker (or claim lease) was gone: made broken, their running steps closed. */
  jobs: { flight: string; job: string; worker: string; status: JobStatus; stepsClosed: number[] }[];
  /** Holds whose lease ran out more than the grace ago, now released. */
  released: Hold[];
}

export interface JobOutcome {
  flight: string;
  job: string;
  status: JobStatus;
  hosts: readonly string[];
  /** Quarantine a host after this many counted broken jobs in a row. */
  quarantineAfter: number;
  /** A broken job counts only if the same job passed on another host this recently. */
  lookbackMs: number;
  now?: Millis;
}

/** A past run of a job, for estimates and preferences. */
export interface PastJobRun {
  flight: string;
  job: string;
  status: JobStatus;
  started: Millis;
  finished: Millis;
  hosts: string[];
}

export const RESERVATION_KINDS = ['blockage', 'manual'] as const;
/** blockage: a maintenance window over hosts with a flag (mg-blockage); manual: hosts taken by hand (mg-allocate). */
export type ReservationKind = (typeof RESERVATION_KINDS)[number];

/** A fixed booking of a host that is not a job: no job gets the host in [start, end). */
export interface LabReservation {
  id: number;
  host: string;
  start: Millis;
  end: Millis;
  kind: ReservationKind;
  /** Who made it ($USER). */
  owner: string;
  /** Why (shown on the plan). */
  label: string;
  created: Millis;
}

export interface NewReservations {
  /** One reservation per host, all made or none. */
  hosts: readonly string[];
  start: Millis;
  end: Millis;
  kind: ReservationKind;
  owner: string;
  label: string;
  /**
   * Refuse (ConflictError, nothing made) a host that a job holds now or that another reservation
   * covers at any time of [start, end): what taking a host by hand needs. A blockage does not: jobs
   * running over it keep their hosts, and blockages may overlap.
   */
  exclusive?: boolean;
  now?: Millis;
}

export interface LabStore {
  // workers
  registerWorker(w: {
    id: string;
    host: string;
    pid: number;
    leaseMs: number;
    maxJobs: number;
    now?: Millis;
  }): Promise<Worker>;
  /**
   * Extends the worker's lease and, with it, the leases of its claims and of their holds. Returns the
   * worker (its `draining` says whether to stop taking jobs), or undefined when it has been declared
   * gone: it must then stop its jobs at once (others have made them broken).
   */
  renewWorker(id: string, leaseMs: number, now?: Millis): Promise<Worker | undefined>;
  /** Tells live workers (one by id, or all on a machine, or all) to drain; returns those told. */
  drainWorkers(sel: { id?: string; host?: string }): Promise<Worker[]>;
  endWorker(id: string, reason: string, now?: Millis): Promise<void>;
  /** Live workers, or all ever registered with `all`; oldest first. */
  listWorkers(opts?: { all?: boolean }): Promise<Worker[]>;

  // the queue
  /** Queues a flight for workers; refuses a finished flight or one without jobs. */
  queueFlight(
    flight: string,
    opts: { priority?: number | null; by: string; now?: Millis },
  ): Promise<QueuedFlight>;
  labQueue(): Promise<LabQueue>;
  /**
   * Everything the allocator plans from, read at one moment (one round trip on PostgreSQL): see
   * SchedulerState. `alsoJobs` adds job names whose history is wanted besides the queued ones'.
   * `runvarsKnown` names flights whose definition runvars the caller has already (read once the
   * flight had started, after which they cannot change): their jobs come back with runvars `{}`.
   */
  schedulerState(opts: {
    now: Millis;
    historySince: Millis;
    alsoJobs?: readonly string[];
    runvarsKnown?: readonly string[];
    /** Default: read it. */
    history?: HistoryAsk;
  }): Promise<SchedulerState>;
  /**
   * Job history for the allocator's estimates, apart from schedulerState (a worker reads it before its
   * turn to decide): the names of the queued flights' queued jobs, the history mark, and, as
   * schedulerState's, their past runs since `since` unless `history` says otherwise.
   */
  jobHistory(opts: { since: Millis; history?: HistoryAsk }): Promise<{
    queuedJobs: string[];
    mark: number;
    runs?: PastJobRun[];
  }>;
  /** Blesses queued flights whose jobs have all ended (with their intended blessing) and takes them off the queue. */
  completeFlights(): Promise<{ flight: string; blessing: string }[]>;
  /** Ends a queued, unclaimed job without running it (starved, or broken when no host can ever serve it). */
  settleUnclaimed(flight: string, job: string, status: JobStatus, reason: string): Promise<boolean>;

  // holds
  /** Gives the job every host it asked for, or none (see TakeHosts); never two holders of a host. */
  takeHosts(t: TakeHosts): Promise<TakeResult>;
  /**
   * Several takes in one transaction, each all or none by itself (one refused leaves the others
   * going ahead), judged in order: a later one sees what the earlier ones took. One result per take.
   */
  takeEach(takes: readonly TakeHosts[]): Promise<TakeResult[]>;
  listHolds(): Promise<Hold[]>;
  listClaims(): Promise<JobClaim[]>;
  listShares(): Promise<HostShareRow[]>;
  /** The allocation log with share types; oldest first. */
  holdHistory(opts?: { host?: string; flight?: string }): Promise<HoldEvent[]>;
  /** A share being prepared by this job becomes ready for others to join. */
  markShareReady(host: string, holder: { flight: string; job: string }): Promise<boolean>;
  /**
   * The end of a job a worker ran: an unfinished job becomes broken (with `why`), its running steps
   * broken, its holds released (shares it prepared become ready when `sharesPrepared`, else are
   * dropped), its claim removed. Returns the job's final status.
   */
  closeJob(c: {
    flight: string;
    job: string;
    worker?: string;
    sharesPrepared: boolean;
    now?: Millis;
  }): Promise<{ status: JobStatus; stepsClosed: number[]; released: Hold[] }>;
  /**
   * Anyone may call it: workers whose lease ran out are ended and their jobs made broken; holds whose
   * lease ran out more than `graceMs` ago are released (each logged, with a host event).
   */
  reapExpired(opts: { graceMs: number; now?: Millis }): Promise<ReapResult>;
  /** Pass/fail runs of these job names since a time, at most `limit` (default 20) per name, newest first. */
  pastRuns(jobs: readonly string[], opts: { since: Millis; limit?: number }): Promise<PastJobRun[]>;

  // health
  /** Every host's health (hosts never judged are good), or one host's. */
  hostHealth(host?: string): Promise<HostHealthRecord[]>;
  /** Sets a host's health by hand (good clears its broken streak); records a `health` host event. */
  setHostHealth(host: string, state: HealthState, reason: string, now?: Millis): Promise<HealthChange>;
  /** Counts a job's end against its hosts' health; returns the hosts whose state changed. */
  recordJobOutcome(o: JobOutcome): Promise<HealthChange[]>;
  /**
   * Marks a health check of a quarantined host as due: true (and the check recorded as queued now)
   * when none is pending and the last was queued at least `intervalMs` ago.
   */
  startHealthCheck(host: string, intervalMs: number, now?: Millis): Promise<boolean>;
  /** Names the flight of the pending check (after startHealthCheck said true). */
  setHealthCheckFlight(host: string, flight: string): Promise<void>;
  /** The verdict of a health check: pass makes the host good again. */
  recordHealthCheck(
    host: string,
    passed: boolean,
    detail: string,
    now?: Millis,
  ): Promise<HealthChange | undefined>;

  // reservations
  /** Makes one reservation per host, all or none; NotFoundError for an unknown host. */
  addReservations(r: NewReservations): Promise<LabReservation[]>;
  /** Reservations by start; with `current`, only those not yet over at `now` (default: the clock). */
  listReservations(opts?: { current?: boolean; now?: Millis }): Promise<LabReservation[]>;
  /** Deletes one reservation; returns it, or undefined when there is none with that id. */
  removeReservation(id: number, now?: Millis): Promise<LabReservation | undefined>;
  /**
   * Ends the owner's reservations of these hosts of this kind that are not over: one under way ends
   * now, one still to come is deleted. Returns them as they were.
   */
  endReservations(sel: {
    hosts: readonly string[];
    owner: string;
    kind: ReservationKind;
    now?: Millis;
  }): Promise<LabReservation[]>;

  // wake-ups
  /**
   * Calls `onWake` when another process changes something a worker waits for (hosts released, a
   * flight queued, a host back in service). PostgreSQL: LISTEN/NOTIFY; sqlite: never (poll instead).
   * Returns a function that stops listening.
   */
  listen(onWake: (what: string, wake: LabWake) => void): Promise<() => Promise<void>>;
  /**
   * Runs `fn` while no other worker of the lab runs its own (PostgreSQL: an advisory lock held by a
   * connection of this process, released if the process dies; sqlite: as it is, since a take
   * already waits for the one writer there). Workers deciding one at a time never plan from a lab
   * another is changing, so no decision is wasted on a race it was bound to lose.
   *
   * With `unlessBusy`: when another worker has the turn (PostgreSQL), returns what it returns at
   * once instead of waiting. The caller relies on that worker's announcement: it covers the changes
   * its read saw, and says there is more when it heard of others (see WakeLedger).
   *
   * `fn` is given the lab store to decide with: on PostgreSQL, one whose transactions run on the
   * connection that holds the turn.
   *
   * With `announce`: what it makes of `fn`'s result is announced (see Announcement; nothing on
   * sqlite) while the turn is still held, in the same round trip that gives the turn up.
   */
  deciding<T>(
    fn: (lab: LabStore) => Promise<T>,
    unlessBusy?: () => T,
    announce?: (r: T) => Announcement | undefined,
  ): Promise<T>;
  /** Whether listen() really delivers wake-ups (else workers must poll more often). */
  readonly notifies: boolean;
}
