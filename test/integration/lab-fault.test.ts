/**
 * Lab mode's fault test, 20 times over: three `osstest worker` processes on one PostgreSQL; each
 * round queues a flight whose first build is slow, SIGKILLs the worker running it in the middle of
 * its build step, and starts a replacement worker. The dead worker is noticed through its lease
 * alone: its job must end broken with every step record closed (the one it was in broken, with its
 * log), its runner and testcase must be gone, its host must come back after the grace, and the
 * other workers must finish the flight (the second build can only run on the dead job's host).
 *
 * Real: the CLI, the workers, their runners, run-job, ts-hosts-allocate and ts-build-check, the
 * store on PostgreSQL. Stand-ins: the build, prep, install, test and log-capture steps are shell
 * scripts in the workspace's TestcasePath (no ssh), told per job by files what to do.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/db/store.js';
import {
  alive,
  createLabWorkspace,
  type LabWorkspace,
  startWorker,
  type WorkerProcess,
  waitFor,
} from '../helpers/lab-workers.js';
import { havePostgres, startTestPostgres, type TestPostgres } from '../helpers/postgres.js';
import { checkHoldLog } from './lab-store-suite.js';

const ROUNDS = 20;
/** The whole loop's bound; measured here at about 3 s a round. */
const LOOP_MS = 110_000;
const SHADOWED = ['ts-build-prep', 'ts-build', 'ts-install-dist', 'ts-run-tests', 'ts-logs-capture'];

const ok = havePostgres('lab fault test');

