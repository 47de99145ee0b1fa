/**
 * What the job history, host history, branch and flight list pages show, with the geometry of their
 * pictures (inline SVG: a job's duration trend, a pass-rate strip per testid) worked out here as
 * numbers, so the templates only place them.
 */
import { durationOf, formatDuration, formatTime, statusClass } from './format.js';
import type { BranchHistory, FlightList, HostHistory, JobHistory, JobHistoryRow } from './history-data.js';
import type { Links } from './links.js';
import { testidOrder } from './order.js';

export type { BranchHistory, FlightList, HostHistory, JobHistory } from './history-data.js';

/** Revisions are shown this long; the whole hash is in the cell's title. */
const SHORT_REV = 12;

function shortRev(rev: string): string {
  return /^[0-9a-f]{13,}$/.test(rev) ? rev.slice(0, SHORT_REV) : rev;
}

/** Two decimals at most: keeps the SVG small and its numbers readable. */
function n(x: number): string {
  return String(Math.round(x * 100) / 100);
}

export interface TrendView {
  width: number;
  height: number;
  plot: { x0: string; x1: string; y0: string; y1: string };
  labels: { yx: string; yTop: string; xy: string };
  line: string;
  points: { cx: string; cy: string; cls: string; title: string; href: string }[];
  yMax: string;
  xFirst: string;
  xLast: string;
}

/** Durations of the job's runs, oldest on the left; null when fewer than one run has a duration. */
export function durationTrend(rows: readonly JobHistoryRow[], links: Links): TrendView | null {
  const runs = [...rows].reverse().filter((r) => r.duration !== null);
  if (runs.length === 0) return null;
  const width = 720;
  const height = 150;
  const left = 60;
  const right = 10;
  const top = 10;
  const bottom = 24;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const max = Math.max(...runs.map((r) => r.duration!), 1000);
  const x = (i: number): number =>
    runs.length === 1 ? left + plotW / 2 : left + (i * plotW) / (runs.length - 1);
  const y = (d: number): number => top + plotH * (1 - d / max);
  const points = runs.map((r, i) => ({
    cx: n(x(i)),
    cy: n(y(r.duration!)),
    cls: statusClass(r.status),
    title: `flight ${r.flight}: ${r.status}, ${formatDuration(r.duration)}`,
    href: links.flight(r.flight),
  }));
  return {
    width,
    height,
    plot: { x0: n(left), x1: n(width - right), y0: n(top), y1: n(top + plotH) },
    labels: { yx: n(left - 4), yTop: n(top + 8), xy: n(height - 6) },
    line: points.map((p) => `${p.cx},${p.cy}`).join(' '),
    points,
    yMax: formatDuration(max),
    xFirst: runs[0]!.flight,
    xLast: runs[runs.length - 1]!.flight,
  };
}

export interface StripView {
  testid: string;
  width: number;
  height: number;
  cells: { x: string; w: string; cls: string; title: string }[];
  passes: number;
  runs: number;
  rate: string;
  /** `flaked F/R`: of the R runs that passed or failed, F failed at revisions where it also passed; '' when F is 0. */
  flake: string;
}

/** A row's revisions as one key, tree by tree; undefined when none are known (never a flake then). */
function revisionKey(r: JobHistoryRow): string | undefined {
  const trees = Object.keys(r.revisions).sort();
  if (trees.length === 0) return undefined;
  return trees.map((t) => `${t}=${r.revisions[t]}`).join(' ');
}

/**
 * One strip per testid: a cell per flight (oldest on the left) coloured by the step's status, grey
 * where the step did not run; the pass rate over the runs where it ended; and the flake rate.
 */
export function passRateStrips(rows: readonly JobHistoryRow[]): StripView[] {
  const flights = [...rows].reverse();
  const order = testidOrder(flights.map((r) => r.steps));
  const cellW = 8;
  const height = 14;
  return order.map((testid) => {
    let passes = 0;
    let runs = 0;
    // The flake rate as the verdict lines count it (flake.ts), over this page's runs of the job on
    // any host: a fail at revisions at which the step also passed here.
    const passedAt = new Set<string>();
    for (const r of flights) {
      const key = revisionKey(r);
      if (key !== undefined && r.steps.some((st) => st.testid === testid && st.status === 'pass'))
        passedAt.add(key);
    }
    let flakes = 0;
    let flakeRuns = 0;
    const cells = flights.map((r, i) => {
      const s = r.steps.find((st) => st.testid === testid);
      if (s !== undefined && s.status !== 'running') {
        runs++;
        if (s.status === 'pass') passes++;
      }
      if (s?.status === 'pass' || s?.status === 'fail') {
        flakeRuns++;
        const key = revisionKey(r);
        if (s.status === 'fail' && key !== undefined && passedAt.has(key)) flakes++;
      }
      return {
        x: n(i * cellW),
        w: n(cellW - 1),
        cls: statusClass(s?.status),
        title: `flight ${r.flight}: ${s === undefined ? 'not run' : s.status}`,
      };
    });
    return {
      testid,
      width: Math.max(cellW, flights.length * cellW),
      height,
      cells,
      passes,
      runs,
      rate: runs === 0 ? '' : `${Math.round((100 * passes) / runs)}%`,
      flake: flakes === 0 ? '' : `flaked ${flakes}/${flakeRuns}`,
    };
  });
}

