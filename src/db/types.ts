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
