/**
 * Lab-mode allocation on sqlite (the same code as on PostgreSQL, polling instead of NOTIFY):
 * - the allocator plans again when another worker takes a host between its snapshot and its write;
 * - it ends jobs no host can ever serve, without running them;
 * - ts-hosts-allocate with HostAllocation planner gives a job run by hand its hosts by the planner
 *   (a pair on two hosts of one equivalence class), waits for a held host, and starves after its wait;
 * - `osstest worker --once` runs a queued flight end to end on sqlite, builds sharing a build host;
 * - the command line refuses what it cannot do, naming why.
 * The expensive steps are shell stand-ins in the workspace's TestcasePath (no ssh).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Config } from '../../src/config/config.js';
import type { Store } from '../../src/db/store.js';
import { harnessRevision } from '../../src/executor/paths.js';
import { claimNext, HEALTH_CHECK_RUNVAR, tryOrder } from '../../src/scheduler/allocator.js';
import type { Decision, QueuedJob } from '../../src/scheduler/types.js';
import { createWorkspace, type Workspace } from '../helpers/workspace.js';
import { checkHoldLog } from './lab-store-suite.js';

const SHADOWED = ['ts-build-prep', 'ts-build', 'ts-install-dist', 'ts-run-tests', 'ts-logs-capture'];

let ws: Workspace;
let store: Store;

beforeAll(async () => {
  ws = createWorkspace(['HostAllocation planner', 'WorkerPollSeconds 0.2', 'WorkerLeaseSeconds 5']);
  for (const t of SHADOWED)
    ws.addTestcase(t, '#!/bin/sh\necho "$(basename "$0") for $OSSTEST_JOB"\nsleep 0.3\n');
  store = await ws.openStore();
  const hosts: Record<string, string[]> = {
    sb: ['purpose-build', 'share-build-x-amd64'],
    p1: ['purpose-pair', 'equiv-a'],
    p2: ['purpose-pair', 'equiv-b'],
    p3: ['purpose-pair', 'equiv-a'],
    solo: ['purpose-solo'],
  };
  for (const [h, flags] of Object.entries(hosts)) {
    await store.upsertHost({ name: h, ip: '127.0.0.1' });
    await store.setHostFlags(h, flags);
  }
  await store.setHostProp('sb', 'SharedMaxTasks', '2');
});

afterAll(async () => {
  await store?.close();
  ws?.cleanup();
});

describe('the lab allocator', () => {
  it('plans again when another worker takes the hosts it chose before it writes', async () => {
    const f = (await store.createFlight({ branch: 'race', intended: 'play' })).flight;
    await store.createJob(f, 'j', 'build', { host_hostflags: 'purpose-pair' });
    await store.lab.queueFlight(f, { by: 'test' });
    // The other side: a job of a flight nobody queued, taking hosts directly.
    const g = (await store.createFlight({ branch: 'race', intended: 'play' })).flight;
    await store.createJob(g, 'thief', 'build', {});
    await store.lab.registerWorker({ id: 'me', host: 'test', pid: 1, leaseMs: 60_000, maxJobs: 1 });
    let calls = 0;
    const opts = {
      store,
      config: ws.config(),
      harness: harnessRevision(),
      worker: 'me',
      leaseMs: 60_000,
      // Called while the snapshot is read: the first time, every host the job could use is taken
      // behind the planner's back, so the write of its decision loses.
      identsOf: async () => {
        calls += 1;
        if (calls === 1) {
          const r = await store.lab.takeHosts({
            flight: g,
            job: 'thief',
            holds: [
              { ident: 'a', host: 'p1' },
              { ident: 'b', host: 'p2' },
              { ident: 'c', host: 'p3' },
            ],
          });
          expect(r).toEqual({ ok: true });
        }
        return ['host'];
      },
    };
    const lost = await claimNext(opts);
    expect(lost.replans).toBe(1);
    expect(lost.claimed).toBeUndefined();
    expect(lost.waiting.map((w) => w.key)).toEqual([`${f}/j`]);
    await store.lab.closeJob({ flight: g, job: 'thief', sharesPrepared: false });
    const won = await claimNext(opts);
    expect(won).toMatchObject({ replans: 0, claimed: { flight: f, job: 'j' } });
    expect(['p1', 'p2', 'p3']).toContain(won.claimed!.hosts.host);
    checkHoldLog(await store.lab.holdHistory());
    await store.lab.closeJob({ flight: f, job: 'j', worker: 'me', sharesPrepared: false });
    await store.lab.endWorker('me', 'done');
  });

  it('says whether the plan had more to start (more), and starts workers on different jobs (tryOrder)', async () => {
    const f = (await store.createFlight({ branch: 'more', intended: 'play' })).flight;
    for (const j of ['s1', 's2']) await store.createJob(f, j, 'build', { host_hostflags: 'purpose-pair' });
    await store.lab.queueFlight(f, { by: 'test' });
    await store.lab.registerWorker({ id: 'm1', host: 'test', pid: 1, leaseMs: 60_000, maxJobs: 3 });
    const opts = { store, config: ws.config(), harness: null, worker: 'm1', leaseMs: 60_000 };
    // Two jobs, three hosts: the first claim leaves one to start, the second none.
    const first = await claimNext(opts);
    expect(first.claimed).toBeDefined();
    expect(first.more).toBe(true);
    const second = await claimNext(opts);
    expect(second.claimed).toBeDefined();
    expect(second.more).toBe(false);
    expect(second.claimed!.job).not.toBe(first.claimed!.job);
    const third = await claimNext(opts);
    expect(third.claimed).toBeUndefined();
    expect(third.ms.reading).toBeGreaterThan(0);
    for (const c of [first, second])
      await store.lab.closeJob({ flight: f, job: c.claimed!.job, worker: 'm1', sharesPrepared: false });
    await store.lab.endWorker('m1', 'done');

    // Same plan, different workers: each begins at its own place among the jobs to start now.
    const decisions: Decision[] = ['a', 'b', 'c', 'd'].map((k, i) => ({
      kind: 'allocate',
      key: k,
      hosts: { host: `h${i}` },
      start: 0,
      end: 1,
      warnings: [],
    }));
    decisions.push({ kind: 'wait', key: 'e', reason: 'busy', warnings: [] });
    const queue = ['a', 'b', 'c', 'd', 'e'].map((key) => ({ key, priority: key === 'd' ? 9 : 5 }));
    const firsts = new Set<string>();
    for (const w of ['w0', 'w1', 'w2', 'w3', 'w4', 'w5', 'w6', 'w7']) {
      const order = tryOrder(decisions, queue as unknown as QueuedJob[], w);
      // Every decision once; the lower-priority job and the waiting one keep their places.
      expect(order.map((d) => d.key).sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
      expect(order.slice(3).map((d) => d.key)).toEqual(['d', 'e']);
      firsts.add(order[0]!.key);
    }
    expect(firsts.size).toBeGreaterThan(1);
  });

  it('a health-check claim says there may be more: the rest of the queue was not planned', async () => {
    const f = (await store.createFlight({ branch: 'hc', intended: 'play' })).flight;
    await store.createJob(f, 'check', 'build', { [HEALTH_CHECK_RUNVAR]: 'solo' });
    await store.createJob(f, 'other', 'build', { host_hostflags: 'purpose-pair' });
    await store.lab.queueFlight(f, { by: 'test' });
    await store.lab.registerWorker({ id: 'hc1', host: 'test', pid: 1, leaseMs: 60_000, maxJobs: 2 });
    const opts = { store, config: ws.config(), harness: null, worker: 'hc1', leaseMs: 60_000, maxClaims: 2 };
    const first = await claimNext(opts);
    expect(first.claimed).toMatchObject({ job: 'check', healthCheck: 'solo' });
    // Said as "done", the other workers would take this decision for one that saw the whole queue.
    expect(first.more).toBe(true);
    const second = await claimNext(opts);
    expect(second.claimed).toMatchObject({ job: 'other' });
    for (const j of ['check', 'other'])
      await store.lab.closeJob({ flight: f, job: j, worker: 'hc1', sharesPrepared: false });
    await store.lab.endWorker('hc1', 'done');
  });

  it('ends a job no host can ever serve without running it, and says why', async () => {
    const f = (await store.createFlight({ branch: 'none', intended: 'play' })).flight;
    await store.createJob(f, 'nohost', 'build', { host_hostflags: 'purpose-nothing' });
    await store.lab.queueFlight(f, { by: 'test' });
    await store.lab.registerWorker({ id: 'me2', host: 'test', pid: 1, leaseMs: 60_000, maxJobs: 1 });
    const out = await claimNext({
      store,
      config: ws.config(),
      harness: null,
      worker: 'me2',
      leaseMs: 60_000,
    });
    expect(out.claimed).toBeUndefined();
    expect(out.settled).toMatchObject([{ job: 'nohost', status: 'broken' }]);
    expect((await store.getJob(f, 'nohost'))!.status).toBe('broken');
    expect((await store.getRunvar(f, 'nohost', 'lab_reason'))!.val).toMatch(/no host has purpose-nothing/);
    await store.lab.endWorker('me2', 'done');
  });
});

describe('a job held up behind a busy host', () => {
  it('osstest plan (and --json) shows its booking, writing nothing; after FlightHostWait a worker ends it starved', async () => {
    const g = (await store.createFlight({ branch: 'hold', intended: 'play' })).flight;
    await store.createJob(g, 'holder', 'build', {});
    const now = Date.now();
    expect(
      await store.lab.takeHosts({
        flight: g,
        job: 'holder',
        holds: [{ ident: 'host', host: 'solo' }],
        expectedEnd: now + 20 * 60_000,
      }),
    ).toEqual({ ok: true });
    const f = (await store.createFlight({ branch: 'hungry', intended: 'play' })).flight;
    await store.createJob(f, 'hungry', 'build', { host_hostflags: 'purpose-solo' });
    await store.lab.queueFlight(f, { by: 'test' });

    const text = await ws.cli(['plan']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^5 host\(s\), 0 out of service/);
    expect(text.stdout).toMatch(new RegExp(`${f}/hungry\\s+booked in \\d+s\\s+host=solo\\s+for `));
    const j = await ws.cli(['plan', '--json']);
    expect(j.code, j.stderr).toBe(0);
    const p = JSON.parse(j.stdout) as {
      now: number;
      hosts: { name: string }[];
      spans: Record<string, unknown[]>;
      decisions: { key: string; kind: string; hosts?: Record<string, string>; start?: number }[];
    };
    expect(p.hosts.map((h) => h.name).sort()).toEqual(['p1', 'p2', 'p3', 'sb', 'solo']);
    const d = p.decisions.find((x) => x.key === `${f}/hungry`);
    expect(d).toMatchObject({ kind: 'book', hosts: { host: 'solo' } });
    expect(d!.start).toBeGreaterThanOrEqual(now + 20 * 60_000 - 1000);
    expect(p.spans.solo!.length).toBeGreaterThanOrEqual(2);
    expect((await store.getJob(f, 'hungry'))!.status).toBe('queued');
    expect((await store.lab.listHolds()).map((h) => h.job)).toEqual(['holder']);

    // A worker whose FlightHostWait (1 s) has passed for it ends the job starved, saying why.
    await store.lab.registerWorker({ id: 'me3', host: 'test', pid: 1, leaseMs: 60_000, maxJobs: 1 });
    const out = await claimNext({
      store,
      config: Config.fromText('FlightHostWait 1\n'),
      harness: null,
      worker: 'me3',
      leaseMs: 60_000,
      now: () => Date.now() + 5000,
    });
    expect(out.claimed).toBeUndefined();
    expect(out.settled).toMatchObject([{ flight: f, job: 'hungry', status: 'starved' }]);
    expect((await store.getJob(f, 'hungry'))!.status).toBe('starved');
    expect((await store.getRunvar(f, 'hungry', 'lab_reason'))!.val).toBe(out.settled[0]!.reason);
    await store.lab.closeJob({ flight: g, job: 'holder', sharesPrepared: false });
    expect(await store.lab.completeFlights()).toContainEqual({ flight: f, blessing: 'play' });
    await store.lab.endWorker('me3', 'done');
  });
});

describe('ts-hosts-allocate with the planner (HostAllocation planner)', () => {
  it('gives a pair job two hosts of one equivalence class', async () => {
    const f = (await store.createFlight({ branch: 'by-hand', intended: 'play' })).flight;
    await store.createJob(f, 'pair', 'test-demo', {
      host_idents: 'src_host dst_host',
      all_hostflags: 'purpose-pair',
      src_host_hostflags: 'equiv-1',
      dst_host_hostflags: 'equiv-1',
    });
    const r = await ws.cli(['run-job', f, 'pair']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const src = (await store.getRunvar(f, 'pair', 'src_host'))!.val;
    const dst = (await store.getRunvar(f, 'pair', 'dst_host'))!.val;
    expect([src, dst].sort()).toEqual(['p1', 'p3']);
    expect(await store.lab.listHolds()).toEqual([]);
  });

  it('waits for a held host and gets it once released; starves when the wait runs out', async () => {
    const f = (await store.createFlight({ branch: 'by-hand', intended: 'play' })).flight;
    await store.createJob(f, 'holder', 'build', {});
    await store.createJob(f, 'waiter', 'build', { host_hostflags: 'purpose-solo' });
    await store.createJob(f, 'starver', 'build', { host_hostflags: 'purpose-solo' });
    expect(await store.allocateHost('solo', { flight: f, job: 'holder', ident: 'host' })).toBe(true);
    const waiting = ws.cli(['run-job', f, 'waiter'], { OSSTEST_HOST_ALLOCATE_WAIT: '30' });
    await new Promise((r) => setTimeout(r, 2500));
    await store.releaseHost('solo');
    const r = await waiting;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const log = readFileSync(join(ws.dir, 'logs', f, 'waiter', '1.ts-hosts-allocate.log'), 'utf8');
    expect(log).toMatch(/waiting: /);
    expect(log).toMatch(/host: allocated solo/);

    expect(await store.allocateHost('solo', { flight: f, job: 'holder', ident: 'host' })).toBe(true);
    const s = await ws.cli(['run-job', f, 'starver'], { OSSTEST_HOST_ALLOCATE_WAIT: '1' });
    expect(s.code).toBe(1);
    expect((await store.getJob(f, 'starver'))!.status).toBe('starved');
    await store.releaseHost('solo');
  });
});

describe('osstest worker on sqlite', () => {
  it('--once runs a queued flight: builds share the build host, the test follows its build, the flight is blessed', async () => {
    const f = (await store.createFlight({ branch: 'once', intended: 'play' })).flight;
    const share = { host_hostflags: 'purpose-build,share-build-x-amd64' };
    await store.createJob(f, 'build-1', 'build', share);
    await store.createJob(f, 'build-2', 'build', share);
    await store.createJob(f, 'build-3', 'build', share);
    await store.createJob(f, 'test-1', 'test-demo', { buildjob: 'build-1', all_hostflags: 'purpose-solo' });
    const q = await ws.cli(['flight', 'queue', f]);
    expect(q.code, q.stderr).toBe(0);
    expect(q.stdout).toMatch(/4 job\(s\) for 0 live worker/);
    // --once takes what can start now (build-1, preparing the share), then exits when it is done;
    // a second run takes the joiners, a third the test.
    const outputs: string[] = [];
    for (let i = 0; i < 4 && (await store.getFlight(f))!.blessing !== 'play'; i++) {
      const w = await ws.cli(['worker', '--once', '--max-jobs', '2']);
      expect(w.code, w.stdout + w.stderr).toBe(0);
      outputs.push(w.stdout);
    }
    const all = outputs.join('\n');
    expect(Object.fromEntries((await store.listJobs(f)).map((j) => [j.job, j.status])), all).toEqual({
      'build-1': 'pass',
      'build-2': 'pass',
      'build-3': 'pass',
      'test-1': 'pass',
    });
    expect((await store.getFlight(f))!.blessing).toBe('play');
    expect(all).toMatch(/build-1: running on sb \(start share build-x-amd64\)/);
    expect(all).toMatch(/running on sb \(join share build-x-amd64\)/);
    expect(all).toMatch(/\(sqlite, polling\)/);
    const sharesOf = (await store.lab.holdHistory({ flight: f })).filter(
      (e) => e.host === 'sb' && e.event === 'allocate',
    );
    expect(sharesOf.map((e) => e.share)).toEqual(['build-x-amd64', 'build-x-amd64', 'build-x-amd64']);
    expect((await store.lab.listShares())[0]).toMatchObject({ host: 'sb', state: 'ready', wear: 3 });
    checkHoldLog(await store.lab.holdHistory());
  });

  it('refuses what it cannot do, naming why', async () => {
    const none = await ws.cli(['worker', '--drain']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no live worker on this machine/);
    const q = await ws.cli(['flight', 'queue', 'nosuch']);
    expect(q.code).toBe(2);
    expect(q.stderr).toMatch(/no flight 'nosuch'/);
    const f = (await store.createFlight({ branch: 'circle', intended: 'play' })).flight;
    await store.createJob(f, 'a', 'build', { buildjob: 'b' });
    await store.createJob(f, 'b', 'build', { buildjob: 'a' });
    const c = await ws.cli(['flight', 'queue', f]);
    expect(c.code).toBe(2);
    expect(c.stderr).toMatch(/circle \(a → b → a|circle \(b → a → b/);
    const h = await ws.cli(['hosts', 'health', 'solo', '--set', 'sick']);
    expect(h.code).toBe(2);
    expect(h.stderr).toMatch(/--set sick: must be one of good, suspect, quarantined, maintenance/);
    const g = await ws.cli(['hosts', 'health', 'ghost']);
    expect(g.code).toBe(2);
    expect(g.stderr).toMatch(/no host 'ghost'/);
    const idle = await ws.cli(['worker', '--once'], {}, 30_000);
    expect(idle.code, idle.stderr).toBe(0);
    expect(idle.stdout).toMatch(/ended \(idle\) after 0 job/);
    const list = JSON.parse((await ws.cli(['worker', '--list', '--all', '--json'])).stdout) as {
      ended: number | null;
    }[];
    expect(list.length).toBeGreaterThan(0);
    expect(list.every((w) => w.ended !== null)).toBe(true);
  });
});
