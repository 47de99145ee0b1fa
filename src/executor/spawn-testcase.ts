/**
 * Runs one testcase as a child process in its own process group, so a timeout or an abort can stop
 * it and everything it started (ssh clients, builds). stdin is closed; stdout and stderr go to the
 * step log as they arrive.
 */
import { spawn } from 'node:child_process';
import type { StepLog } from './steplog.js';

export interface TestcaseOutcome {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** Wall time of the child process alone, from spawn to exit. */
  durationMs: number;
  /** The child could not be started at all (missing interpreter, permissions). */
  spawnError?: string;
}

export interface SpawnTestcaseOptions {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  timeoutMs: number;
  log: StepLog;
  /** Grace between SIGTERM and SIGKILL when the timeout fires. */
  killGraceMs?: number;
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is already gone.
  }
}

export function spawnTestcase(o: SpawnTestcaseOptions): Promise<TestcaseOutcome> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let timedOut = false;
    let settled = false;
    const child = spawn(o.command, o.args, {
      cwd: o.cwd,
      env: o.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d: string) => o.log.write(d));
    child.stderr.on('data', (d: string) => o.log.write(d));

    let killTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      o.log.line(
        `osstest: timeout after ${Math.round(o.timeoutMs / 1000)} s: sending SIGTERM to the testcase`,
      );
      if (child.pid !== undefined) killGroup(child.pid, 'SIGTERM');
      killTimer = setTimeout(() => {
        if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
      }, o.killGraceMs ?? 5000);
    }, o.timeoutMs);

    const finish = (r: Omit<TestcaseOutcome, 'durationMs' | 'timedOut'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      // Anything the testcase left running in its group goes with it.
      if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
      resolve({ ...r, timedOut, durationMs: performance.now() - t0 });
    };
    child.on('error', (err) => finish({ exitCode: null, signal: null, spawnError: err.message }));
    child.on('close', (code, signal) => finish({ exitCode: code, signal }));
  });
}

export function describeOutcome(o: TestcaseOutcome, timeoutMs: number): string {
  if (o.spawnError) return `could not start: ${o.spawnError}`;
  if (o.timedOut)
    return `timed out after ${Math.round(timeoutMs / 1000)} s (killed with ${o.signal ?? 'SIGKILL'})`;
  if (o.signal) return `killed by signal ${o.signal}`;
  return `exit status ${o.exitCode}`;
}
