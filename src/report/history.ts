/**
 * The branch's history, indexed once per judgement so that each failure is answered from memory
 * (the original queried the database per failure per candidate flight).
 */
import { type StepStatus, worseStepStatus } from '../model/status.js';
import { reportTestid } from '../model/testid.js';
import type { FlightRecord, JobRecord, Revisions, StepRecord } from './types.js';

/** The key history is compared on: (job, testid without a trailing `(N)`). Also `everPassed`'s keys. */
export function stepKey(job: string, testid: string): string {
  return `${job}\u0000${reportTestid(testid)}`;
}

/** How the loader tells a build job: recipe `build…` or a name `build-…`. */
export function isBuildJob(job: string, recipe: string): boolean {
  return recipe === 'build' || recipe.startsWith('build-') || job.startsWith('build-');
}

export function jobRevisions(flight: FlightRecord, job: JobRecord): Revisions {
  return job.revisions ?? flight.revisions;
}

/** A canonical text for a revision tuple; undefined for an empty one (nothing known was built). */
export function revisionsKey(revs: Revisions): string | undefined {
  const trees = Object.keys(revs).sort();
  if (trees.length === 0) return undefined;
  return trees.map((t) => `${t}=${revs[t]}`).join(' ');
}

/**
 * Whether a job whose artefacts were built from `built` tested `tuple`: every tree it built that the
 * tuple names is at the tuple's revision, and there is at least one such tree. Trees the tuple names
 * and the job did not build do not matter to it (a xen build does not care which linux was pushed).
 */
export function testedTuple(built: Revisions, tuple: Revisions): boolean {
  let common = 0;
  for (const [tree, rev] of Object.entries(built)) {
    const want = tuple[tree];
    if (want === undefined) continue;
    if (want !== rev) return false;
    common += 1;
  }
  return common > 0;
}

/**
 * The host a step ran on: its ident's host if the loader said; else an ident named in the testid
 * (`xen-install/src_host`); else the job's only host; else all of the job's hosts, sorted and joined
 * with `+` (a two-host step such as a migration). Undefined when the job had no host.
 */
export function hostOfStep(job: JobRecord, step: StepRecord): string | undefined {
  if (step.ident !== undefined) {
    const h = job.hosts[step.ident];
    if (h !== undefined) return h;
  }
  const info = hostsOf(job);
  const t = step.testid;
  for (const [slashIdent, host] of info.idents) {
    // The ident as a whole component after the first: `/src_host` then the end, `/` or `(N)`.
    let at = t.indexOf(slashIdent);
    while (at >= 0) {
      const next = t[at + slashIdent.length];
      if (next === undefined || next === '/' || next === '(') return host;
      at = t.indexOf(slashIdent, at + 1);
    }
  }
  return info.all;
}

interface JobHosts {
  idents: [string, string][];
  all: string | undefined;
}

// The flake record asks for the host of every run of a failing step: work each job's out once.
const jobHosts = new WeakMap<JobRecord, JobHosts>();

function hostsOf(job: JobRecord): JobHosts {
  let info = jobHosts.get(job);
  if (info === undefined) {
    const all = [...new Set(Object.values(job.hosts))].sort();
    info = {
      idents: Object.entries(job.hosts).map(([ident, host]) => [`/${ident}`, host]),
      all: all.length === 0 ? undefined : all.join('+'),
    };
    jobHosts.set(job, info);
  }
  return info;
}

export interface StepView {
  status: StepStatus;
  /** The first step recorded under this key, to find its host when the flake record asks. */
  step: StepRecord;
}

/** One job of one history flight, with the wanted steps keyed by report testid. */
export interface JobView {
  flight: FlightRecord;
  job: JobRecord;
  revisions: Revisions;
  revKey: string | undefined;
  steps: Map<string, StepView>;
}

/** `reportTestid`, without the regular expression for the testids that cannot end in `(N)`. */
function compareTestid(testid: string): string {
  return testid.endsWith(')') ? reportTestid(testid) : testid;
}

export class HistoryIndex {
  private readonly byJob = new Map<string, JobView[]>();

  /**
   * @param history newest first; `exclude` (the flight judged) is skipped.
   * @param wanted job → the testids (report form) to index: what there is to judge. Other jobs and
   *   steps are passed over, so the cost is one look at each step of the wanted jobs.
   */
  constructor(
    history: readonly FlightRecord[],
    exclude: string,
    wanted: ReadonlyMap<string, ReadonlySet<string>>,
  ) {
    for (const flight of history) {
      if (flight.flight === exclude) continue;
      for (const job of flight.jobs) {
        const keys = wanted.get(job.job);
        if (keys === undefined) continue;
        const revisions = jobRevisions(flight, job);
        const steps = new Map<string, StepView>();
        for (const s of job.steps) {
          const key = compareTestid(s.testid);
          if (!keys.has(key)) continue;
          const prev = steps.get(key);
          // Two steps that differ only in `(N)` compare as one; the worse result stands for both.
          if (prev === undefined) steps.set(key, { status: s.status, step: s });
          else prev.status = worseStepStatus(prev.status, s.status);
        }
        let views = this.byJob.get(job.job);
        if (views === undefined) {
          views = [];
          this.byJob.set(job.job, views);
        }
        views.push({ flight, job, revisions, revKey: revisionsKey(revisions), steps });
      }
    }
  }

  /** The job in every history flight that ran it, newest first. */
  views(job: string): readonly JobView[] {
    return this.byJob.get(job) ?? [];
  }
}
