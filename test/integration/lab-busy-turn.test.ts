/**
 * A worker that finds another worker deciding does not wait for it (LabStore.deciding with
 * unlessBusy): it relies on that one's announcement. When the turn is given up without one (here:
 * a holder that announces nothing; in a lab, an announcement that came a moment before the turn was
 * free), a worker turned away with changes no decision has seen looks again after BUSY_RETRY_MS, not
 * after its poll interval. Real PostgreSQL, a real `osstest worker --once` process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/db/store.js';
import { createLabWorkspace, type LabWorkspace, startWorker, waitFor } from '../helpers/lab-workers.js';
import { havePostgres, startTestPostgres, type TestPostgres } from '../helpers/postgres.js';

const ok = havePostgres('a worker turned away from a busy decision turn');
const SHADOWED = ['ts-build-prep', 'ts-build', 'ts-install-dist', 'ts-run-tests', 'ts-logs-capture'];

describe.skipIf(!ok)('a worker turned away from a busy decision turn', () => {
  let pg: TestPostgres;
  let ws: LabWorkspace;
  let store: Store;

  beforeAll(async () => {
    pg = await startTestPostgres();
    // A poll far longer than the test's bound: only the retry can start the job in time.
    ws = await createLabWorkspace(pg, [
      'HostAllocation planner',
      'WorkerPollSeconds 60',
      'WorkerLeaseSeconds 20',
    ]);
    for (const t of SHADOWED) ws.addTestcase(t, '#!/bin/sh\necho "$(basename "$0") for $OSSTEST_JOB"\n');
    store = await ws.openLabStore();
    await store.upsertHost({ name: 'solo', ip: '127.0.0.1' });
    await store.setHostFlags('solo', ['purpose-solo']);
  });
  afterAll(async () => {
    await store?.close();
    ws?.cleanup();
    await pg?.stop();
  });

  it('looks again soon once the turn is free, not at its next poll', async () => {
    const f = (await store.createFlight({ branch: 'busy', intended: 'play' })).flight;
    await store.createJob(f, 'j', 'build', { host_hostflags: 'purpose-solo' });
    await store.lab.queueFlight(f, { by: 'test' });
    // Another "worker" holds the turn and will give it up without announcing anything.
    const holder = await ws.openLabStore();
    let release!: () => void;
    let holding = false;
    const held = holder.lab.deciding(async () => {
      holding = true;
      await new Promise<void>((r) => {
        release = r;
      });
    });
    while (!holding) await new Promise((r) => setTimeout(r, 5));
    const w = startWorker(ws, ['--once']);
    try {
      await waitFor(
        'the worker to register',
        async () => (await store.lab.listWorkers()).length > 0,
        20_000,
        w.output,
      );
      // Turned away (more than once, by now): the job waits.
      await new Promise((r) => setTimeout(r, 1000));
      expect((await store.getJob(f, 'j'))!.status).toBe('queued');
      expect(await store.lab.listClaims()).toEqual([]);
      const freed = Date.now();
      release();
      await held;
      await waitFor(
        'the job to be claimed',
        async () => (await store.getJob(f, 'j'))!.status !== 'queued',
        10_000,
        w.output,
        20,
      );
      expect(Date.now() - freed).toBeLessThan(5_000);
      expect(await w.exited).toBe(0);
      expect((await store.getJob(f, 'j'))!.status).toBe('pass');
    } finally {
      if (w.child.exitCode === null) w.child.kill('SIGKILL');
      await holder.close();
    }
  });
});
