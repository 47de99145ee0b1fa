/**
 * A discrete-event simulation of a lab, for tests and the bench: jobs with known real durations
 * (and the estimates the planner is told), dependencies (a test is queued when its build passes),
 * release times (when their flight is made), driven by any scheduler that maps a snapshot to
 * decisions. It applies allocations the way the store will (refusing any host held twice, which
 * would be a scheduler bug), runs shared build hosts (prep, then ready for sharers that skip the
 * install; dissolved at the wear limit or when taken whole), and re-plans at every event.
 */
import type { CostInputs } from './cost.js';
import type { JobRequirements } from './requirements.js';
import type {
  Decision,
  HeldAllocation,
  HostShare,
  Millis,
  QueuedJob,
  Reservation,
  SchedHost,
  Snapshot,
} from './types.js';

export interface SimJob {
  key: string;
  req: JobRequirements;
  /** How long it really runs on a freshly installed host. */
  actualMs: number;
  /** What the planner is told it will take. */
  estimateMs: number;
  /** Part of `actualMs` spent installing and preparing the host: skipped when joining a ready share. */
  installMs?: number;
  /** Jobs that must pass before this one is queued. */
  deps?: readonly string[];
  /** Earliest time it is queued (its flight's creation). */
  release: Millis;
  priority: number;
  starveAfterMs?: number;
  prefs?: CostInputs;
}

export type Scheduler = (snap: Snapshot) => Decision[];

export interface SimOptions {
  hosts: readonly SchedHost[];
  reservations?: readonly Reservation[];
  start?: Millis;
  /** Stop (leaving jobs `unfinished`) at this time. */
  until?: Millis;
}

export type SimStatus = 'pass' | 'starved' | 'blocked' | 'impossible' | 'unfinished';

export interface SimJobResult {
  key: string;
  queued?: Millis;
  start?: Millis;
  end?: Millis;
  hosts?: string[];
  joinedShare?: boolean;
  status: SimStatus;
}

export interface SimResult {
  /** From the start to the last job's end. */
  makespan: Millis;
  jobs: Map<string, SimJobResult>;
  /** Wall time of each scheduler call, milliseconds. */
  decisionMs: number[];
  /** Scheduler calls made with a non-empty queue. */
  calls: number;
}

interface Running {
  job: SimJob;
  hosts: string[];
  start: Millis;
  end: Millis;
  joined: boolean;
}

export class DoubleAllocationError extends Error {
  override name = 'DoubleAllocationError';
}

