/**
 * What the flight grid and the job pages show, worked out from a ReportData: plain strings and
 * numbers only, so the templates do nothing but place (and escape) them.
 */
import type { Step } from '../../db/types.js';
import type { JobDetail, ReportData } from '../report-data.js';
import { sections } from '../text.js';
import type { Failure } from '../types.js';
import { durationOf, formatDuration, formatSize, formatTime, statusClass } from './format.js';
import type { Links } from './links.js';
import { isCaptureLogs, testidOrder } from './order.js';

/** A verdict as text with the reference flight, when there is one, as a link in its place. */
export interface VerdictView {
  before: string;
  ref?: string;
  refHref?: string;
  after: string;
  blocking: boolean;
}

export interface CellView {
  status: string;
  cls: string;
  stepno: number;
  logHref?: string;
  verdict?: VerdictView;
  title: string;
}

export interface GridRow {
  testid: string;
  captureLogs: boolean;
  /** One per column; null where the job has no such step. */
  cells: (CellView | null)[];
}

export interface GridColumn {
  job: string;
  href: string;
  historyHref: string;
  status: string;
  cls: string;
  /** A job-level failure (`<none executed>`). */
  verdict?: VerdictView;
}

export interface FlightHeader {
  flight: string;
  branch: string;
  branchHref: string;
  blessing: string;
  intended: string;
  created: string;
  started: string;
  generated: string;
  liveHref: string;
  allFlightsHref: string;
}

export interface FlightGridView extends FlightHeader {
  heading: string;
  outcome: string;
  overallCls: string;
  baseline: { flight: string; href: string } | null;
  /** Why that flight is the baseline (or why there is none). */
  baselineWhy: string;
  versions: { tree: string; now: string; baseline: string; changed: boolean }[];
  columns: GridColumn[];
  rows: GridRow[];
  sections: { title: string; failures: FailureLine[] }[];
  warnings: string[];
  /** For each regression: each tree's range since the baseline, where it ran, and passes elsewhere. */
  whatChanged: WhatChangedView[];
}

export interface WhatChangedView {
  job: string;
  testid: string;
  trees: {
    tree: string;
    range: string;
    commits: number;
    truncated: boolean;
    people: string;
    error?: string;
  }[];
  hosts: string;
  harness: string;
  passedElsewhere: string[];
}

export interface FailureLine {
  job: string;
  jobHref: string;
  stepno: string;
  testid: string;
  verdict: VerdictView;
  allowed: string;
}

export function verdictView(f: Failure, links: Links): VerdictView {
  const ref = f.refFlight;
  // The reference flight appears in the verdict text after the status (`fail REGR. vs. 123`).
  const at = ref === undefined ? -1 : f.text.indexOf(ref, f.status.length);
  if (ref === undefined || at < 0) return { before: f.text, after: '', blocking: f.blocking };
  return {
    before: f.text.slice(0, at),
    ref,
    refHref: links.flight(ref),
    after: f.text.slice(at + ref.length),
    blocking: f.blocking,
  };
}

function failureKey(job: string, stepno: number | undefined): string {
  return `${job}\u0000${stepno ?? ''}`;
}

export function flightHeader(data: ReportData, links: Links): FlightHeader {
  const f = data.flight;
  return {
    flight: f.flight,
    branch: f.branch,
    branchHref: links.branch(f.branch),
    blessing: f.blessing,
    intended: f.intended,
    created: formatTime(f.created),
    started: formatTime(f.started),
    generated: formatTime(data.generated),
    liveHref: links.live(f.flight),
    allFlightsHref: links.allFlights(),
  };
}

function overallClass(data: ReportData): string {
  switch (data.judgement.overall) {
    case 'perfect':
      return 's-pass';
    case 'tolerable':
      return 's-other';
    default:
      return 's-fail';
  }
}

function stepLogHref(step: Step, links: Links): string | undefined {
  return step.logPath ? links.log(step.logPath) : undefined;
}

