/**
 * The data the regression judgement reads and writes (OSSTEST-BEHAVIOUR §4, §8). Plain values only:
 * the judge is a pure function, the loader (which reads the store) and the writers (HTML, email,
 * `.mro`, JSON) live elsewhere.
 *
 * How the loader fills a `JudgeInput` with a few indexed queries, whatever the size of the history
 * (the original ran several queries per failure per candidate flight, and took up to an hour):
 *  1. the flight judged, its jobs, steps and host runvars: three queries keyed by flight;
 *  2. the candidate flights: the branch's newest `historyFlights` flights (index on branch, seq),
 *     plus the baseline flight itself when it is older than that window. Other flights older than
 *     the window are not read, so `pass in N` (same revisions) and `like N` look only at the window;
 *  3. jobs, steps and host runvars of all those flights at once (`WHERE flight IN (…)`);
 *  4. `everPassed`: for the failed steps that passed nowhere in the window, one store query each
 *     (`stepPassedOnBranch`) over the whole branch, so "never pass" does not depend on the window.
 * The judge then indexes what it was given once and answers every failure from memory.
 */
import type { JobStatus, StepStatus } from '../model/status.js';

/** Tree name → revision, e.g. `{ xen: 'abc123', linux: 'def456' }`. */
export type Revisions = Readonly<Record<string, string>>;

export interface StepRecord {
  stepno: number;
  /** As recorded; comparisons drop a trailing `(N)` (model/testid.ts `reportTestid`). */
  testid: string;
  status: StepStatus;
  /** The testcase's script (`ts-logs-capture`); used only to explain allow lines that match nothing. */
  script?: string;
  /**
   * The host ident the step ran on (`host`, `src_host`…), when the loader knows it. Otherwise the
   * judge takes an ident named in the testid (`xen-install/src_host`), else the job's only host.
   */
  ident?: string;
}

export interface JobRecord {
  job: string;
  status: JobStatus;
  /** Build jobs are judged as a whole: any pass in a baseline flight makes a failure a regression. */
  isBuild: boolean;
  /**
   * The revisions this job's artefacts were built from: for a build job its own `built_revision_*`
   * runvars, for a test job those of the build jobs it used. When absent, the flight's revisions are
   * taken. The loader may fall back to the definition `revision_*` runvars of a build that did not
   * get as far as recording what it built.
   */
  revisions?: Revisions;
  /** Host ident → host name, from the job's host runvars (`host`, `src_host`, `dst_host`…). */
  hosts: Readonly<Record<string, string>>;
  steps: readonly StepRecord[];
}

export interface FlightRecord {
  flight: string;
  branch: string;
  /** The final blessing (`real`, `play`…), or `running` while it is not over. */
  blessing: string;
  /** The intended blessing; baseline flights are those of the blessings the judge is told to trust. */
  intended?: string;
  /** Milliseconds since the epoch; null if it never ran. */
  started: number | null;
  /** What the flight's builds built (`built_revision_*`), tree → revision. */
  revisions: Revisions;
  jobs: readonly JobRecord[];
}

export interface Baseline {
  /** The flight the gate names as the basis, if it knows one (printed, and always a baseline flight). */
  flight?: string;
  /** The revisions that were last pushed: the tuple every comparison is made against. */
  revisions: Revisions;
}

/** One line of an allow file (allow.ts). */
export interface AllowRule {
  file: string;
  line: number;
  jobPattern: string;
  /** Absent: every testid of the matching jobs. */
  testidPattern?: string;
}

export interface JudgeOptions {
  /** Blessings whose flights may serve as baseline flights. Default: this flight's intended blessing. */
  baselineBlessings?: readonly string[];
  /** How many of the newest runs on a host make the flake record (default 40). */
  flakeWindow?: number;
}

export interface JudgeInput {
  flight: FlightRecord;
  /** null: nothing has been pushed yet (a baseline test). */
  baseline: Baseline | null;
  /**
   * Other flights of the branch, newest first: the window for "never pass", the flake record and the
   * heisenbug rule, and the pool baseline flights are chosen from. The flight judged is ignored if it
   * appears here. Normally only flights older than the one judged.
   */
  history: readonly FlightRecord[];
  /**
   * (job, testid) pairs that ever passed on the branch, as keys made by `stepKey`. Optional: without
   * it "never pass" is judged from `history` alone.
   */
  everPassed?: ReadonlySet<string>;
  allow?: readonly AllowRule[];
  options?: JudgeOptions;
}

/**
 * What became of one failure.
 * - `regression`: passed in the baseline (build jobs: the job passed in any baseline flight). Blocking.
 * - `like`: failed with the same status in the baseline. Not blocking.
 * - `failed in`: did not pass in the baseline either, but failed differently there. Blocking: what it
 *   would have done at the baseline is unknown.
 * - `blocked in`: the baseline flights never got as far as this step. Blocking, for the same reason.
 * - `baseline untested`: there is no baseline flight to compare with. Blocking.
 * - `never pass`: has never passed on this branch. Not blocking.
 * - `pass in`: passed in another flight at the same revisions (the heisenbug rule). Not blocking.
 * - `blocked`: the step was blocked by an earlier failure; not judged itself. Not blocking.
 * - `none executed`: a job that did not pass and has no failing step. Blocking unless the job was
 *   blocked.
 */
export type Verdict =
  | 'regression'
  | 'like'
  | 'failed in'
  | 'blocked in'
  | 'baseline untested'
  | 'never pass'
  | 'pass in'
  | 'blocked'
  | 'none executed';

export interface Flake {
  /** Fails, among the runs, at revisions that also passed somewhere in the history. */
  failures: number;
  runs: number;
  host: string;
}

export interface Failure {
  job: string;
  /** Absent for a job-level failure (`<none executed>`). */
  stepno?: number;
  /** As recorded, or `<none executed>`. */
  testid: string;
  /** The step's status, or the job's for a job-level failure. */
  status: StepStatus | JobStatus;
  verdict: Verdict;
  /** The flight the verdict refers to (`REGR. vs. N`, `like N`, `pass in N`…). */
  refFlight?: string;
  /** Whether it stops the push (after allow files). */
  blocking: boolean;
  /** Set only when an allow line cleared what would otherwise block. */
  allowed?: { file: string; line: number; pattern: string };
  flake?: Flake;
  /** Why it blocks or why not, in a few words. */
  reason: string;
  /** The verdict as users know it: `fail REGR. vs. 123 (flaked 3/40 on this host)`. */
  text: string;
}

export type Overall = 'perfect' | 'tolerable' | 'regressions' | 'problems';

export interface VersionRow {
  tree: string;
  /** Tested by this flight. */
  this?: string;
  /** The baseline's. */
  that?: string;
}

export interface Judgement {
  flight: string;
  branch: string;
  baseline: { flight?: string; revisions: Revisions; flights: string[] } | null;
  versions: VersionRow[];
  failures: Failure[];
  overall: Overall;
  /** `Perfect :-)`, `Regressions :-(`, `Failures :-/ but no regressions.`, `Failures and problems with tests :-(` */
  heading: string;
  /** What the push gate reads: no blocking failure. */
  tolerable: boolean;
  /** `all pass`, `ALL FAIL`, `FAIL` or `trouble: blocked/broken/fail/pass`. */
  outcome: string;
  /** Allow lines that can never match, and the like. */
  warnings: string[];
}
