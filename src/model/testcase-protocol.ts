/**
 * The contract between the executor and a testcase process, shared by both sides: the environment
 * a testcase is given, how its log lines are stamped, and where it says that it declared its job
 * broken or blocked.
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

/**
 * A testcase that declares its job broken or blocked also writes the status here (next to its step
 * log), so the executor can tell this step's own verdict from what the job already was.
 */
export function declaredStatusFile(stepLog: string): string {
  return `${stepLog}.declared`;
}
