/**
 * Regression judgement (OSSTEST-BEHAVIOUR §4): every failure of a flight classified against the
 * baseline, and the overall verdict the push gate acts on. A pure function of its input (types.ts).
 *
 * Each step that did not pass, in job order then step order:
 *  1. blocked ⇒ `blocked` (`blocked n/a`): not judged itself, the failure that blocked it is.
 *  2. build jobs only: the job (or this step) passed in a baseline flight ⇒ `regression` vs. the newest
 *     such flight. A build is one thing: whichever step broke, it used to build.
 *  3. never passed on the branch (`everPassed`, and the history) ⇒ `never pass`.
 *  4. baseline flights: history flights of a trusted blessing (or the named baseline flight) in which
 *     this job tested the baseline tuple (history.ts `testedTuple`), newest first. None ⇒ `baseline
 *     untested`. The newest one where the step ran (ended other than blocked) decides: passed ⇒
 *     `regression`, same status ⇒ `like`, another failure ⇒ `failed in`. The step never ran in any
 *     ⇒ `blocked in` the newest.
 *  5. what would block is looked at twice more: passed in another flight at this job's own revisions
 *     ⇒ `pass in` (the heisenbug rule); then the allow lines, which make it allowable.
 * A job that did not pass and has no step that did not pass is one failure, `<none executed>`.
 * Blocking verdicts: regression, failed in, blocked in, baseline untested, none executed (unless the
 * job was blocked). Only failures cleared by an allow line are "allowable" (the original labelled every
 * non-blocking failure so); the others carry their own reason.
 */
import { reportTestid } from '../model/testid.js';
import { AllowList, type KnownStep } from './allow.js';
import { DEFAULT_FLAKE_WINDOW, flakeRecord, flakeSuffix } from './flake.js';
import { HistoryIndex, hostOfStep, type JobView, jobRevisions, stepKey, testedTuple } from './history.js';
import type {
  Failure,
  FlightRecord,
  JobRecord,
  JudgeInput,
  Judgement,
  Overall,
  Revisions,
  StepRecord,
  Verdict,
  VersionRow,
} from './types.js';

export const NONE_EXECUTED = '<none executed>';

const BLOCKING: ReadonlySet<Verdict> = new Set([
  'regression',
  'failed in',
  'blocked in',
  'baseline untested',
  'none executed',
]);

export const HEADINGS: Readonly<Record<Overall, string>> = {
  perfect: 'Perfect :-)',
  tolerable: 'Failures :-/ but no regressions.',
  regressions: 'Regressions :-(',
  problems: 'Failures and problems with tests :-(',
};

/** Bad judge input; the message names the flight and job. */
export class JudgeInputError extends Error {
  override name = 'JudgeInputError';
}

/** The words after the status: `REGR. vs. 123`, `like 120`, `never pass`, `n/a`… */
export function verdictPhrase(verdict: Verdict, ref: string | undefined): string {
  switch (verdict) {
    case 'regression':
      return `REGR. vs. ${ref}`;
    case 'like':
      return `like ${ref}`;
    case 'failed in':
      return `failed in ${ref}`;
    case 'blocked in':
      return `blocked in ${ref}`;
    case 'pass in':
      return `pass in ${ref}`;
    case 'baseline untested':
      return 'baseline untested';
    case 'never pass':
      return 'never pass';
    case 'blocked':
      return 'n/a';
    case 'none executed':
      return '';
  }
}

/** The verdict line of a failure: `fail REGR. vs. 123 (flaked 3/40 on this host)`. */
export function verdictText(f: Pick<Failure, 'status' | 'verdict' | 'refFlight' | 'flake'>): string {
  const phrase = verdictPhrase(f.verdict, f.refFlight);
  return (phrase === '' ? f.status : `${f.status} ${phrase}`) + flakeSuffix(f.flake);
}

