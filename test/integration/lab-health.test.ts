/**
 * Host health in lab mode, on PostgreSQL with netns sshd hosts and real workers: a host whose sshd
 * is stopped breaks the jobs given to it; after HealthQuarantineAfter of them in a row (jobs that
 * passed on other hosts in an earlier flight) it is quarantined, told in the worker's log and a host
 * event, and `osstest hosts health` says why; the flight finishes on the other hosts. Workers then
 * queue health checks of it (they fail while sshd is down); once sshd is back a check passes, the
 * host is good again and takes jobs.
 *
 * The jobs are smoke tests (recipe health-check: allocate, then ts-host-ping over ssh): cheap, and
 * real enough to break on a host without sshd.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/db/store.js';
import { ensureKeyPair } from '../../src/remote/keys.js';
import { prerequisites } from '../helpers/env.js';
import {
  createLabWorkspace,
  type LabWorkspace,
  startWorker,
  type WorkerProcess,
  waitFor,
} from '../helpers/lab-workers.js';
import { createTestHosts, type TestHost } from '../helpers/netns.js';
import { havePostgres, startTestPostgres, type TestPostgres } from '../helpers/postgres.js';

const ok =
  havePostgres('lab host health test') &&
  prerequisites('lab host health on netns sshd hosts', { root: true, commands: ['ip', '/usr/sbin/sshd'] });

describe.skipIf(!ok)('lab workers: host health', () => {
  let pg: TestPostgres;
  let ws: LabWorkspace;
  let store: Store;
  let bad: TestHost;
  const workers: WorkerProcess[] = [];
  const logs = () => workers.map((w) => `--- worker ${w.pid}\n${w.output()}`).join('\n');

  beforeAll(async () => {
    pg = await startTestPostgres();
    ws = await createLabWorkspace(pg, [
      'WorkerLeaseSeconds 5',
      'WorkerGraceSeconds 1',
      'WorkerPollSeconds 1',
      'WorkerMaxJobs 2',
      'HealthQuarantineAfter 3',
      'HealthCheckInterval 2',
    ]);
    const key = ensureKeyPair(join(ws.dir, 'keys', 'id_ed25519'), 'osstest-lab-test');
    const made = await createTestHosts(4, { authorizedKeys: key.publicKey, namePrefix: 'health' });
    bad = made[0];
    store = await ws.openLabStore();
    for (const [i, name] of ['tbad', 'g1', 'g2', 'g3'].entries()) {
      await store.upsertHost({ name, ip: made[i]!.address });
      await store.setHostFlags(name, ['purpose-test', ...(name === 'tbad' ? ['flaky'] : [])]);
      await store.setHostProp(name, 'Workdir', join(ws.dir, 'hosts', name));
    }
    for (let i = 0; i < 3; i++) workers.push(startWorker(ws));
  });

  afterAll(async () => {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
    await Promise.all(workers.map((w) => w.exited));
    await store?.close();
    ws?.cleanup();
    await pg?.stop();
  });

  async function runFlight(jobs: Record<string, Record<string, string>>): Promise<Record<string, string>> {
    const f = (await store.createFlight({ branch: 'smoke', intended: 'play' })).flight;
    for (const [job, runvars] of Object.entries(jobs)) await store.createJob(f, job, 'health-check', runvars);
    const q = await ws.cli(['flight', 'queue', f]);
    expect(q.code, q.stderr).toBe(0);
    await waitFor(
      `flight ${f}`,
      async () => (await store.getFlight(f))?.blessing === 'play',
      60_000,
      logs,
      200,
    );
    return Object.fromEntries((await store.listJobs(f)).map((j) => [j.job, j.status]));
  }

  async function cli(args: string[]): Promise<string> {
    const r = await ws.cli(args);
    if (r.code !== 0) throw new Error(`osstest ${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  }

  it('quarantines a host after 3 jobs in a row broke on it while passing elsewhere; its health check brings it back', async () => {
    const smoke = { host_hostflags: 'purpose-test' };
    // The jobs pass on the good hosts first (tbad is in maintenance: out of use).
    await cli(['hosts', 'health', 'tbad', '--set', 'maintenance', '--reason', 'not yet']);
    expect(await runFlight({ 'ping-1': smoke, 'ping-2': smoke, 'ping-3': smoke }), logs()).toEqual({
      'ping-1': 'pass',
      'ping-2': 'pass',
      'ping-3': 'pass',
    });

    // tbad loses its sshd and comes back into use; three of the same jobs are pinned to it.
    await bad.stopSshd();
    await cli(['hosts', 'health', 'tbad', '--set', 'good']);
    const pinned = { host: 'tbad' };
    const others = { host_hostflags: 'purpose-test,!flaky' };
    const b = await runFlight({
      'ping-1': pinned,
      'ping-2': pinned,
      'ping-3': pinned,
      'ping-4': others,
      'ping-5': others,
      'ping-6': others,
    });
    expect(b, logs()).toEqual({
      'ping-1': 'broken',
      'ping-2': 'broken',
      'ping-3': 'broken',
      'ping-4': 'pass',
      'ping-5': 'pass',
      'ping-6': 'pass',
    });
    const [h] = await store.lab.hostHealth('tbad');
    expect(h).toMatchObject({ state: 'quarantined', brokenStreak: 3 });
    expect(logs()).toMatch(
      /HOST QUARANTINED .*host tbad: suspect → quarantined: 3 job\(s\) in a row broken here/,
    );
    const shown = await cli(['hosts', 'health', 'tbad']);
    expect(shown).toMatch(/health\s+quarantined/);
    expect(shown).toMatch(/3 job\(s\) in a row broken here while they passed on other hosts/);
    const all = JSON.parse(await cli(['hosts', 'health', '--json'])) as { host: string; state: string }[];
    expect(all.map((x) => `${x.host}:${x.state}`)).toEqual([
      'g1:good',
      'g2:good',
      'g3:good',
      'tbad:quarantined',
    ]);

    // Health checks fail while sshd is down, and the host stays out of use.
    await waitFor(
      'a failed health check of tbad',
      async () =>
        (await store.listHostEvents('tbad')).some((e) => e.detail.startsWith('health check failed')),
      30_000,
      logs,
      200,
    );
    expect((await store.lab.hostHealth('tbad'))[0]!.state).toBe('quarantined');

    // sshd back: the next check passes and the host is good again.
    await bad.startSshd();
    await waitFor(
      'tbad good again',
      async () => (await store.lab.hostHealth('tbad'))[0]!.state === 'good',
      30_000,
      logs,
      200,
    );
    const events = (await store.listHostEvents('tbad'))
      .filter((e) => e.kind === 'health')
      .map((e) => e.detail);
    expect(events.some((d) => d.startsWith('health check passed'))).toBe(true);
    expect(events.some((d) => /^quarantined → good/.test(d))).toBe(true);

    // And it takes jobs again.
    expect(await runFlight({ 'ping-1': pinned }), logs()).toEqual({ 'ping-1': 'pass' });
    expect((await store.lab.hostHealth('tbad'))[0]).toMatchObject({ state: 'good', brokenStreak: 0 });

    const d = await ws.cli(['worker', '--drain']);
    expect(d.code, d.stderr).toBe(0);
    expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0, 0]);
  }, 150_000);
});
