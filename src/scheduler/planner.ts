/**
 * The planner: the pure decision core of host allocation (OSSTEST-BEHAVIOUR §6, rebuilt).
 *
 * Given a snapshot, it lays every waiting job on the hosts' timelines in queue order (priority,
 * sub-priority, wait start): each job gets the earliest time at which hosts satisfying it are all
 * free for its estimated duration, around the current holders and the bookings of the jobs before
 * it. A job is allocated now only if that earliest time is now; so a job later in the queue may
 * start first only where it delays no earlier job's booking (conservative backfilling), and a big
 * job (a pair needing two equivalent hosts) keeps its place however many small jobs come after it.
 *
 * The plan is rebuilt from the snapshot every time (nothing carried over but what the store keeps:
 * holders, reservations, the queue), so estimates that were wrong only cost until the next plan:
 * holders past their expected end are re-estimated (estimate.ts) rather than assumed gone.
 *
 * Unless `full` is asked for, planning stops once nothing later in the queue could start now
 * (every free host's free time is shorter than any remaining job): later jobs are reported as
 * waiting, not booked. Their bookings could not change what is allocated now.
 */
import {
  assignments,
  findAssignment,
  HostIndex,
  type JobCandidates,
  jobCandidates,
  type UsableFn,
} from './candidates.js';
import { addCost, type CostVector, compareCost, hostCost } from './cost.js';
import { SchedulerInputError } from './errors.js';
import { expectedRelease, type HoldOptions } from './estimate.js';
import { requirementSignature } from './requirements.js';
import { type Span, Timeline } from './timeline.js';
import {
  type Decision,
  inService,
  type Millis,
  type Placement,
  type QueuedJob,
  type SchedHost,
  type ShareAction,
  type Snapshot,
} from './types.js';

export interface PlanOptions extends HoldOptions {
  /** Book every queued job even once nothing more can start now (for a resource plan page). */
  full?: boolean;
  /** Slots of a new share when the host's `SharedMaxTasks` property does not say (default 3). */
  shareSlots?: number;
  /** Wear limit of a new share when the host's `SharedMaxWear` property does not say (default 10). */
  shareWearLimit?: number;
  /** Assignments compared by cost for one several-host job at its start time (default 2000). */
  enumerateLimit?: number;
  /** Candidate sets from earlier plans over the same hosts. */
  cache?: PlanCache;
}

/**
 * Candidate sets kept from one plan to the next while no host's name, flags, properties or health
 * changed: a worker that plans again and again keeps one and passes it in `PlanOptions.cache`.
 */
export class PlanCache {
  private fingerprint: string | undefined;
  private index: HostIndex | undefined;
  private readonly candidates = new Map<string, JobCandidates>();

  /** The host index and candidate map for these hosts (fresh ones when the hosts changed). */
  forHosts(hosts: readonly SchedHost[]): { index: HostIndex; candidates: Map<string, JobCandidates> } {
    const fp = hosts
      .map((h) => `${h.name}\0${h.health}\0${h.flags.join(',')}\0${JSON.stringify(h.props ?? {})}`)
      .join('\n');
    if (fp !== this.fingerprint || !this.index) {
      this.fingerprint = fp;
      this.index = new HostIndex(hosts);
      this.candidates.clear();
    }
    return { index: this.index, candidates: this.candidates };
  }
}

export interface Plan {
  now: Millis;
  /** One per queued job, in queue order. */
  decisions: Decision[];
  /** When each held host is expected to be free of its current holders (overdue ones re-estimated). */
  releases: Record<string, Millis>;
  /** Each host's timeline as planned: holders, reservations, and the allocations and bookings made. */
  spans: Record<string, readonly Span[]>;
  /** Jobs placed (allocated, booked, or found starved) before planning stopped. */
  examined: number;
  /** Some jobs were left unplanned (`wait`) because nothing more could start now. */
  stoppedEarly: boolean;
}

interface ShareState {
  type: string;
  harness: string;
  state: 'prep' | 'ready';
  slots: number;
  wear: number;
  wearLimit: number;
  sharers: number;
}

/** Queue order: priority, sub-priority, wait start, then longer jobs first (they are harder to fit), then key. */
export function queueOrder(queue: readonly QueuedJob[]): QueuedJob[] {
  return [...queue].sort(
    (a, b) =>
      a.priority - b.priority ||
      (a.subPriority ?? 0) - (b.subPriority ?? 0) ||
      a.waitStart - b.waitStart ||
      b.durationMs - a.durationMs ||
      (a.key < b.key ? -1 : a.key > b.key ? 1 : 0),
  );
}

