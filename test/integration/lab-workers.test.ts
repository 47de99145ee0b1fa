/**
 * Lab mode's acceptance test: PostgreSQL, three `osstest worker` processes, six netns hosts running
 * sshd with flags, and a flight of 20 jobs of the sample C project run by the real testcases over
 * ssh: five builds (four of them on one shared build host), fourteen single-host tests and a pair
 * test whose two hosts must share an `equiv-*` flag. Every job must pass; the pair must not starve
 * behind the single-host tests; the builds must reuse the shared host instead of preparing it again;
 * and the allocation log must show no host ever held by two jobs at once (except the slots of the
 * shared build host, by build jobs of its type).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/db/store.js';
import { createSampleProject } from '../../src/lab/sample-project.js';
import { ensureKeyPair } from '../../src/remote/keys.js';
import { prerequisites } from '../helpers/env.js';
import {
  createLabWorkspace,
  type LabWorkspace,
  startWorker,
  type WorkerProcess,
  waitFor,
} from '../helpers/lab-workers.js';
import { createTestHosts } from '../helpers/netns.js';
import { havePostgres, startTestPostgres, type TestPostgres } from '../helpers/postgres.js';
import { checkHoldLog } from './lab-store-suite.js';

const ok =
  havePostgres('lab workers acceptance test') &&
  prerequisites('lab workers on netns sshd hosts', {
    root: true,
    commands: ['ip', '/usr/sbin/sshd', 'git', 'make', 'cc'],
  });

/** name → flags; sb0 is the shared build host, t0/t1 and t2/t3 two equivalence classes. */
const HOSTS: Record<string, string[]> = {
  sb0: ['purpose-build', 'share-build-demo-amd64'],
  b1: ['purpose-build'],
  t0: ['purpose-test', 'equiv-a'],
  t1: ['purpose-test', 'equiv-a'],
  t2: ['purpose-test', 'equiv-b'],
  t3: ['purpose-test', 'equiv-b'],
};

