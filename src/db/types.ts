import type { JobStatus, StepStatus } from '../model/status.js';

/** Times are milliseconds since the epoch (numbers in JS, BIGINT in PostgreSQL). */
export type Millis = number;

export interface Flight {
  /** A decimal number for flights made from the sequence, or a name (standalone: `standalone`). */
  flight: string;
  /** Monotonic creation order, for "newest first" regardless of naming. */
  seq: number;
  branch: string;
  intended: string;
  /** `constructing` → `running` → the final blessing (`real`, `play`, `adhoc`, `bisect`…). */
  blessing: string;
  created: Millis;
  /** When the first step of the flight started; null while it has not run. */
  started: Millis | null;
}

export interface Job {
  flight: string;
  job: string;
  recipe: string;
  status: JobStatus;
}

export interface Runvar {
  flight: string;
  job: string;
  name: string;
  val: string;
  /** false: definition (set when the flight was made); true: execution (written while the job ran). */
  synth: boolean;
}

export interface Step {
  flight: string;
  job: string;
  stepno: number;
  /** The testcase's script name, e.g. `ts-build`. */
  testcase: string;
  testid: string;
  status: StepStatus;
  started: Millis | null;
  finished: Millis | null;
  /** Path of the step's log, relative to the configured Logs directory. */
  logPath: string | null;
}

export interface Host {
  name: string;
  mac: string | null;
  ip: string | null;
  flags: string[];
  /** Properties from the host database only; config overlays them (see config/hostprops). */
  props: Record<string, string>;
}

export interface Allocation {
  host: string;
  flight: string;
  job: string;
  /** The ident the job knows the host by (`host`, `src_host`, `buildhost`…). */
  ident: string;
  allocated: Millis;
}

export interface AllocationEvent {
  id: number;
  host: string;
  flight: string;
  job: string;
  ident: string;
  event: 'allocate' | 'release';
  at: Millis;
}

/**
 * Something a host did while booting or installing, as the controller's services saw it: `dhcp` (a lease
 * given), `fetch` (a boot or install file served), `progress` (a step the host reported, e.g. `booted`),
 * `refused` (a request in its name from another address). Testcases wait on these.
 */
export interface HostEvent {
  id: number;
  host: string;
  kind: string;
  detail: string;
  at: Millis;
}

export interface NewFlight {
  /** Omit to take the next number from the sequence. */
  flight?: string;
  branch: string;
  intended: string;
  blessing?: string;
}

/** pending: asked for, not begun; running: flights made; done: it has a verdict. */
export type BisectionState = 'pending' | 'running' | 'done';
/** What one flight said about the tuple it tested. */
export type BisectionResult = 'pass' | 'fail' | 'blocked' | 'broken';
/** failure/basis: the flights it started from; test: the flights it made; verify: `bisect verify`. */
export type BisectionFlightRole = 'failure' | 'basis' | 'test' | 'verify';

/** A bisection of (branch, job, testid) (OSSTEST-BEHAVIOUR §5), with its verdict once it has one. */
export interface Bisection {
  id: number;
  branch: string;
  job: string;
  testid: string;
  /** The flight whose regression asked for it (the push gate), if any. */
  requestedFlight: string | null;
  state: BisectionState;
  failureFlight: string | null;
  basisFlight: string | null;
  /** The two ends as tuple ids (`tree=rev,…`, trees sorted). */
  failureTuple: string | null;
  basisTuple: string | null;
  /** tree → URL of the trees bisected. */
  trees: Record<string, string>;
  /** ident → host of the failure's job: where every bisect flight runs. */
  hosts: Record<string, string>;
  /** How many equivalent hosts it tests on at once (k). */
  parallel: number | null;
  /** The verdict: 4, 8, 12, 16 or 32 (§5), its wording and a sentence of detail. */
  code: number | null;
  wording: string | null;
  detail: string | null;
  culpritTree: string | null;
  culpritRev: string | null;
  /** The culprit's tree's revisions in the passing parent tuples ("not present at"). */
  culpritParents: string[];
  /** 0..1: how sure the verdict is (src/bisect/engine.ts). */
  confidence: number | null;
  /** Whether `bisect verify` confirmed the culprit: null while not verified (or inconclusive). */
  confirmed: boolean | null;
  created: Millis;
  started: Millis | null;
  finished: Millis | null;
}

/** The fields of a bisection that change as it goes. */
export type BisectionUpdate = Partial<
  Pick<
    Bisection,
    | 'state'
    | 'failureFlight'
    | 'basisFlight'
    | 'failureTuple'
    | 'basisTuple'
    | 'trees'
    | 'hosts'
    | 'parallel'
    | 'code'
    | 'wording'
    | 'detail'
    | 'culpritTree'
    | 'culpritRev'
    | 'culpritParents'
    | 'confidence'
    | 'confirmed'
    | 'started'
    | 'finished'
  >
>;

export interface BisectionFlight {
  bisection: number;
  flight: string;
  role: BisectionFlightRole;
  /** The tuple the flight tested (tuple id). */
  tuple: string;
  /** Why it was made (the engine's reason: bisect, reproduce-basis, confirm-culprit…). */
  reason: string | null;
  /** null while the flight runs. */
  result: BisectionResult | null;
  /** When the result was produced (ms since the epoch); orders the results. */
  at: Millis | null;
  added: Millis;
}