function intProp(host: SchedHost, prop: string, dflt: number): number {
  const v = host.props?.[prop];
  if (v === undefined || v.trim() === '') return dflt;
  if (!/^\s*\d+\s*$/.test(v) || Number.parseInt(v, 10) < 1)
    throw new SchedulerInputError(
      `host ${host.name}: property ${prop} ${JSON.stringify(v)} is not a positive integer`,
    );
  return Number.parseInt(v, 10);
}

function validate(snap: Snapshot): void {
  if (!Number.isFinite(snap.now)) throw new SchedulerInputError(`snapshot: bad now ${snap.now}`);
  const keys = new Set<string>();
  for (const j of snap.queue) {
    if (keys.has(j.key)) throw new SchedulerInputError(`queue: job ${j.key} is queued twice`);
    keys.add(j.key);
    if (!Number.isFinite(j.durationMs) || j.durationMs <= 0)
      throw new SchedulerInputError(`queue: job ${j.key}: bad duration estimate ${j.durationMs}`);
    for (const [h, ms] of Object.entries(j.durationByHost ?? {}))
      if (!Number.isFinite(ms) || ms <= 0)
        throw new SchedulerInputError(`queue: job ${j.key}: bad duration estimate ${ms} on host ${h}`);
    if (!Number.isFinite(j.waitStart) || !Number.isFinite(j.priority))
      throw new SchedulerInputError(`queue: job ${j.key}: bad wait start or priority`);
  }
  const names = new Set<string>();
  for (const h of snap.hosts) {
    if (names.has(h.name)) throw new SchedulerInputError(`snapshot: host ${h.name} listed twice`);
    names.add(h.name);
  }
}

interface Choice {
  start: Millis;
  end: Millis;
  hosts: string[];
  cost: CostVector;
  share?: ShareAction;
  dissolve: string[];
}

function better(a: Choice, b: Choice | undefined): boolean {
  if (b === undefined) return true;
  if (a.start !== b.start) return a.start < b.start;
  const c = compareCost(a.cost, b.cost);
  if (c !== 0) return c < 0;
  return a.hosts.join('\n') < b.hosts.join('\n');
}

const fmtMin = (ms: number) => `${Math.round(ms / 60_000)} min`;

