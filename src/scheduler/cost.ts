/**
 * OSSTest's preferences between hosts that are free at the same time (the planner takes the
 * earliest start first; cost only orders the choices at that start), in this order:
 *  1. hosts where this job's test last failed: running there again confirms or denies the failure;
 *  2. healthy hosts before suspect ones;
 *  3. hosts that have not run this job lately (coverage across the lab), by age bucket;
 *  4. a slot of a ready shared build host (skips a reinstall) before a fresh host;
 *  5. not ending an idle share someone else could still use;
 *  6. hosts the rest of the queue wants least (so a one-host job leaves pair-capable hosts to pairs);
 *  7. host names, for a deterministic tie-break (the planner compares those last).
 * A cost is a vector compared lexicographically; an assignment's cost is the sum over its hosts.
 */
import type { Millis, SchedHost } from './types.js';

export interface CostInputs {
  /** Hosts of this job's last failing run. */
  lastFailedHosts?: readonly string[];
  /** When this job last ran on each host. */
  lastRanOn?: Readonly<Record<string, Millis>>;
}

export type CostVector = readonly number[];

const DAY = 24 * 3600 * 1000;
/** Age buckets for "ran it lately": within a day, a week, a month; older or never counts as not lately. */
export const RECENCY_WINDOWS: readonly Millis[] = [DAY, 7 * DAY, 30 * DAY];

/** 0 when the job never ran on the host or not within the widest window; larger = more recently. */
export function recencyBucket(now: Millis, lastRan: Millis | undefined): number {
  if (lastRan === undefined) return 0;
  const age = now - lastRan;
  for (let i = 0; i < RECENCY_WINDOWS.length; i++)
    if (age <= RECENCY_WINDOWS[i]!) return RECENCY_WINDOWS.length - i;
  return 0;
}

export interface HostChoice {
  /** The job would take a slot of a ready share on this host. */
  join: boolean;
  /** The job may use shared build hosts (so a fresh host costs it a reinstall a join would not). */
  shareEligible: boolean;
  /** Taking the host ends an idle share on it. */
  dissolves: boolean;
  /** The load the rest of the queue puts on this host (planner's estimate). */
  load: number;
}

export function hostCost(
  now: Millis,
  prefs: CostInputs | undefined,
  host: SchedHost,
  c: HostChoice,
): CostVector {
  return [
    prefs?.lastFailedHosts?.includes(host.name) ? -1 : 0,
    host.health === 'suspect' ? 1 : 0,
    recencyBucket(now, prefs?.lastRanOn?.[host.name]),
    c.shareEligible && !c.join ? 1 : 0,
    c.dissolves ? 1 : 0,
    c.load,
  ];
}

export function addCost(a: CostVector, b: CostVector): CostVector {
  return a.map((x, i) => x + (b[i] ?? 0));
}

export function compareCost(a: CostVector, b: CostVector): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}