describe.skipIf(!ok)('lab workers: a 20-job flight on six netns hosts', () => {
  let pg: TestPostgres;
  let ws: LabWorkspace;
  let store: Store;
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    pg = await startTestPostgres();
    ws = await createLabWorkspace(pg, [
      'WorkerLeaseSeconds 6',
      'WorkerGraceSeconds 2',
      'WorkerPollSeconds 2',
      'WorkerMaxJobs 2',
      'HostProp_CaptureFiles /etc/hostname',
    ]);
    const key = ensureKeyPair(join(ws.dir, 'keys', 'id_ed25519'), 'osstest-lab-test');
    const made = await createTestHosts(6, { authorizedKeys: key.publicKey, namePrefix: 'lab' });
    store = await ws.openLabStore();
    for (const [i, [name, flags]] of Object.entries(HOSTS).entries()) {
      await store.upsertHost({ name, ip: made[i]!.address });
      await store.setHostFlags(name, flags);
      await store.setHostProp(name, 'Workdir', join(ws.dir, 'hosts', name));
    }
    await store.setHostProp('sb0', 'SharedMaxTasks', '3');
  });

  afterAll(async () => {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
    await Promise.all(workers.map((w) => w.exited));
    await store?.close();
    ws?.cleanup();
    await pg?.stop();
  });

  it('runs every job to pass with three workers; the pair is not starved; builds share sb0; no host held twice', async () => {
    const project = await createSampleProject(join(ws.dir, 'demo.git'));
    const f = (await store.createFlight({ branch: 'demo', intended: 'play' })).flight;
    const tree = { tree_demo: project.path, revision_demo: project.good, arch: 'amd64' };
    const build = {
      ...tree,
      build_tree: 'demo',
      build_command: 'make && make install DESTDIR="$OSSTEST_DIST"',
    };
    const builds = ['build-s1', 'build-s2', 'build-s3', 'build-s4'];
    for (const b of builds)
      await store.createJob(f, b, 'build', {
        ...build,
        host_hostflags: 'share-build-demo-amd64,purpose-build',
      });
    await store.createJob(f, 'build-p', 'build', {
      ...build,
      host_hostflags: 'purpose-build,!share-build-demo-amd64',
    });
    const test = {
      arch: 'amd64',
      test_command: './run-tests',
      all_hostflags: 'purpose-test',
      revision_demo: project.good,
    };
    for (let i = 1; i <= 14; i++)
      await store.createJob(f, `test-${String(i).padStart(2, '0')}`, 'test-demo', {
        ...test,
        buildjob: [...builds, 'build-p'][i % 5]!,
      });
    await store.createJob(f, 'test-pair', 'test-demo', {
      ...test,
      buildjob: 'build-p',
      host_idents: 'src_host dst_host',
      src_host_hostflags: 'equiv-1',
      dst_host_hostflags: 'equiv-1',
    });
    expect(await store.listJobs(f)).toHaveLength(20);

    const t0 = Date.now();
    for (let i = 0; i < 3; i++) workers.push(startWorker(ws));
    const q = await ws.cli(['flight', 'queue', f]);
    expect(q.code, q.stderr).toBe(0);
    const logs = () => workers.map((w) => `--- worker ${w.pid}\n${w.output()}`).join('\n');
    await waitFor(
      `flight ${f} to finish`,
      async () => (await store.getFlight(f))?.blessing === 'play',
      150_000,
      logs,
      500,
    );
    const ms = Date.now() - t0;
    const jobs = await store.listJobs(f);
    const failed = jobs.filter((j) => j.status !== 'pass');
    const why = failed
      .map((j) => {
        try {
          return `--- ${j.job} ${j.status}\n${readFileSync(join(ws.dir, 'logs', f, j.job, 'run-job.log'), 'utf8')}`;
        } catch {
          return `--- ${j.job} ${j.status}`;
        }
      })
      .join('\n');
    expect(
      failed.map((j) => `${j.job}:${j.status}`),
      `${why}\n${logs()}`,
    ).toEqual([]);

    // Each worker ran some of the jobs.
    const ran = workers.map((w) => (w.output().match(/: pass \(/g) ?? []).length);
    expect(ran.reduce((a, b) => a + b, 0)).toBe(20);
    expect(ran.filter((n) => n > 0).length, ran.join(',')).toBeGreaterThanOrEqual(2);

    // The pair ran on two hosts of one equivalence class.
    const src = (await store.getRunvar(f, 'test-pair', 'src_host'))!.val;
    const dst = (await store.getRunvar(f, 'test-pair', 'dst_host'))!.val;
    expect([src, dst].sort().join(' ')).toMatch(/^(t0 t1|t2 t3)$/);

    // The share builds all ran on sb0; its share was prepared once and reused (wear counts the jobs it served).
    const log = await store.lab.holdHistory();
    const sb0 = log.filter((e) => e.host === 'sb0' && e.event === 'allocate');
    expect(sb0.map((e) => e.job).sort()).toEqual(builds);
    expect(sb0.every((e) => e.share === 'build-demo-amd64')).toBe(true);
    const share = (await store.lab.listShares()).find((s) => s.host === 'sb0');
    expect(share, 'the share of sb0 stays ready for more builds').toMatchObject({
      state: 'ready',
      holders: 0,
    });
    expect(share!.wear).toBe(4);
    expect(log.some((e) => e.host === 'b1' && e.job === 'build-p')).toBe(true);

    // No host ever held twice; nothing is held now.
    const { holds, maxSharers } = checkHoldLog(log);
    expect(holds).toBe(21);
    expect(await store.lab.listHolds()).toEqual([]);
    expect(await store.lab.listClaims()).toEqual([]);
    process.stderr.write(
      `[lab acceptance] 20 jobs, 3 workers, 6 hosts: ${(ms / 1000).toFixed(1)} s; jobs per worker ${ran.join(',')}; most sharers of sb0 at once ${maxSharers.sb0 ?? 0}\n`,
    );

    // Drained, every worker exits 0.
    const d = await ws.cli(['worker', '--drain']);
    expect(d.code, d.stderr).toBe(0);
    expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0, 0]);
    const all = await store.lab.listWorkers({ all: true });
    expect(all.map((w) => w.endReason)).toEqual(['told to drain', 'told to drain', 'told to drain']);
  }, 180_000);
});