export function plan(snap: Snapshot, opts: PlanOptions = {}): Plan {
  validate(snap);
  const now = snap.now;
  const { index, candidates: cache } = (opts.cache ?? new PlanCache()).forHosts(snap.hosts);
  const tl = new Map<string, Timeline>(index.names.map((n) => [n, new Timeline()]));
  const shares = new Map<string, ShareState>();
  for (const h of snap.hosts) if (h.share) shares.set(h.name, { ...h.share, sharers: 0 });

  const releases: Record<string, Millis> = {};
  for (const a of snap.allocations) {
    const t = tl.get(a.host);
    if (!t) continue; // a holder of a host no longer in the lab holds nothing the planner can give
    const end = expectedRelease(a, now, opts);
    const sh = shares.get(a.host);
    if (sh) sh.sharers += 1;
    t.add({ start: now, end, kind: sh ? 'share' : 'hold', owner: a.holder });
    releases[a.host] = Math.max(releases[a.host] ?? 0, end);
  }
  for (const r of snap.reservations) {
    const t = tl.get(r.host);
    if (t && r.end > now)
      t.add({ start: Math.max(r.start, now), end: r.end, kind: 'booking', owner: r.label });
  }

  const order = queueOrder(snap.queue);
  const candidatesOf = (j: QueuedJob): JobCandidates => {
    const sig = requirementSignature(j.req);
    let jc = cache.get(sig);
    if (!jc) {
      jc = jobCandidates(j.req, index);
      cache.set(sig, jc);
    }
    return jc;
  };

  // The load the queue puts on each host: a job's duration spread over each ident's candidates.
  // And how many jobs not yet planned could use each host (a free host nobody left can use
  // must not keep planning going).
  const load = new Map<string, number>();
  const wanted = new Map<string, number>();
  const hostSets = new Map<JobCandidates, Set<string>>();
  const hostsOf = (jc: JobCandidates): Set<string> => {
    let s = hostSets.get(jc);
    if (!s) {
      s = new Set(jc.idents.flatMap((c) => c.usable));
      hostSets.set(jc, s);
    }
    return s;
  };
  // Jobs with the same candidates are summed first: the queue may be long, its kinds of job few.
  const perKind = new Map<JobCandidates, { jobs: number; hours: number }>();
  for (const j of order) {
    const jc = candidatesOf(j);
    if (jc.impossible || jc.outOfService) continue;
    const k = perKind.get(jc) ?? { jobs: 0, hours: 0 };
    k.jobs += 1;
    k.hours += j.durationMs / 3600_000;
    perKind.set(jc, k);
  }
  for (const [jc, k] of perKind) {
    for (const h of hostsOf(jc)) wanted.set(h, (wanted.get(h) ?? 0) + k.jobs);
    for (const c of jc.idents)
      for (const h of c.usable) load.set(h, (load.get(h) ?? 0) + k.hours / c.usable.length);
  }

  // Shortest job from each queue position on, to know when nothing more can start now.
  const shortest = new Array<number>(order.length + 1).fill(Number.POSITIVE_INFINITY);
  for (let i = order.length - 1; i >= 0; i--) {
    const j = order[i]!;
    const byHost = Object.values(j.durationByHost ?? {});
    shortest[i] = Math.min(shortest[i + 1]!, j.durationMs, ...byHost);
  }

  const joinable = (h: string, type?: string, harness?: string | null): boolean => {
    const s = shares.get(h);
    if (s?.state !== 'ready' || s.sharers >= s.slots || s.wear >= s.wearLimit) return false;
    return type === undefined || (s.type === type && s.harness === harness);
  };
  // How long each in-service host stays free from now (0 when busy now).
  const freeFor = new Map<string, number>();
  const refreshFree = (h: string) => {
    const host = index.byName.get(h)!;
    if (!inService(host)) {
      freeFor.delete(h);
      return;
    }
    const until = tl.get(h)!.freeUntil(now, joinable(h));
    if (until > now) freeFor.set(h, until - now);
    else freeFor.delete(h);
  };
  for (const h of index.names) refreshFree(h);
  const canStillStart = (from: number): boolean => {
    const need = shortest[from]!;
    for (const [h, f] of freeFor) if (f >= need && (wanted.get(h) ?? 0) > 0) return true;
    return false;
  };

  const placeOne = (j: QueuedJob, jc: JobCandidates): Choice | undefined => {
    const r = j.req.idents[0]!;
    const c = jc.idents[0]!;
    const shareType = r.share !== undefined && j.req.harness !== null ? r.share : undefined;
    let best: Choice | undefined;
    for (const h of c.usable) {
      const host = index.byName.get(h)!;
      const d = j.durationByHost?.[h] ?? j.durationMs;
      const t = tl.get(h)!;
      const hload = load.get(h) ?? 0;
      if (
        shareType !== undefined &&
        joinable(h, shareType, j.req.harness) &&
        t.freeOver(now, now + d, true)
      ) {
        const ch: Choice = {
          start: now,
          end: now + d,
          hosts: [h],
          cost: hostCost(now, j.prefs, host, {
            join: true,
            shareEligible: true,
            dissolves: false,
            load: hload,
          }),
          share: { action: 'join', host: h, type: shareType, harness: j.req.harness! },
          dissolve: [],
        };
        if (better(ch, best)) best = ch;
      }
      const start = t.earliestFit(now, d);
      const dissolves = shares.has(h);
      const ch: Choice = {
        start,
        end: start + d,
        hosts: [h],
        cost: hostCost(now, j.prefs, host, {
          join: false,
          shareEligible: shareType !== undefined,
          dissolves,
          load: hload,
        }),
        dissolve: dissolves ? [h] : [],
      };
      if (shareType !== undefined)
        ch.share = {
          action: 'start',
          host: h,
          type: shareType,
          harness: j.req.harness!,
          slots: intProp(host, 'SharedMaxTasks', opts.shareSlots ?? 3),
          wearLimit: intProp(host, 'SharedMaxWear', opts.shareWearLimit ?? 10),
        };
      if (better(ch, best)) best = ch;
    }
    return best;
  };

  const placeMany = (j: QueuedJob, jc: JobCandidates): Choice | undefined => {
    const d = j.durationMs;
    const costOf = new Map<string, CostVector>();
    const hostCostOf = (h: string): CostVector => {
      let v = costOf.get(h);
      if (!v) {
        v = hostCost(now, j.prefs, index.byName.get(h)!, {
          join: false,
          shareEligible: false,
          dissolves: shares.has(h),
          load: load.get(h) ?? 0,
        });
        costOf.set(h, v);
      }
      return v;
    };
    // Each candidate host's windows of possible start times; the job can start only when a window
    // opens, so those are the times to try, in order.
    const windows = new Map<string, Array<[Millis, Millis]>>();
    for (const c of jc.idents)
      for (const h of c.usable) if (!windows.has(h)) windows.set(h, tl.get(h)!.startWindows(now, d));
    const times = [...new Set([...windows.values()].flatMap((w) => w.map((x) => x[0])))].sort(
      (a, b) => a - b,
    );
    const ordered = jc.idents.map((c) =>
      [...c.usable].sort((a, b) => compareCost(hostCostOf(a), hostCostOf(b)) || (a < b ? -1 : 1)),
    );
    const cursor = new Map<string, number>();
    for (const t of times) {
      const open = new Set<string>();
      for (const [h, w] of windows) {
        let k = cursor.get(h) ?? 0;
        while (w[k]![1] < t) k += 1;
        cursor.set(h, k);
        if (w[k]![0] <= t) open.add(h);
      }
      if (!jc.idents.every((c) => c.usable.some((h) => open.has(h)))) continue;
      const usable: UsableFn = (_i, h) => open.has(h);
      if (!findAssignment(jc, index, 'usable', usable)) continue;
      let best: Choice | undefined;
      for (const a of assignments(jc, index, usable, (i) => ordered[i]!, opts.enumerateLimit ?? 2000)) {
        const cost = a.map(hostCostOf).reduce(addCost);
        const ch: Choice = { start: t, end: t + d, hosts: a, cost, dissolve: a.filter((h) => shares.has(h)) };
        if (better(ch, best)) best = ch;
      }
      return best;
    }
    return undefined;
  };

  const apply = (j: QueuedJob, ch: Choice, allocateNow: boolean) => {
    ch.hosts.forEach((h) => {
      const t = tl.get(h)!;
      if (!allocateNow) {
        t.add({ start: ch.start, end: ch.end, kind: 'booking', owner: j.key });
        return;
      }
      const sh = ch.share;
      if (sh?.action === 'join') {
        const s = shares.get(h)!;
        s.sharers += 1;
        s.wear += 1;
      } else if (sh?.action === 'start') {
        shares.set(h, {
          type: sh.type,
          harness: sh.harness,
          state: 'prep',
          slots: sh.slots,
          wear: 1,
          wearLimit: sh.wearLimit,
          sharers: 1,
        });
      } else shares.delete(h);
      t.add({ start: ch.start, end: ch.end, kind: sh ? 'share' : 'hold', owner: j.key });
    });
    for (const h of ch.hosts) refreshFree(h);
  };

  const decisions: Decision[] = [];
  let examined = 0;
  let leftOut = 0;
  let stopped = !opts.full && !canStillStart(0);
  order.forEach((j, i) => {
    const jc = candidatesOf(j);
    const warnings = [...jc.warnings];
    const waited = now - j.waitStart;
    const starving = j.starveAfterMs !== undefined && waited > j.starveAfterMs;
    const starved = (why: string): Decision => ({
      kind: 'starved',
      key: j.key,
      warnings,
      waitedMs: waited,
      reason: `waited ${fmtMin(waited)}, longer than its limit of ${fmtMin(j.starveAfterMs ?? 0)}; ${why}`,
    });
    if (jc.impossible) {
      decisions.push({ kind: 'impossible', key: j.key, warnings, reason: jc.impossible });
      return;
    }
    if (stopped && !jc.outOfService) leftOut += 1;
    if (stopped || jc.outOfService) {
      const why = jc.outOfService ?? 'not planned: no host it could use is free now';
      decisions.push(starving ? starved(why) : { kind: 'wait', key: j.key, warnings, reason: why });
      return;
    }
    examined += 1;
    for (const h of hostsOf(jc)) wanted.set(h, (wanted.get(h) ?? 0) - 1);
    const ch = j.req.idents.length === 1 ? placeOne(j, jc) : placeMany(j, jc);
    if (!ch) {
      // Cannot happen while timelines are finite; kept so a bug shows as a reason, not a crash.
      decisions.push({ kind: 'wait', key: j.key, warnings, reason: 'no start time found' });
      return;
    }
    const allocateNow = ch.start === now;
    if (!allocateNow && starving) {
      decisions.push(starved(`its earliest start is in ${fmtMin(ch.start - now)}`));
    } else {
      const hosts: Record<string, string> = {};
      j.req.idents.forEach((r, k) => {
        hosts[r.ident] = ch.hosts[k]!;
      });
      const p: Placement = { hosts, start: ch.start, end: ch.end };
      if (ch.share && (allocateNow || ch.share.action === 'start')) p.share = ch.share;
      if (ch.dissolve.length > 0 && !(ch.share?.action === 'join')) p.dissolve = ch.dissolve;
      decisions.push({ kind: allocateNow ? 'allocate' : 'book', key: j.key, warnings, ...p });
      apply(j, ch, allocateNow);
    }
    if (!opts.full && !canStillStart(i + 1)) stopped = true;
  });

  const spans: Record<string, readonly Span[]> = {};
  for (const [h, t] of tl) spans[h] = t.list();
  return { now, decisions, releases, spans, examined, stoppedEarly: leftOut > 0 };
}

/** The decision for one job (the store's worker asks for its own). */
export function decisionFor(p: Plan, key: string): Decision | undefined {
  return p.decisions.find((d) => d.key === key);
}
