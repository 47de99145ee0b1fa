/**
 * The resource plan page (lab mode): what the planner would do now, host by host. The lab's state is
 * read as a worker reads it (`labSnapshot`) and planned with `full` set, so every queued job gets its
 * booking, not only those that can start now; nothing is written. Each host is a row of a timeline
 * (inline SVG) from now to the last planned end, with its current holders, reservations and the
 * bookings the plan made; below, every queued job with the planner's decision.
 */
import type { Config } from '../../config/config.js';
import type { Store } from '../../db/store.js';
import { harnessRevision } from '../../executor/paths.js';
import { labSnapshot } from '../../scheduler/allocator.js';
import { type Plan, plan } from '../../scheduler/planner.js';
import type { Span } from '../../scheduler/timeline.js';
import { inService } from '../../scheduler/types.js';
import { formatDuration, formatTime } from './format.js';
import type { Links } from './links.js';

export interface ResourcePlan {
  plan: Plan;
  hosts: { name: string; flags: string[]; health: string; inService: boolean }[];
}

/** Loads the lab's state and plans it in full, writing nothing. */
export async function loadResourcePlan(store: Store, config: Config, now?: number): Promise<ResourcePlan> {
  const snap = await labSnapshot({
    store,
    config,
    harness: harnessRevision(),
    ...(now === undefined ? {} : { now: () => now }),
  });
  const p = plan(snap.snapshot, { full: true });
  const hosts = snap.snapshot.hosts.map((h) => ({
    name: h.name,
    flags: [...h.flags].sort(),
    health: h.health,
    inService: inService(h),
  }));
  return { plan: p, hosts };
}

export interface PlanSpanView {
  kind: string;
  owner: string;
  /** The job page when the owner is `flight/job`. */
  href?: string;
  from: string;
  until: string;
  x: string;
  w: string;
  title: string;
}

export interface ResourcePlanView {
  now: string;
  allFlightsHref: string;
  width: number;
  rowH: number;
  labelW: number;
  height: number;
  horizon: string;
  hosts: {
    name: string;
    href: string;
    flags: string;
    health: string;
    inService: boolean;
    y: string;
    spans: PlanSpanView[];
  }[];
  decisions: { key: string; href?: string; kind: string; hosts: string; start: string; detail: string }[];
}

const n = (x: number) => String(Math.round(x * 10) / 10);

/** `flight/job` as the planner names a job; undefined for any other owner (a reservation's label). */
function jobOf(key: string): { flight: string; job: string } | undefined {
  const slash = key.indexOf('/');
  if (slash <= 0 || slash === key.length - 1) return undefined;
  return { flight: key.slice(0, slash), job: key.slice(slash + 1) };
}

export function resourcePlanView(r: ResourcePlan, links: Links): ResourcePlanView {
  const p = r.plan;
  const labelW = 160;
  const plotW = 640;
  const rowH = 18;
  let end = p.now + 3_600_000;
  for (const spans of Object.values(p.spans)) for (const s of spans) end = Math.max(end, s.end);
  const scale = plotW / (end - p.now);
  const rel = (t: number) => (t <= p.now ? 'now' : `+${formatDuration(t - p.now)}`);
  const jobHref = (key: string) => {
    const j = jobOf(key);
    return j === undefined ? undefined : links.job(j.flight, j.job);
  };
  const spanView = (s: Span): PlanSpanView => {
    const v: PlanSpanView = {
      kind: s.kind,
      owner: s.owner,
      from: rel(s.start),
      until: rel(s.end),
      x: n(labelW + (Math.max(s.start, p.now) - p.now) * scale),
      w: n(Math.max(1, (s.end - Math.max(s.start, p.now)) * scale)),
      title: `${s.kind} ${s.owner}: ${formatTime(s.start)} – ${formatTime(s.end)}`,
    };
    const href = jobHref(s.owner);
    if (href !== undefined) v.href = href;
    return v;
  };
  const hosts = r.hosts
    .map((h) => h.name)
    .sort()
    .map((name, i) => {
      const h = r.hosts.find((x) => x.name === name)!;
      return {
        name,
        href: links.hostHistory(name),
        flags: h.flags.join(' '),
        health: h.health,
        inService: h.inService,
        y: n(i * rowH),
        spans: [...(p.spans[name] ?? [])].sort((a, b) => a.start - b.start).map(spanView),
      };
    });
  const decisions = p.decisions.map((d) => {
    const base = { key: d.key, kind: d.kind };
    const href = jobHref(d.key);
    const withHref = href === undefined ? base : { ...base, href };
    if (d.kind === 'allocate' || d.kind === 'book') {
      return {
        ...withHref,
        hosts: Object.entries(d.hosts)
          .map(([ident, host]) => `${ident}=${host}`)
          .join(' '),
        start: rel(d.start),
        detail: `until ${rel(d.end)}${d.warnings.length ? `; ${d.warnings.join('; ')}` : ''}`,
      };
    }
    return { ...withHref, hosts: '', start: '', detail: d.reason };
  });
  return {
    now: formatTime(p.now),
    allFlightsHref: links.allFlights(),
    width: labelW + plotW,
    rowH,
    labelW,
    height: Math.max(1, hosts.length) * rowH,
    horizon: `+${formatDuration(end - p.now)}`,
    hosts,
    decisions,
  };
}