export interface JobHistoryView {
  job: string;
  branch: string;
  allFlightsHref: string;
  count: number;
  scanned: number;
  limit: number;
  trees: string[];
  trend: TrendView | null;
  strips: StripView[];
  rows: {
    flight: string;
    flightHref: string;
    jobHref: string;
    branch: string;
    started: string;
    status: string;
    cls: string;
    firstFailure: string;
    duration: string;
    hosts: { host: string; href: string; ident: string }[];
    revs: { short: string; full: string; changed: boolean }[];
  }[];
}

export function jobHistoryView(h: JobHistory, links: Links): JobHistoryView {
  const trees = [...new Set(h.rows.flatMap((r) => Object.keys(r.revisions)))].sort();
  return {
    job: h.job,
    branch: h.branch ?? '',
    allFlightsHref: links.allFlights(),
    count: h.rows.length,
    scanned: h.scanned,
    limit: h.limit,
    trees,
    trend: durationTrend(h.rows, links),
    strips: passRateStrips(h.rows),
    rows: h.rows.map((r, i) => {
      const older = h.rows[i + 1];
      return {
        flight: r.flight,
        flightHref: links.flight(r.flight),
        jobHref: links.job(r.flight, h.job),
        branch: r.branch,
        started: formatTime(r.started),
        status: r.status,
        cls: statusClass(r.status),
        firstFailure:
          r.firstFailure === null
            ? ''
            : `${r.firstFailure.stepno} ${r.firstFailure.testid} ${r.firstFailure.status}`,
        duration: formatDuration(r.duration),
        hosts: r.hosts.map((x) => ({ host: x.host, ident: x.ident, href: links.hostHistory(x.host) })),
        revs: trees.map((t) => {
          const rev = r.revisions[t] ?? '';
          const before = older?.revisions[t];
          return {
            short: shortRev(rev),
            full: rev,
            changed: older !== undefined && rev !== '' && before !== rev,
          };
        }),
      };
    }),
  };
}

export interface HostHistoryView {
  host: string;
  known: boolean;
  flags: string;
  allFlightsHref: string;
  limit: number;
  rows: {
    flight: string;
    flightHref: string;
    branch: string;
    job: string;
    jobHref: string;
    historyHref: string;
    role: string;
    allocated: string;
    held: string;
    status: string;
    cls: string;
  }[];
}

export function hostHistoryView(h: HostHistory, links: Links): HostHistoryView {
  return {
    host: h.host,
    known: h.known,
    flags: h.flags.join(' '),
    allFlightsHref: links.allFlights(),
    limit: h.limit,
    rows: h.rows.map((r) => ({
      flight: r.flight,
      flightHref: links.flight(r.flight),
      branch: r.branch ?? '(flight deleted)',
      job: r.job,
      jobHref: links.job(r.flight, r.job),
      historyHref: links.jobHistory(r.job),
      role: r.role,
      allocated: formatTime(r.allocated),
      held: r.released === null ? 'still allocated' : formatDuration(durationOf(r.allocated, r.released)),
      status: r.status ?? '',
      cls: statusClass(r.status),
    })),
  };
}

function outcomeClass(outcome: string): string {
  if (outcome === 'all pass') return 's-pass';
  if (outcome === 'FAIL' || outcome === 'ALL FAIL') return 's-fail';
  if (outcome.startsWith('trouble')) return 's-other';
  return 's-none';
}

function countsText(counts: Record<string, number>): string {
  return Object.entries(counts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([s, k]) => `${k} ${s}`)
    .join(', ');
}

export interface BranchView {
  branch: string;
  allFlightsHref: string;
  limit: number;
  rows: {
    flight: string;
    flightHref: string;
    liveHref: string;
    blessing: string;
    started: string;
    jobs: number;
    counts: string;
    outcome: string;
    cls: string;
    heading: string;
    verdictCls: string;
    pushed: string;
  }[];
}

export function branchView(b: BranchHistory, links: Links): BranchView {
  return {
    branch: b.branch,
    allFlightsHref: links.allFlights(),
    limit: b.limit,
    rows: b.rows.map((r) => ({
      flight: r.flight,
      flightHref: links.flight(r.flight),
      liveHref: links.live(r.flight),
      blessing: r.blessing,
      started: formatTime(r.started),
      jobs: r.jobs,
      counts: countsText(r.counts),
      outcome: r.outcome,
      cls: outcomeClass(r.outcome),
      heading: r.verdict?.heading ?? '',
      verdictCls: r.verdict === undefined ? '' : r.verdict.tolerable ? 's-pass' : 's-fail',
      pushed: r.verdict?.pushed === true ? 'pushed' : '',
    })),
  };
}

export interface FlightListView {
  branch: string;
  limit: number;
  rows: {
    flight: string;
    flightHref: string;
    liveHref: string;
    branch: string;
    branchHref: string;
    blessing: string;
    created: string;
    started: string;
    jobs: number;
    outcome: string;
    cls: string;
  }[];
}

export function flightListView(l: FlightList, links: Links): FlightListView {
  return {
    branch: l.branch ?? '',
    limit: l.limit,
    rows: l.flights.map((f) => ({
      flight: f.flight,
      flightHref: links.flight(f.flight),
      liveHref: links.live(f.flight),
      branch: f.branch,
      branchHref: links.branch(f.branch),
      blessing: f.blessing,
      created: formatTime(f.created),
      started: formatTime(f.started),
      jobs: f.jobs,
      outcome: f.outcome,
      cls: outcomeClass(f.outcome),
    })),
  };
}