export function judgeFlight(input: JudgeInput): Judgement {
  const { flight, baseline } = input;
  validate(flight);
  const opts = input.options ?? {};
  const window = opts.flakeWindow ?? DEFAULT_FLAKE_WINDOW;
  if (!Number.isInteger(window) || window < 1) {
    throw new JudgeInputError(`options.flakeWindow must be a positive integer, not ${window}`);
  }
  const trusted = new Set(opts.baselineBlessings ?? [flight.intended ?? flight.blessing]);
  const isBaselineFlight = (f: FlightRecord): boolean =>
    baseline !== null && (f.flight === baseline.flight || trusted.has(f.blessing));

  const toJudge = flight.jobs.filter((j) => j.status !== 'pass' || j.steps.some((s) => s.status !== 'pass'));
  const wanted = new Map(
    toJudge.map((j) => [
      j.job,
      new Set(j.steps.filter((s) => s.status !== 'pass').map((s) => reportTestid(s.testid))),
    ]),
  );
  const index = new HistoryIndex(input.history, flight.flight, wanted);
  const allow = new AllowList(input.allow ?? []);

  const failures: Failure[] = [];
  for (const job of toJudge) {
    const failing = job.steps.filter((s) => s.status !== 'pass').sort((a, b) => a.stepno - b.stepno);
    if (failing.length === 0) {
      failures.push(judgeJobLevel(job, allow));
      continue;
    }
    const views = index.views(job.job);
    const ctx: StepContext = {
      flight,
      job,
      views,
      baselineViews:
        baseline === null
          ? []
          : views.filter((v) => isBaselineFlight(v.flight) && testedTuple(v.revisions, baseline.revisions)),
      sameRevisionViews: views.filter((v) => testedTuple(v.revisions, jobRevisions(flight, job))),
      everPassed: input.everPassed,
      allow,
    };
    for (const step of failing) {
      const f = judgeStep(ctx, step);
      if (f.verdict !== 'blocked') {
        const host = hostOfStep(job, step);
        if (host !== undefined) f.flake = flakeRecord(index, job.job, step.testid, host, window);
      }
      f.text = verdictText(f);
      failures.push(f);
    }
  }

  const overall = overallOf(failures);
  const baselineFlights =
    baseline === null
      ? []
      : input.history
          .filter(
            (f) =>
              f.flight !== flight.flight &&
              isBaselineFlight(f) &&
              testedTuple(f.revisions, baseline.revisions),
          )
          .map((f) => f.flight);
  return {
    flight: flight.flight,
    branch: flight.branch,
    baseline:
      baseline === null
        ? null
        : {
            ...(baseline.flight !== undefined ? { flight: baseline.flight } : {}),
            revisions: baseline.revisions,
            flights: baselineFlights,
          },
    versions: versionRows(flight.revisions, baseline?.revisions),
    failures,
    overall,
    heading: HEADINGS[overall],
    tolerable: overall === 'perfect' || overall === 'tolerable',
    outcome: outcomeLine(flight.jobs),
    warnings: (input.allow ?? []).length === 0 ? [] : allow.lint(knownSteps(flight, input.history)),
  };
}

interface StepContext {
  flight: FlightRecord;
  job: JobRecord;
  views: readonly JobView[];
  baselineViews: readonly JobView[];
  /** History flights in which this job tested its own revisions of this flight. */
  sameRevisionViews: readonly JobView[];
  everPassed: ReadonlySet<string> | undefined;
  allow: AllowList;
}

interface Decision {
  verdict: Verdict;
  ref?: string;
  reason: string;
}

function judgeStep(ctx: StepContext, step: StepRecord): Failure {
  const { job } = ctx;
  const base = { job: job.job, stepno: step.stepno, testid: step.testid, status: step.status, text: '' };
  if (step.status === 'blocked') {
    return { ...base, verdict: 'blocked', blocking: false, reason: 'not run: an earlier failure blocked it' };
  }
  const key = reportTestid(step.testid);
  const passedIn = (v: JobView): boolean =>
    v.steps.get(key)?.status === 'pass' || (job.isBuild && v.job.status === 'pass');

  const d = decide(ctx, step, key, passedIn);
  const f: Failure = { ...base, verdict: d.verdict, blocking: BLOCKING.has(d.verdict), reason: d.reason };
  if (d.ref !== undefined) f.refFlight = d.ref;
  if (!f.blocking) return f;

  const heisen = ctx.sameRevisionViews.find(passedIn);
  if (heisen !== undefined) {
    f.verdict = 'pass in';
    f.refFlight = heisen.flight.flight;
    f.reason = `failing intermittently: passed in flight ${heisen.flight.flight} at the same revisions`;
    f.blocking = false;
    return f;
  }
  return applyAllow(f, ctx.allow);
}

/** Rules 2 to 4 of the header. */
function decide(
  ctx: StepContext,
  step: StepRecord,
  key: string,
  passedIn: (v: JobView) => boolean,
): Decision {
  if (ctx.job.isBuild) {
    const p = ctx.baselineViews.find(passedIn);
    if (p !== undefined) {
      const ref = p.flight.flight;
      return { verdict: 'regression', ref, reason: `the build passed in baseline flight ${ref}` };
    }
  }
  const ever = ctx.everPassed?.has(stepKey(ctx.job.job, step.testid)) === true || ctx.views.some(passedIn);
  if (!ever) return { verdict: 'never pass', reason: `has never passed on ${ctx.flight.branch}` };
  const newest = ctx.baselineViews[0];
  if (newest === undefined) {
    return { verdict: 'baseline untested', reason: 'no flight of the baseline revisions ran this job' };
  }
  for (const v of ctx.baselineViews) {
    const was = v.steps.get(key)?.status;
    if (was === undefined || was === 'blocked') continue;
    const ref = v.flight.flight;
    if (was === 'pass') return { verdict: 'regression', ref, reason: `passed in baseline flight ${ref}` };
    if (was === step.status)
      return { verdict: 'like', ref, reason: `same result (${was}) in baseline flight ${ref}` };
    return {
      verdict: 'failed in',
      ref,
      reason: `${was} in baseline flight ${ref}, so it may be a regression`,
    };
  }
  const ref = newest.flight.flight;
  return {
    verdict: 'blocked in',
    ref,
    reason: `did not run in baseline flight ${ref}, so it may be a regression`,
  };
}

