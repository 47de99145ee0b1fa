/**
 * The scheduler's plain data: a snapshot of the lab (hosts, who holds them until when, fixed
 * reservations, the waiting queue) goes into the pure decision core (`plan`), and decisions come
 * out. A store layer takes the snapshot inside a transaction, applies the decisions atomically
 * and, if one of its writes lost a race with another worker, takes a new snapshot and decides
 * again. Nothing in this folder touches the database or the clock.
 */
import type { Millis } from '../db/types.js';
import type { CostInputs } from './cost.js';
import type { JobRequirements } from './requirements.js';

export type { Millis };

/**
 * good: allocatable. suspect: allocatable, but other hosts are preferred (a recent run there
 * ended broken). quarantined / maintenance: never allocated; jobs that need such a host wait.
 */
export const HOST_HEALTH = ['good', 'suspect', 'quarantined', 'maintenance'] as const;
export type HostHealth = (typeof HOST_HEALTH)[number];

export function isHostHealth(s: string): s is HostHealth {
  return (HOST_HEALTH as readonly string[]).includes(s);
}

/** Whether the host may be given to a job at all (its health allows it). */
export function inService(h: Pick<SchedHost, 'health'>): boolean {
  return h.health === 'good' || h.health === 'suspect';
}

/**
 * A host in share mode (a shared build host): prepared once, it serves several build jobs of one
 * share type (`build-<suite>-<arch>`) and harness revision at a time, up to `slots` at once and
 * `wearLimit` in total; after that it must be reinstalled before it is shared again.
 */
export interface HostShare {
  /** The share type: the job's `share-build-<suite>-<arch>` flag without `share-`. */
  type: string;
  /** Harness revision every sharer must run (`git rev-parse HEAD`, `+` when dirty). */
  harness: string;
  /** prep: the first sharer is installing and preparing it; ready: others may join (SharedReady). */
  state: 'prep' | 'ready';
  slots: number;
  /** Jobs it has served since it was prepared, the preparing job included. */
  wear: number;
  wearLimit: number;
}

export interface SchedHost {
  name: string;
  /** Effective flags (database + config HostFlags). */
  flags: readonly string[];
  /** Effective properties; `SharedMaxTasks` and `SharedMaxWear` size a new share. */
  props?: Readonly<Record<string, string>>;
  health: HostHealth;
  share?: HostShare;
}

/** A host held now: by a job (or several sharers of a shared host) or by hand. */
export interface HeldAllocation {
  host: string;
  /** Who holds it: a queue key (`flight/job`) or a person's label for allocations made by hand. */
  holder: string;
  since: Millis;
  /** When the holder is expected to let go; null: unknown (the planner assumes `defaultHeldMs`). */
  expectedEnd: Millis | null;
}

/** A fixed booking that is not a queued job: a blockage for an outage, a booking made by hand. */
export interface Reservation {
  host: string;
  start: Millis;
  end: Millis;
  label: string;
}

export interface QueuedJob {
  /** Unique in the queue; the store's key (e.g. `flight/job`). */
  key: string;
  req: JobRequirements;
  /** Estimated run time (estimate.ts). */
  durationMs: number;
  /** Estimates on particular hosts, where the job's history there says something (one-host jobs). */
  durationByHost?: Readonly<Record<string, number>>;
  /** Lower is sooner (priority.ts). */
  priority: number;
  subPriority?: number;
  /** When the job started waiting for hosts. */
  waitStart: Millis;
  /** Give up (status `starved`) once the job has waited longer than this; absent: wait forever. */
  starveAfterMs?: number;
  /** History that steers the choice between hosts free at the same time (cost.ts). */
  prefs?: CostInputs;
}

export interface Snapshot {
  now: Millis;
  hosts: readonly SchedHost[];
  allocations: readonly HeldAllocation[];
  reservations: readonly Reservation[];
  queue: readonly QueuedJob[];
}

/** What happens to a shared build host when this decision is applied. */
export type ShareAction =
  /** Take a free slot of a ready share: skip the reinstall (SharedReady); the share's wear + 1. */
  | { action: 'join'; host: string; type: string; harness: string }
  /** Take the whole host and prepare it as a new share (state prep; ready after the prep step). */
  | { action: 'start'; host: string; type: string; harness: string; slots: number; wearLimit: number };

interface DecisionBase {
  key: string;
  warnings: string[];
}

/** Hosts by ident, start and expected end. */
export interface Placement {
  hosts: Record<string, string>;
  start: Millis;
  end: Millis;
  share?: ShareAction;
  /** Hosts whose idle share ends when the job takes them (they are reinstalled as ordinary hosts). */
  dissolve?: string[];
}

export type Decision =
  /** Give these hosts to the job now. */
  | (DecisionBase & Placement & { kind: 'allocate' })
  /** The job will get these hosts at `start`; nothing to do now (the plan page shows it). */
  | (DecisionBase & Placement & { kind: 'book' })
  /** Not placed now: its hosts exist but are out of service, or planning stopped early (see reason). */
  | (DecisionBase & { kind: 'wait'; reason: string })
  /** No host in the lab could ever satisfy it, whatever their state. */
  | (DecisionBase & { kind: 'impossible'; reason: string })
  /** It waited longer than its limit: the job ends `starved`. */
  | (DecisionBase & { kind: 'starved'; waitedMs: number; reason: string });

export type DecisionKind = Decision['kind'];
