/**
 * A flight for the web tests, made through the real store: a build job that passed and a test job
 * still running on host box1, with step logs where the executor writes them.
 */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Store } from '../../src/db/store.js';
import { stepLogPath } from '../../src/executor/run-job.js';

export const BUILD = 'build-amd64';
export const TEST = 'test-amd64-amd64-demo';

export interface SeededFlight {
  flight: string;
  /** Logs-relative path of each step's log, by `job/stepno`. */
  logs: Record<string, string>;
}

export class FlightSeeder {
  constructor(
    readonly store: Store,
    readonly logsDir: string,
  ) {}

  logFile(rel: string): string {
    return join(this.logsDir, rel);
  }

  appendLog(rel: string, lines: string[]): void {
    const p = this.logFile(rel);
    mkdirSync(dirname(p), { recursive: true });
    appendFileSync(p, lines.map((l) => `${l}\n`).join(''));
  }

  /** Starts a step and writes the first line of its log; returns its number and log path. */
  async start(
    flight: string,
    job: string,
    testcase: string,
    testid: string,
  ): Promise<{ stepno: number; rel: string }> {
    const s = await this.store.startStep(flight, job, { testcase, testid });
    const rel = stepLogPath(flight, job, s.stepno, testcase);
    this.appendLog(rel, [`osstest: step ${s.stepno} ${testcase} (testid ${testid})`]);
    return { stepno: s.stepno, rel };
  }

  async finish(
    flight: string,
    job: string,
    step: { stepno: number; rel: string },
    status: 'pass' | 'fail',
  ): Promise<void> {
    this.appendLog(step.rel, [`osstest: exit status ${status === 'pass' ? 0 : 1}: step ${status}`]);
    await this.store.finishStep(flight, job, step.stepno, { status, logPath: step.rel });
  }

  /**
   * Flight `name` of branch `demo`: build-amd64 passed (two steps, built_revision_demo), the test job
   * holds box1 and has passed hosts-allocate; `testLines` go into the log of that first test step.
   */
  async seed(
    name: string,
    o: { testRunvars?: Record<string, string>; revision?: string } = {},
  ): Promise<SeededFlight> {
    const { store } = this;
    const rev = o.revision ?? 'abc1234567890def';
    await store.upsertHost({ name: 'box1', ip: '127.0.0.1' });
    await store.createFlight({ flight: name, branch: 'demo', intended: 'real' });
    await store.createJob(name, BUILD, 'build', { tree_demo: '/srv/demo.git', revision_demo: rev });
    await store.createJob(name, TEST, 'test-demo', { buildjob: BUILD, ...(o.testRunvars ?? {}) });
    await store.markFlightStarted(name);
    const logs: Record<string, string> = {};

    await store.setJobStatus(name, BUILD, 'running');
    const b1 = await this.start(name, BUILD, 'ts-build-prep', 'build-prep');
    await this.finish(name, BUILD, b1, 'pass');
    const b2 = await this.start(name, BUILD, 'ts-build', 'build');
    this.appendLog(b2.rel, ['make: Entering directory', 'make: Leaving directory']);
    await this.finish(name, BUILD, b2, 'pass');
    await store.setRunvar(name, BUILD, 'built_revision_demo', rev, { synth: true });
    await store.setJobStatus(name, BUILD, 'pass');
    logs[`${BUILD}/1`] = b1.rel;
    logs[`${BUILD}/2`] = b2.rel;

    await store.setJobStatus(name, TEST, 'preparing');
    const t1 = await this.start(name, TEST, 'ts-hosts-allocate', 'hosts-allocate');
    await store.allocateHost('box1', { flight: name, job: TEST, ident: 'host' });
    await store.setRunvar(name, TEST, 'host', 'box1', { synth: true });
    await this.finish(name, TEST, t1, 'pass');
    await store.setJobStatus(name, TEST, 'running');
    logs[`${TEST}/1`] = t1.rel;
    return { flight: name, logs };
  }
}

export function writeText(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}