function judgeJobLevel(job: JobRecord, allow: AllowList): Failure {
  const base = { job: job.job, testid: NONE_EXECUTED, status: job.status };
  if (job.status === 'blocked') {
    const f: Failure = {
      ...base,
      verdict: 'blocked',
      blocking: false,
      reason: 'not run: an earlier failure blocked it',
      text: '',
    };
    f.text = verdictText(f);
    return f;
  }
  const f: Failure = {
    ...base,
    verdict: 'none executed',
    blocking: true,
    reason: `the job is ${job.status} and no step of it ran to a result`,
    text: '',
  };
  applyAllow(f, allow);
  f.text = verdictText(f);
  return f;
}

function applyAllow(f: Failure, allow: AllowList): Failure {
  const rule = allow.match(f.job, f.testid);
  if (rule === undefined) return f;
  const pattern =
    rule.testidPattern === undefined ? rule.jobPattern : `${rule.jobPattern} ${rule.testidPattern}`;
  f.allowed = { file: rule.file, line: rule.line, pattern };
  f.blocking = false;
  f.reason = `allowed by ${rule.file}:${rule.line} (${pattern}); otherwise: ${f.reason}`;
  return f;
}

function overallOf(failures: readonly Failure[]): Overall {
  if (failures.length === 0) return 'perfect';
  const blocking = failures.filter((f) => f.blocking);
  if (blocking.some((f) => f.verdict === 'regression')) return 'regressions';
  if (blocking.length > 0) return 'problems';
  return 'tolerable';
}

/**
 * `all pass` (every job passed), `trouble: <every job status, sorted, /-joined>` when some job ended
 * other than pass, fail or blocked (broken, aborted, starved, or still running), else `ALL FAIL` when
 * no job passed, else `FAIL`.
 */
export function outcomeLine(jobs: readonly Pick<JobRecord, 'status'>[]): string {
  const statuses = new Set(jobs.map((j) => j.status));
  if ([...statuses].every((s) => s === 'pass')) return 'all pass';
  if ([...statuses].some((s) => s !== 'pass' && s !== 'fail' && s !== 'blocked')) {
    return `trouble: ${[...statuses].sort().join('/')}`;
  }
  if (!statuses.has('pass')) return 'ALL FAIL';
  return 'FAIL';
}

function versionRows(tested: Revisions, base: Revisions | undefined): VersionRow[] {
  const trees = [...new Set([...Object.keys(tested), ...Object.keys(base ?? {})])].sort();
  return trees.map((tree) => {
    const row: VersionRow = { tree };
    const t = tested[tree];
    const b = base?.[tree];
    if (t !== undefined) row.this = t;
    if (b !== undefined) row.that = b;
    return row;
  });
}

function knownSteps(flight: FlightRecord, history: readonly FlightRecord[]): KnownStep[] {
  // job → testid → script: a flight's worth of entries, however long the history.
  const seen = new Map<string, Map<string, string | undefined>>();
  for (const f of [flight, ...history]) {
    for (const j of f.jobs) {
      let ofJob = seen.get(j.job);
      if (ofJob === undefined) {
        ofJob = new Map();
        seen.set(j.job, ofJob);
      }
      for (const s of j.steps) if (ofJob.get(s.testid) === undefined) ofJob.set(s.testid, s.script);
    }
  }
  const known: KnownStep[] = [];
  for (const [job, testids] of seen) {
    for (const [testid, script] of testids)
      known.push(script === undefined ? { job, testid } : { job, testid, script });
  }
  return known;
}

function validate(flight: FlightRecord): void {
  const jobs = new Set<string>();
  for (const j of flight.jobs) {
    if (jobs.has(j.job)) throw new JudgeInputError(`flight ${flight.flight}: job ${j.job} appears twice`);
    jobs.add(j.job);
    const stepnos = new Set<number>();
    for (const s of j.steps) {
      if (stepnos.has(s.stepno)) {
        throw new JudgeInputError(`flight ${flight.flight} job ${j.job}: step ${s.stepno} appears twice`);
      }
      stepnos.add(s.stepno);
    }
  }
}