export function simulateLab(jobs: readonly SimJob[], scheduler: Scheduler, opts: SimOptions): SimResult {
  const t0 = opts.start ?? 0;
  const byKey = new Map(jobs.map((j) => [j.key, j]));
  const res = new Map<string, SimJobResult>(jobs.map((j) => [j.key, { key: j.key, status: 'unfinished' }]));
  const hosts = new Map<string, SchedHost>(opts.hosts.map((h) => [h.name, { ...h }]));
  const readyAt = new Map<string, Millis>();
  const running = new Map<string, Running>();
  const queued = new Map<string, Millis>();
  const waitingDeps = new Set(jobs.map((j) => j.key));
  const holders = new Map<string, Set<string>>();
  const decisionMs: number[] = [];
  let calls = 0;
  let now = t0;
  let last = t0;

  const setShare = (h: string, s: HostShare | undefined) => {
    const host = hosts.get(h)!;
    const { share: _old, ...rest } = host;
    hosts.set(h, s ? { ...rest, share: s } : rest);
  };

  for (;;) {
    // Jobs ending now let go of their hosts; a worn-out share with no sharers left is dissolved.
    for (const [k, r] of [...running]) {
      if (r.end > now) continue;
      running.delete(k);
      res.get(k)!.status = 'pass';
      res.get(k)!.end = r.end;
      last = Math.max(last, r.end);
      for (const h of r.hosts) {
        holders.get(h)!.delete(k);
        const s = hosts.get(h)!.share;
        if (s && holders.get(h)!.size === 0 && (s.wear >= s.wearLimit || s.state === 'prep')) {
          setShare(h, undefined);
          readyAt.delete(h);
        }
      }
    }
    for (const [h, t] of [...readyAt]) {
      if (t > now) continue;
      readyAt.delete(h);
      const s = hosts.get(h)!.share;
      if (s) setShare(h, { ...s, state: 'ready' });
    }
    // Jobs whose dependencies are settled join the queue (or end blocked).
    for (const k of [...waitingDeps]) {
      const j = byKey.get(k)!;
      if (j.release > now) continue;
      const deps = (j.deps ?? []).map((d) => res.get(d)?.status ?? 'pass');
      if (deps.some((s) => s === 'unfinished')) continue;
      waitingDeps.delete(k);
      if (deps.some((s) => s !== 'pass')) {
        res.get(k)!.status = 'blocked';
        continue;
      }
      queued.set(k, now);
      res.get(k)!.queued = now;
    }
    if (opts.until !== undefined && now >= opts.until) break;

    if (queued.size > 0) {
      const allocations: HeldAllocation[] = [];
      for (const r of running.values())
        for (const h of r.hosts)
          allocations.push({
            host: h,
            holder: r.job.key,
            since: r.start,
            expectedEnd: r.start + r.job.estimateMs,
          });
      const queue: QueuedJob[] = [...queued].map(([k, w]) => {
        const j = byKey.get(k)!;
        const q: QueuedJob = {
          key: k,
          req: j.req,
          durationMs: j.estimateMs,
          priority: j.priority,
          waitStart: w,
        };
        if (j.starveAfterMs !== undefined) q.starveAfterMs = j.starveAfterMs;
        if (j.prefs) q.prefs = j.prefs;
        return q;
      });
      const snap: Snapshot = {
        now,
        hosts: [...hosts.values()],
        allocations,
        reservations: opts.reservations ?? [],
        queue,
      };
      const c0 = performance.now();
      const ds = scheduler(snap);
      decisionMs.push(performance.now() - c0);
      calls += 1;
      for (const d of ds) {
        const j = byKey.get(d.key)!;
        if (d.kind === 'starved' || d.kind === 'impossible') {
          queued.delete(d.key);
          res.get(d.key)!.status = d.kind;
          continue;
        }
        if (d.kind !== 'allocate') continue;
        const hs = Object.values(d.hosts);
        const join = d.share?.action === 'join';
        for (const h of hs) {
          const held = holders.get(h) ?? new Set<string>();
          holders.set(h, held);
          const s = hosts.get(h)!.share;
          if (join) {
            if (s?.state !== 'ready' || held.size >= s.slots || s.wear >= s.wearLimit)
              throw new DoubleAllocationError(
                `at ${now}: ${d.key} joins a share on ${h} that has no free slot`,
              );
            setShare(h, { ...s, wear: s.wear + 1 });
          } else {
            if (held.size > 0)
              throw new DoubleAllocationError(
                `at ${now}: ${h} given to ${d.key} while held by ${[...held].join(',')}`,
              );
            if (d.share?.action === 'start') {
              const { slots, wearLimit, type, harness } = d.share;
              setShare(h, { type, harness, state: 'prep', slots, wear: 1, wearLimit });
              readyAt.set(h, now + (j.installMs ?? 0));
            } else {
              setShare(h, undefined);
              readyAt.delete(h);
            }
          }
          held.add(d.key);
        }
        queued.delete(d.key);
        const runMs = join ? j.actualMs - (j.installMs ?? 0) : j.actualMs;
        running.set(d.key, { job: j, hosts: hs, start: now, end: now + Math.max(1, runMs), joined: join });
        Object.assign(res.get(d.key)!, { start: now, hosts: hs, joinedShare: join });
      }
    }

    // The next event: an end, a share becoming ready, a release, a starvation deadline.
    let next = Number.POSITIVE_INFINITY;
    for (const r of running.values()) next = Math.min(next, r.end);
    for (const t of readyAt.values()) if (t > now) next = Math.min(next, t);
    for (const r of opts.reservations ?? []) if (r.end > now) next = Math.min(next, r.end);
    for (const k of waitingDeps) {
      const j = byKey.get(k)!;
      if (j.release > now) next = Math.min(next, j.release);
    }
    for (const [k, w] of queued) {
      const lim = byKey.get(k)!.starveAfterMs;
      if (lim !== undefined && w + lim + 1 > now) next = Math.min(next, w + lim + 1);
    }
    if (opts.until !== undefined) next = Math.min(next, Math.max(opts.until, now + 1));
    if (!Number.isFinite(next)) break;
    now = next;
  }
  return { makespan: last - t0, jobs: res, decisionMs, calls };
}
