/**
 * What a person sees while execute-flight runs. On a terminal: a live list of the flight's jobs with
 * their status, the step each is at and how long it has run, redrawn in place (as step-display does
 * for one job). Elsewhere (a log, CI): a line when a job starts, when it moves to a new step, and
 * when it ends.
 */
import logUpdate from 'log-update';
import type { FlightJobView, FlightObserver } from '../flight/execute-flight.js';
import type { JobStatus } from '../model/status.js';
import { secs } from './output.js';

const MARK: Record<JobStatus, string> = {
  queued: '·',
  preparing: '▷',
  running: '▶',
  pass: '✔',
  fail: '✘',
  broken: '!',
  blocked: '◌',
  aborted: '■',
  starved: '…',
};

function stamp(): string {
  return new Date().toISOString().slice(11, 19);
}

export class FlightDisplay implements FlightObserver {
  private jobs: readonly FlightJobView[] = [];
  private readonly live: boolean;
  private readonly out: NodeJS.WritableStream;
  private readonly lastStep = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly title: string,
    opts: { tty?: boolean; out?: NodeJS.WritableStream } = {},
  ) {
    this.live = opts.tty ?? Boolean(process.stdout.isTTY);
    this.out = opts.out ?? process.stdout;
    // Running times tick between the executor's updates.
    if (this.live) this.timer = setInterval(() => this.redraw(), 1000);
  }

  private redraw(): void {
    if (!this.live || this.closed) return;
    const now = Date.now();
    const count = (p: FlightJobView['phase']) => this.jobs.filter((j) => j.phase === p).length;
    const width = Math.max(8, ...this.jobs.map((j) => j.job.length));
    const lines = [
      `flight ${this.title}: ${count('running')} running, ${count('waiting')} waiting, ${count('done')} done`,
    ];
    for (const j of this.jobs) {
      let what = '';
      if (j.phase === 'waiting')
        what = j.waitingFor.length > 0 ? `waiting for ${j.waitingFor.join(', ')}` : 'waiting for a slot';
      else if (j.step && j.phase === 'done') what = `${j.step.stepno} step${j.step.stepno === 1 ? '' : 's'}`;
      else if (j.step) what = `step ${j.step.stepno} ${j.step.testid} (${j.step.status})`;
      const took = j.started !== undefined ? secs((j.finished ?? now) - j.started) : '';
      lines.push(
        `  ${MARK[j.status]} ${j.job.padEnd(width)} ${j.status.padEnd(9)} ${what.padEnd(40)} ${took}`,
      );
    }
    logUpdate(lines.join('\n'));
  }

  private line(text: string): void {
    if (this.live) {
      logUpdate.clear();
      process.stdout.write(`${text}\n`);
      this.redraw();
    } else {
      this.out.write(`${stamp()} ${text}\n`);
    }
  }

  update(jobs: readonly FlightJobView[]): void {
    this.jobs = jobs;
    if (this.live) {
      this.redraw();
      return;
    }
    for (const j of jobs) {
      if (!j.step || j.phase !== 'running' || this.lastStep.get(j.job) === j.step.stepno) continue;
      this.lastStep.set(j.job, j.step.stepno);
      this.line(`${j.job}: step ${j.step.stepno} ${j.step.testid}`);
    }
  }

  jobStarted(job: string, pid: number): void {
    if (!this.live) this.line(`${job}: started (runner pid ${pid})`);
  }

  jobFinished(job: string, status: JobStatus, detail: string): void {
    const j = this.jobs.find((x) => x.job === job);
    const took = j?.started !== undefined ? ` after ${secs(Date.now() - j.started)}` : '';
    // The terminal's list shows it; a log needs the line, and so does anything that did not end well.
    if (!this.live || status !== 'pass') this.line(`${job}: ${status}${took} (the runner ${detail})`);
  }

  message(text: string): void {
    this.line(text);
  }

  close(): void {
    if (this.closed) return;
    if (this.timer) clearInterval(this.timer);
    if (this.live) {
      this.redraw();
      logUpdate.done();
    }
    this.closed = true;
  }
}
