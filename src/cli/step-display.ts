/**
 * What a person sees while a job runs. On a terminal: the testcases' output scrolls, and under it a
 * live list of the job's steps with their status and running time. Elsewhere (a log, CI): one line
 * when a step starts and one when it ends, with the output in between.
 */
import logUpdate from 'log-update';
import type { JobObserver, StepEvent } from '../executor/run-job.js';
import type { JobStatus, StepStatus } from '../model/status.js';
import { secs } from './output.js';

interface Row {
  e: StepEvent;
  status: StepStatus;
  t0: number;
  t1?: number;
}

const MARK: Record<StepStatus, string> = {
  running: '▶',
  pass: '✔',
  fail: '✘',
  broken: '!',
  blocked: '◌',
  aborted: '■',
  starved: '…',
};

export class StepDisplay implements JobObserver {
  private readonly rows: Row[] = [];
  private job: JobStatus = 'queued';
  private timer: NodeJS.Timeout | undefined;
  private readonly live: boolean;

  constructor(
    private readonly title: string,
    private readonly opts: { quiet?: boolean; tty?: boolean; out?: NodeJS.WritableStream } = {},
  ) {
    this.live = opts.tty ?? Boolean(process.stdout.isTTY);
    if (this.live) this.timer = setInterval(() => this.redraw(), 1000);
  }

  private write(text: string): void {
    if (this.live) {
      logUpdate.clear();
      process.stdout.write(text);
      this.redraw();
    } else {
      (this.opts.out ?? process.stdout).write(text);
    }
  }

  private redraw(): void {
    if (!this.live) return;
    const now = Date.now();
    const lines = [`${this.title}: ${this.job}`];
    for (const r of this.rows) {
      lines.push(
        `  ${MARK[r.status]} ${String(r.e.stepno).padStart(3)} ${r.e.testid.padEnd(32)} ${r.status.padEnd(8)} ${secs((r.t1 ?? now) - r.t0)}`,
      );
    }
    logUpdate(lines.join('\n'));
  }

  jobStatus(status: JobStatus): void {
    this.job = status;
    if (!this.live) return;
    this.redraw();
  }

  stepStarted(e: StepEvent): void {
    this.rows.push({ e, status: 'running', t0: Date.now() });
    if (!this.live) this.write(`step ${e.stepno} ${e.testid} (${e.testcase}): running\n`);
    else this.redraw();
  }

  stepOutput(e: StepEvent, line: string): void {
    if (this.opts.quiet) return;
    this.write(`[${e.stepno}] ${line}\n`);
  }

  stepFinished(e: StepEvent, status: StepStatus, detail: string): void {
    const r = this.rows.find((x) => x.e.stepno === e.stepno);
    if (r) {
      r.status = status;
      r.t1 = Date.now();
    }
    const took = r ? ` in ${secs(r.t1! - r.t0)}` : '';
    if (!this.live) this.write(`step ${e.stepno} ${e.testid}: ${status} (${detail})${took}\n`);
    else this.redraw();
  }

  message(text: string): void {
    this.write(`${text}\n`);
  }

  private closed = false;

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    if (this.live) {
      this.redraw();
      logUpdate.done();
    }
  }
}