export function flightGridView(data: ReportData, links: Links): FlightGridView {
  const failures = new Map<string, Failure>();
  for (const f of data.judgement.failures) failures.set(failureKey(f.job, f.stepno), f);

  const jobs = data.jobs;
  const order = testidOrder(
    jobs.map((j) => j.steps.map((s) => ({ testid: s.testid, stepno: s.stepno, testcase: s.testcase }))),
  );
  const capture = new Set(
    jobs.flatMap((j) => j.steps.filter((s) => isCaptureLogs(s.testid, s.testcase)).map((s) => s.testid)),
  );
  const byJob = jobs.map((j) => new Map(j.steps.map((s) => [s.testid, s])));

  const rows: GridRow[] = order.map((testid) => ({
    testid,
    captureLogs: capture.has(testid),
    cells: jobs.map((j, i) => {
      const s = byJob[i]!.get(testid);
      if (s === undefined) return null;
      const cell: CellView = {
        status: s.status,
        cls: statusClass(s.status),
        stepno: s.stepno,
        title: `${j.job} step ${s.stepno} ${s.testcase}: ${s.status}`,
      };
      const href = stepLogHref(s, links);
      if (href !== undefined) cell.logHref = href;
      const f = failures.get(failureKey(j.job, s.stepno));
      if (f !== undefined) cell.verdict = verdictView(f, links);
      return cell;
    }),
  }));

  const columns: GridColumn[] = jobs.map((j) => {
    const c: GridColumn = {
      job: j.job,
      href: links.job(data.flight.flight, j.job),
      historyHref: links.jobHistory(j.job, data.flight.branch),
      status: j.status,
      cls: statusClass(j.status),
    };
    const f = failures.get(failureKey(j.job, undefined));
    if (f !== undefined) c.verdict = verdictView(f, links);
    return c;
  });

  const baselineFlight = data.baseline?.flight ?? data.judgement.baseline?.flight;
  return {
    ...flightHeader(data, links),
    heading: data.judgement.heading,
    outcome: data.judgement.outcome,
    overallCls: overallClass(data),
    baseline:
      baselineFlight === undefined ? null : { flight: baselineFlight, href: links.flight(baselineFlight) },
    baselineWhy: data.baselineWhy ?? '',
    versions: data.versions.map((v) => ({
      tree: v.tree,
      now: v.now,
      baseline: v.baseline ?? '',
      changed: v.baseline !== null && v.baseline !== v.now,
    })),
    columns,
    rows,
    sections: sections(data.judgement).map((s) => ({
      title: s.title.replace(/\n/g, ' '),
      failures: s.failures.map((f) => ({
        job: f.job,
        jobHref: links.job(data.flight.flight, f.job),
        stepno: f.stepno === undefined ? '' : String(f.stepno),
        testid: f.testid,
        verdict: verdictView(f, links),
        allowed: f.allowed === undefined ? '' : `${f.allowed.file}:${f.allowed.line}`,
      })),
    })),
    warnings: data.judgement.warnings,
    whatChanged: data.whatChanged.map((w) => ({
      job: w.job,
      testid: w.testid,
      trees: w.trees.map((t) => ({
        tree: t.tree,
        range: `${t.from ? t.from.slice(0, 12) : '(new)'}..${t.to.slice(0, 12)}`,
        commits: t.log.length,
        truncated: t.truncated,
        people: t.people.join(', '),
        ...(t.error !== undefined ? { error: t.error } : {}),
      })),
      hosts: w.hosts.join(', ') || '-',
      harness: `${w.harness.now.join(' ') || '-'} (baseline ${w.harness.baseline.join(' ') || '-'})`,
      passedElsewhere: w.passedElsewhere.map(
        (p) => `${p.job} in flight ${p.flight} (${p.branch})${p.host ? ` on ${p.host}` : ''}`,
      ),
    })),
  };
}

/** A file in the job's log or stash directory, by its path relative to that directory's root. */
export interface FileEntry {
  /** Relative to the Logs (or Stash) directory: `<flight>/<job>/<name>`. */
  path: string;
  name: string;
  size: number;
}

/** What else the job left behind besides its step logs; listed by the caller, who knows the paths. */
export interface JobFiles {
  logs: FileEntry[];
  stash: FileEntry[];
}

