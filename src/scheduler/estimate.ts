/**
 * How long a job will hold its hosts, from its own recent history (OSSTEST-BEHAVIOUR §6): the
 * median of its last N complete runs, on the same host(s) when there are enough of those, else on
 * any host, else a default. And when a holder is overdue (still there after its expected end), a
 * new guess: a fraction of its original estimate from now, so the plan keeps moving instead of
 * assuming the host is free already.
 */
import { SchedulerInputError } from './errors.js';
import type { HeldAllocation, Millis } from './types.js';

export interface PastRun {
  /** Hosts the run held. */
  hosts: readonly string[];
  durationMs: number;
  finished: Millis;
  /** Job status of the run; when given, only `pass` and `fail` (runs that went the whole way) count. */
  status?: string;
}

export interface EstimateOptions {
  /** How many recent runs the median is taken over (default 5). */
  lastN?: number;
  /** Runs on the same host(s) needed before they are preferred (default 2). */
  minSameHost?: number;
  /** For a job with no usable history (default 1 hour). */
  defaultMs?: number;
}

export interface Estimate {
  ms: number;
  basis: 'same-host' | 'job' | 'default';
  samples: number;
}

export const DEFAULT_ESTIMATE_MS = 3600_000;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : Math.round((s[m - 1]! + s[m]!) / 2);
}

function complete(history: readonly PastRun[]): PastRun[] {
  for (const r of history)
    if (!Number.isFinite(r.durationMs) || r.durationMs < 0)
      throw new SchedulerInputError(`job history: bad run duration ${r.durationMs} (finished ${r.finished})`);
  return history
    .filter((r) => r.status === undefined || r.status === 'pass' || r.status === 'fail')
    .sort((a, b) => b.finished - a.finished);
}

/** The estimate for a run of the job, on `hosts` when given. */
export function estimateDuration(
  history: readonly PastRun[],
  opts: EstimateOptions & { hosts?: readonly string[] } = {},
): Estimate {
  const lastN = opts.lastN ?? 5;
  const minSame = opts.minSameHost ?? 2;
  const runs = complete(history);
  const hosts = opts.hosts;
  if (hosts && hosts.length > 0) {
    const same = runs.filter((r) => hosts.every((h) => r.hosts.includes(h))).slice(0, lastN);
    if (same.length >= minSame)
      return { ms: median(same.map((r) => r.durationMs)), basis: 'same-host', samples: same.length };
  }
  const recent = runs.slice(0, lastN);
  if (recent.length > 0)
    return { ms: median(recent.map((r) => r.durationMs)), basis: 'job', samples: recent.length };
  return { ms: opts.defaultMs ?? DEFAULT_ESTIMATE_MS, basis: 'default', samples: 0 };
}

/** Estimates on those of `hosts` where the job's own history there is enough to say (for `durationByHost`). */
export function estimatesByHost(
  history: readonly PastRun[],
  hosts: readonly string[],
  opts: EstimateOptions = {},
): Record<string, number> {
  // What estimateDuration(history, { hosts: [h] }) says for each h, from one pass over the runs: a
  // decision asks this for every queued job and every host (bench/scheduler).
  const lastN = opts.lastN ?? 5;
  const minSame = opts.minSameHost ?? 2;
  const wanted = new Set(hosts);
  const byHost = new Map<string, number[]>();
  for (const r of complete(history))
    for (const h of new Set(r.hosts)) {
      if (!wanted.has(h)) continue;
      const l = byHost.get(h) ?? [];
      if (l.length < lastN) l.push(r.durationMs);
      byHost.set(h, l);
    }
  const out: Record<string, number> = {};
  for (const h of hosts) {
    const l = byHost.get(h);
    if (l && l.length >= minSame) out[h] = median(l);
  }
  return out;
}

export interface HoldOptions {
  /** An overdue holder is given this fraction of its original estimate from now (default 0.25)… */
  overdueFraction?: number;
  /** …but at least this long (default 5 minutes). */
  overdueMinMs?: number;
  /** A holder with no expected end (a host allocated by hand) is assumed to hold it this long (default 1 hour). */
  defaultHeldMs?: number;
}

/** When the planner expects a held host to be free again; never before `now`. */
export function expectedRelease(
  a: Pick<HeldAllocation, 'since' | 'expectedEnd'>,
  now: Millis,
  o: HoldOptions = {},
): Millis {
  const end = a.expectedEnd ?? a.since + (o.defaultHeldMs ?? DEFAULT_ESTIMATE_MS);
  if (end > now) return end;
  const original = Math.max(0, end - a.since);
  return now + Math.max(o.overdueMinMs ?? 300_000, Math.round((o.overdueFraction ?? 0.25) * original));
}
