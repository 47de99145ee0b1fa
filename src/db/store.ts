import type { JobStatus, StepStatus } from '../model/status.js';
import type {
  BranchControl,
  BranchControlChange,
  GateRun,
  GateRunChange,
  NewGateRun,
  NewPush,
  PushRecord,
} from './gate-types.js';
import type { LabStore } from './lab/types.js';
import type {
  Allocation,
  AllocationEvent,
  Bisection,
  BisectionFlight,
  BisectionFlightRole,
  BisectionResult,
  BisectionState,
  BisectionUpdate,
  Flight,
  Host,
  HostEvent,
  Job,
  Millis,
  NewFlight,
  Runvar,
  Step,
} from './types.js';

/**
 * The store: everything osstest remembers. One interface, two implementations (sqlite for standalone,
 * PostgreSQL for a lab), one test suite run against both (test/integration/store-suite.ts).
 *
 * Rules enforced here, not by callers:
 * - a flight's definition (its jobs and definition runvars) may change only while its blessing is
 *   `constructing`; afterwards such changes raise FrozenError;
 * - broken and aborted job statuses are sticky;
 * - a host is allocated to at most one job at a time, atomically.
 */
export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  close(): Promise<void>;
  /** Lab mode: workers, queued flights, job claims, leases, shared build hosts, host health (src/db/lab/). */
  readonly lab: LabStore;

  // flights
  createFlight(f: NewFlight): Promise<Flight>;
  getFlight(flight: string): Promise<Flight | undefined>;
  /** Newest first. */
  listFlights(opts?: { branch?: string; limit?: number }): Promise<Flight[]>;
  /** constructing → running and `started` = now; a no-op when already started. */
  markFlightStarted(flight: string, at?: Millis): Promise<Flight>;
  setFlightBlessing(flight: string, blessing: string): Promise<void>;
  /** Removes the flight with its jobs, runvars, steps and allocations. */
  deleteFlight(flight: string): Promise<void>;
  /** Records that this harness revision (e.g. `abc123+` when dirty) touched the flight. */
  recordHarness(flight: string, revision: string): Promise<void>;
  harnessRevisions(flight: string): Promise<string[]>;

  // jobs
  createJob(flight: string, job: string, recipe: string, runvars?: Record<string, string>): Promise<Job>;
  getJob(flight: string, job: string): Promise<Job | undefined>;
  listJobs(flight: string): Promise<Job[]>;
  /** Applies the sticky rule; returns the status the job has afterwards. */
  setJobStatus(flight: string, job: string, status: JobStatus): Promise<JobStatus>;
  /**
   * Makes a job runnable again (a developer re-running a standalone job): deletes its steps and
   * execution (synth) runvars, releases its hosts and sets it `queued` whatever its status was.
   * Allowed on a running flight: the job's definition is untouched.
   */
  resetJob(flight: string, job: string): Promise<void>;

  // runvars
  getRunvar(flight: string, job: string, name: string): Promise<Runvar | undefined>;
  listRunvars(flight: string, job?: string): Promise<Runvar[]>;
  /** synth=false is a definition change: refused once the flight has started. */
  setRunvar(flight: string, job: string, name: string, val: string, opts: { synth: boolean }): Promise<void>;
  deleteRunvar(flight: string, job: string, name: string, opts: { synth: boolean }): Promise<void>;

  // steps
  /** Inserts a step as `running` with the next step number of the job, and returns it. */
  startStep(
    flight: string,
    job: string,
    s: { testcase: string; testid: string | ((stepno: number) => string); started?: Millis },
  ): Promise<Step>;
  finishStep(
    flight: string,
    job: string,
    stepno: number,
    s: { status: StepStatus; finished?: Millis; logPath?: string | null; testid?: string },
  ): Promise<void>;
  listSteps(flight: string, job?: string): Promise<Step[]>;
  /**
   * Whether step `job` with one of `testids` ended `pass` in some flight of `branch` (of sequence
   * below `beforeSeq` when given): the report's "never pass" looks at the whole branch, not only its
   * window of recent flights. One indexed lookup (steps by job, testid), stopping at the first pass.
   */
  stepPassedOnBranch(
    branch: string,
    job: string,
    testids: readonly string[],
    beforeSeq?: number,
  ): Promise<boolean>;

  // hosts
  upsertHost(h: { name: string; mac?: string | null; ip?: string | null }): Promise<Host>;
  getHost(name: string): Promise<Host | undefined>;
  listHosts(): Promise<Host[]>;
  deleteHost(name: string): Promise<void>;
  setHostFlags(name: string, add: readonly string[], remove?: readonly string[]): Promise<void>;
  /** val null deletes the property. */
  setHostProp(name: string, prop: string, val: string | null): Promise<void>;
  /** Appends a host event (see HostEvent); `at` defaults to now. Kept after the host is deleted. */
  recordHostEvent(host: string, e: { kind: string; detail: string; at?: Millis }): Promise<HostEvent>;
  /** The host's events, oldest first; `since` keeps those at or after that time. */
  listHostEvents(host: string, opts?: { since?: Millis }): Promise<HostEvent[]>;

  // allocations
  /** Atomically gives the host to the job; false when someone else holds it. */
  allocateHost(host: string, owner: { flight: string; job: string; ident: string }): Promise<boolean>;
  /** Releases the host if held by this owner (or by anyone when owner is omitted). */
  releaseHost(host: string, owner?: { flight: string; job: string }): Promise<void>;
  releaseJobHosts(flight: string, job: string): Promise<void>;
  listAllocations(): Promise<Allocation[]>;
  /** Oldest first; with `limit`, the newest `limit` events. Kept after hosts and flights are deleted. */
  allocationLog(opts?: { host?: string; limit?: number }): Promise<AllocationEvent[]>;

  // bisections (src/bisect/)
  /**
   * Atomically: the open (pending or running) bisection of (branch, job, testid) if there is one,
   * else a new pending one. `created` says which.
   */
  requestBisection(b: {
    branch: string;
    job: string;
    testid: string;
    requestedFlight?: string | null;
  }): Promise<{ bisection: Bisection; created: boolean }>;
  getBisection(id: number): Promise<Bisection | undefined>;
  /** Newest first. */
  listBisections(opts?: {
    branch?: string;
    job?: string;
    testid?: string;
    state?: BisectionState;
    limit?: number;
  }): Promise<Bisection[]>;
  updateBisection(id: number, patch: BisectionUpdate): Promise<Bisection>;
  /** A flight of the bisection; ConflictError if it already has that flight. */
  addBisectionFlight(
    id: number,
    f: {
      flight: string;
      role: BisectionFlightRole;
      tuple: string;
      reason?: string | null;
      result?: BisectionResult | null;
      at?: Millis | null;
    },
  ): Promise<BisectionFlight>;
  setBisectionFlightResult(id: number, flight: string, result: BisectionResult, at?: Millis): Promise<void>;
  /** In the order they were added. */
  listBisectionFlights(id: number): Promise<BisectionFlight[]>;

  // the push gate's state (src/gate/, migration 20; types in gate-types.ts)
  /** The branch's controls; the defaults (nothing set) when it has none. */
  getBranchControl(branch: string): Promise<BranchControl>;
  /** Every branch that has controls set, by name. */
  listBranchControls(): Promise<BranchControl[]>;
  /** Sets the given fields and returns the controls afterwards. */
  setBranchControl(branch: string, change: BranchControlChange): Promise<BranchControl>;
  /** Atomically clears the force-push request if it is still `rev`; true when it was (use it once). */
  takeForcePush(branch: string, rev: string): Promise<boolean>;
  /** ConflictError while another run of the same branch has not finished. */
  startGateRun(r: NewGateRun): Promise<GateRun>;
  /** Refused once the run has finished. */
  updateGateRun(id: number, change: GateRunChange): Promise<GateRun>;
  getGateRun(id: number): Promise<GateRun | undefined>;
  /** Newest first. */
  listGateRuns(opts?: { branch?: string; limit?: number }): Promise<GateRun[]>;
  /** The newest completed run of the branch whose flight tested `revision` of `tree` (the tree under test). */
  findTestedRun(branch: string, tree: string, revision: string): Promise<GateRun | undefined>;
  recordPush(p: NewPush): Promise<PushRecord>;
  /** Newest first. */
  listPushes(opts?: { branch?: string; limit?: number }): Promise<PushRecord[]>;
}