describe.skipIf(!ok)('lab workers: a worker killed mid-job', () => {
  let pg: TestPostgres;
  let ws: LabWorkspace;
  let store: Store;
  let ctl: string;
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    pg = await startTestPostgres();
    ws = await createLabWorkspace(pg, [
      'WorkerLeaseSeconds 1.2',
      'WorkerGraceSeconds 0.2',
      'WorkerPollSeconds 1',
      'WorkerMaxJobs 2',
    ]);
    ctl = join(ws.dir, 'ctl');
    mkdirSync(ctl);
    const standIn = `#!/bin/sh
# Stand-in for a step: told by $CTL/<job>.<testcase>.sleep how long to take; records its pid.
base="${ctl}/$OSSTEST_FLIGHT.$OSSTEST_JOB.$(basename "$0")"
echo "$(basename "$0") for $OSSTEST_FLIGHT/$OSSTEST_JOB: pid $$"
echo $$ > "$base.pid"
if [ -f "$base.sleep" ]; then sleep "$(cat "$base.sleep")"; fi
exit 0
`;
    for (const t of SHADOWED) ws.addTestcase(t, standIn);
    store = await ws.openLabStore();
    await store.upsertHost({ name: 'b1', ip: '127.0.0.1' });
    await store.setHostFlags('b1', ['purpose-build']);
    for (let i = 0; i < 3; i++) workers.push(startWorker(ws));
  });

  afterAll(async () => {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
    await Promise.all(workers.map((w) => w.exited));
    await store?.close();
    ws?.cleanup();
    await pg?.stop();
  });

  const logs = () =>
    workers
      .slice(-4)
      .map((w) => `--- worker ${w.pid}\n${w.output().slice(-3000)}`)
      .join('\n');

  /** Every log of a flight's jobs, for a failing assertion's message. */
  const stepLogs = (f: string) => {
    const dir = join(ws.dir, 'logs', f);
    if (!existsSync(dir)) return '';
    return readdirSync(dir)
      .flatMap((job) =>
        readdirSync(join(dir, job))
          .filter((n) => n.endsWith('.log'))
          .map((n) => `--- ${job}/${n}\n${readFileSync(join(dir, job, n), 'utf8')}`),
      )
      .join('\n');
  };

  it(`SIGKILL of the worker running a job, ${ROUNDS} times: the job ends broken, no step half-written, its host returns, the flight finishes`, async () => {
    const t0 = Date.now();
    const timings: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const r0 = Date.now();
      expect(Date.now() - t0, 'the loop is bounded in time').toBeLessThan(LOOP_MS);
      const f = (await store.createFlight({ branch: 'fault', intended: 'play' })).flight;
      await store.createJob(f, 'build-a', 'build', { host_hostflags: 'purpose-build' });
      await store.createJob(f, 'build-b', 'build', { host_hostflags: 'purpose-build' });
      writeFileSync(join(ctl, `${f}.build-a.ts-build.sleep`), '30');
      await store.lab.queueFlight(f, { by: 'test' });

      // The victim: whichever worker claimed build-a, once build-a is in its build step.
      const buildPid = join(ctl, `${f}.build-a.ts-build.pid`);
      await waitFor(
        `round ${round}: build-a in its build step`,
        async () => existsSync(buildPid),
        20_000,
        logs,
      );
      const claim = (await store.lab.listClaims()).find((c) => c.flight === f && c.job === 'build-a');
      expect(claim, logs()).toBeDefined();
      const victim = (await store.lab.listWorkers()).find((w) => w.id === claim!.worker)!;
      const proc = workers.find((w) => w.pid === victim.pid)!;
      expect(proc, `worker ${victim.id} is one of ours`).toBeDefined();
      const testcasePid = Number(readFileSync(buildPid, 'utf8'));
      proc.child.kill('SIGKILL');
      workers.push(startWorker(ws));

      const flight = await waitFor(
        `round ${round}: flight ${f} to finish`,
        async () => {
          const fl = await store.getFlight(f);
          return fl?.blessing === 'play' ? fl : undefined;
        },
        25_000,
        logs,
      );
      expect(flight.blessing).toBe('play');
      const jobs = Object.fromEntries((await store.listJobs(f)).map((j) => [j.job, j.status]));
      expect(jobs, `${logs()}\n${stepLogs(f)}`).toEqual({
        'build-a': 'broken',
        'build-b': 'pass',
      });

      // No step record lost or half-written: numbered 1..n, every one closed with a time and a log.
      const steps = await store.listSteps(f);
      for (const job of ['build-a', 'build-b']) {
        const mine = steps.filter((s) => s.job === job);
        expect(mine.map((s) => s.stepno)).toEqual(mine.map((_s, i) => i + 1));
      }
      for (const s of steps) {
        expect(s.status, `${s.job} step ${s.stepno}`).not.toBe('running');
        expect(s.finished, `${s.job} step ${s.stepno}`).not.toBeNull();
        expect(s.logPath, `${s.job} step ${s.stepno}`).not.toBeNull();
        expect(existsSync(join(ws.dir, 'logs', s.logPath!)), `${s.logPath}`).toBe(true);
      }
      expect(steps.filter((s) => s.job === 'build-a').map((s) => `${s.testcase}:${s.status}`)).toEqual([
        'ts-hosts-allocate:pass',
        'ts-build-prep:pass',
        'ts-build:broken',
      ]);
      // The dead worker's testcase was stopped with it (by its runner), not left using the host.
      expect(alive(testcasePid), `ts-build of build-a (pid ${testcasePid})`).toBe(false);
      // Its host came back: released once its lease and the grace had passed, then used by build-b.
      const log = await store.lab.holdHistory({ flight: f });
      const b1 = log.filter((e) => e.host === 'b1').map((e) => `${e.event} ${e.job}`);
      expect(b1).toEqual(['allocate build-a', 'release build-a', 'allocate build-b', 'release build-b']);
      expect(
        (await store.listHostEvents('b1')).some(
          (e) => e.kind === 'lease' && e.detail.includes(`${f}/build-a`),
        ),
      ).toBe(true);
      expect((await store.lab.listHolds()).filter((h) => h.flight === f)).toEqual([]);
      expect((await store.lab.listClaims()).filter((c) => c.flight === f)).toEqual([]);
      const gone = (await store.lab.listWorkers({ all: true })).find((w) => w.id === victim.id)!;
      expect(gone.endReason).toMatch(/lease expired/);
      timings.push(Date.now() - r0);
    }
    checkHoldLog(await store.lab.holdHistory());
    // The last replacement may still be starting.
    await waitFor(
      'three live workers',
      async () => (await store.lab.listWorkers()).length === 3,
      10_000,
      logs,
    );
    process.stderr.write(
      `[lab fault] ${ROUNDS} rounds in ${((Date.now() - t0) / 1000).toFixed(1)} s; per round min ${Math.min(...timings)} ms, max ${Math.max(...timings)} ms\n`,
    );
    // Drain every worker on this machine; each finishes and exits 0.
    const d = await ws.cli(['worker', '--drain', '--json']);
    expect(d.code, d.stderr).toBe(0);
    expect((JSON.parse(d.stdout) as unknown[]).length).toBe(3);
    const codes = await Promise.all(workers.filter((w) => w.child.signalCode === null).map((w) => w.exited));
    expect(codes.every((c) => c === 0)).toBe(true);
    expect(await store.lab.listWorkers()).toEqual([]);
  }, 150_000);
});