export interface JobPageView extends FlightHeader {
  job: string;
  recipe: string;
  status: string;
  cls: string;
  flightHref: string;
  historyHref: string;
  jobVerdict?: VerdictView;
  steps: {
    stepno: number;
    testid: string;
    testcase: string;
    status: string;
    cls: string;
    logHref?: string;
    started: string;
    duration: string;
    verdict?: VerdictView;
  }[];
  hosts: { ident: string; host: string; href: string }[];
  definition: RunvarView[];
  execution: RunvarView[];
  files: { name: string; href: string; size: string }[];
  serial: { name: string; href: string; size: string }[];
}

export interface RunvarView {
  name: string;
  val: string;
  hostHref?: string;
}

/** Runvars naming a host: `host`, `src_host`, `dst_host`, `buildhost`… */
export function isHostRunvar(name: string): boolean {
  return name === 'host' || name.endsWith('_host') || name === 'buildhost';
}

/** Serial consoles are what people look for first when a host died: they get their own list. */
export function isSerialLog(name: string): boolean {
  return /(^|[-_.])serial([-_.]|$)/.test(name) || name.startsWith('serial');
}

export function jobPageView(
  data: ReportData,
  job: JobDetail,
  links: Links,
  files: JobFiles = { logs: [], stash: [] },
): JobPageView {
  const failures = new Map<string, Failure>();
  for (const f of data.judgement.failures) {
    if (f.job === job.job) failures.set(failureKey(f.job, f.stepno), f);
  }
  const steps = [...job.steps].sort((a, b) => a.stepno - b.stepno);
  const runvars = [...job.runvars].sort((a, b) => a.name.localeCompare(b.name));
  const runvarView = (r: { name: string; val: string }): RunvarView => {
    const v: RunvarView = { name: r.name, val: r.val };
    // A host name that is not a plain host name (hand-edited runvar) gets no link rather than a bad one.
    if (isHostRunvar(r.name) && /^[A-Za-z0-9.-]+$/.test(r.val)) v.hostHref = links.hostHistory(r.val);
    return v;
  };
  const hosts = runvars
    .filter((r) => isHostRunvar(r.name) && /^[A-Za-z0-9.-]+$/.test(r.val))
    .map((r) => ({ ident: r.name, host: r.val, href: links.hostHistory(r.val) }));

  const stepLogs = new Set(steps.map((s) => s.logPath).filter((p): p is string => !!p));
  const listed: { name: string; href: string; size: string; serial: boolean }[] = [];
  for (const f of files.logs) {
    if (stepLogs.has(f.path)) continue;
    listed.push({
      name: f.name,
      href: links.log(f.path),
      size: formatSize(f.size),
      serial: isSerialLog(f.name),
    });
  }
  for (const f of files.stash) {
    listed.push({
      name: f.name,
      href: links.stash(f.path),
      size: formatSize(f.size),
      serial: isSerialLog(f.name),
    });
  }
  listed.sort((a, b) => a.name.localeCompare(b.name));

  const view: JobPageView = {
    ...flightHeader(data, links),
    job: job.job,
    recipe: job.recipe,
    status: job.status,
    cls: statusClass(job.status),
    flightHref: links.flight(data.flight.flight),
    historyHref: links.jobHistory(job.job, data.flight.branch),
    steps: steps.map((s) => {
      const row: JobPageView['steps'][number] = {
        stepno: s.stepno,
        testid: s.testid,
        testcase: s.testcase,
        status: s.status,
        cls: statusClass(s.status),
        started: formatTime(s.started),
        duration: formatDuration(durationOf(s.started, s.finished)),
      };
      const href = stepLogHref(s, links);
      if (href !== undefined) row.logHref = href;
      const f = failures.get(failureKey(job.job, s.stepno));
      if (f !== undefined) row.verdict = verdictView(f, links);
      return row;
    }),
    hosts,
    definition: runvars.filter((r) => !r.synth).map(runvarView),
    execution: runvars.filter((r) => r.synth).map(runvarView),
    files: listed.filter((f) => !f.serial).map(({ serial: _s, ...f }) => f),
    serial: listed.filter((f) => f.serial).map(({ serial: _s, ...f }) => f),
  };
  const jf = failures.get(failureKey(job.job, undefined));
  if (jf !== undefined) view.jobVerdict = verdictView(jf, links);
  return view;
}
