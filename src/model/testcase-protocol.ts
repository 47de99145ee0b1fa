/**
 * The contract between the executor and a testcase process, shared by both sides: the environment
 * a testcase is given, how its log lines are stamped, where it says that it declared its job
 * broken, blocked or starved, and how long host allocation may wait.
 */

/** Environment variables the executor sets for every testcase. */
export const TESTCASE_ENV = {
  flight: 'OSSTEST_FLIGHT',
  job: 'OSSTEST_JOB',
  config: 'OSSTEST_CONFIG',
  stepLog: 'OSSTEST_STEPLOG',
  stepno: 'OSSTEST_STEPNO',
  testid: 'OSSTEST_TESTID',
} as const;

/** `2026-11-21 10:00:00 Z`: every log line starts with one. */
export function logStamp(d = new Date()): string {
  return `${d
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, '')} Z`;
}

/** What a testcase may declare its job (besides failing): see Testcase.declare. */
export const DECLARABLE_STATUSES = ['broken', 'blocked', 'starved'] as const;
export type DeclarableStatus = (typeof DECLARABLE_STATUSES)[number];

export function isDeclarableStatus(s: string): s is DeclarableStatus {
  return (DECLARABLE_STATUSES as readonly string[]).includes(s);
}

/** Set by execute-flight for its job runners; beats the config's HostAllocateWait. */
export const HOST_ALLOCATE_WAIT_ENV = 'OSSTEST_HOST_ALLOCATE_WAIT';

/**
 * Seconds ts-hosts-allocate may wait for a host that another job holds: $OSSTEST_HOST_ALLOCATE_WAIT
 * when set, else `configured` (HostAllocateWait). The executor reads the same value to give the
 * allocation step that much more time before its timeout.
 */
export function hostAllocateWaitSeconds(configured: number, env: NodeJS.ProcessEnv): number {
  const v = env[HOST_ALLOCATE_WAIT_ENV]?.trim();
  if (v === undefined || v === '') return configured;
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v)))
    throw new Error(`${HOST_ALLOCATE_WAIT_ENV}='${v}': must be a whole number of seconds`);
  return Number(v);
}

/**
 * A testcase that declares its job broken, blocked or starved also writes the status here (next to its step
 * log), so the executor can tell this step's own verdict from what the job already was.
 */
export function declaredStatusFile(stepLog: string): string {
  return `${stepLog}.declared`;
}
