/** Statuses of jobs and steps, and the rules for moving between them (OSSTEST-BEHAVIOUR §1, §3). */

export const JOB_STATUSES = [
  'queued',
  'preparing',
  'running',
  'pass',
  'fail',
  'broken',
  'blocked',
  'aborted',
  'starved',
] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export const STEP_STATUSES = ['running', 'pass', 'fail', 'broken', 'blocked', 'aborted', 'starved'] as const;
export type StepStatus = (typeof STEP_STATUSES)[number];

/** What a failing step makes of its job: the recipe says this per step. */
export type FailureStatus = 'fail' | 'broken' | 'blocked';

const FINAL_JOB: ReadonlySet<JobStatus> = new Set([
  'pass',
  'fail',
  'broken',
  'blocked',
  'aborted',
  'starved',
]);
const STICKY_JOB: ReadonlySet<JobStatus> = new Set(['broken', 'aborted']);

export function isJobStatus(s: string): s is JobStatus {
  return (JOB_STATUSES as readonly string[]).includes(s);
}

export function isStepStatus(s: string): s is StepStatus {
  return (STEP_STATUSES as readonly string[]).includes(s);
}

export function isFinalJobStatus(s: JobStatus): boolean {
  return FINAL_JOB.has(s);
}

/** The sticky job statuses (see isStickyJobStatus), for a store that applies the rule in SQL. */
export function stickyJobStatuses(): JobStatus[] {
  return [...STICKY_JOB];
}

/** Broken and aborted stick: nothing that happens later in the job may turn them into anything else. */
export function isStickyJobStatus(s: JobStatus): boolean {
  return STICKY_JOB.has(s);
}

/** The status a job moves to when `next` is asked for while it is `current`. */
export function nextJobStatus(current: JobStatus, next: JobStatus): JobStatus {
  if (isStickyJobStatus(current)) return current;
  return next;
}

/** Orders failure statuses by how much they say about the infrastructure rather than the code under test. */
const SEVERITY: Record<StepStatus, number> = {
  running: 0,
  pass: 1,
  fail: 2,
  blocked: 3,
  starved: 4,
  broken: 5,
  aborted: 6,
};

/** The worse of two step outcomes (used to fold per-host parallel steps into one result). */
export function worseStepStatus(a: StepStatus, b: StepStatus): StepStatus {
  return SEVERITY[a] >= SEVERITY[b] ? a : b;
}
