/**
 * The lab part of the store contract (src/db/lab/): workers and leases, the flight queue, claims,
 * holds with shares, reaping, and host health. Run against both stores by defineStoreSuite.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError, StoreError } from '../../src/db/errors.js';
import type { Announcement, HoldEvent, LabWake } from '../../src/db/lab/types.js';
import type { Store } from '../../src/db/store.js';
import { WakeLedger } from '../../src/scheduler/wake-ledger.js';
import type { StoreFixture } from './store-suite.js';

/**
 * Walks the log in order: an exclusive allocate needs the host free of everyone; a share allocate
 * needs no exclusive holder (sharers may be several); a release must be by a holder. Throws on the
 * first violation; returns the most sharers ever seen at once per host.
 */
export function checkHoldLog(events: readonly HoldEvent[]): {
  holds: number;
  maxSharers: Record<string, number>;
} {
  const exclusive = new Map<string, string>();
  const sharers = new Map<string, Set<string>>();
  const maxSharers: Record<string, number> = {};
  let holds = 0;
  for (const e of events) {
    const who = `${e.flight}/${e.job}/${e.ident}`;
    const ex = exclusive.get(e.host);
    const sh = sharers.get(e.host) ?? new Set<string>();
    if (e.event === 'allocate') {
      holds += 1;
      if (ex !== undefined) throw new Error(`event ${e.id}: ${who} got ${e.host} while ${ex} held it`);
      if (e.share === null) {
        if (sh.size > 0)
          throw new Error(`event ${e.id}: ${who} got ${e.host} while it was shared by ${[...sh].join(', ')}`);
        exclusive.set(e.host, who);
      } else {
        sh.add(who);
        sharers.set(e.host, sh);
        maxSharers[e.host] = Math.max(maxSharers[e.host] ?? 0, sh.size);
      }
    } else if (e.share === null) {
      if (ex !== who) throw new Error(`event ${e.id}: ${who} released ${e.host} held by ${ex ?? 'nobody'}`);
      exclusive.delete(e.host);
    } else {
      if (!sh.delete(who))
        throw new Error(`event ${e.id}: ${who} released a slot of ${e.host} it did not hold`);
    }
  }
  return { holds, maxSharers };
}

export function defineLabStoreSuite(label: string, makeStore: () => Promise<StoreFixture>): void {
  describe(`lab store contract (${label})`, () => {
    let fx: StoreFixture;
    let store: Store;
    const others: Store[] = [];
    const T0 = 1_800_000_000_000;

    beforeEach(async () => {
      fx = await makeStore();
      store = fx.store;
      await store.createFlight({ flight: 'f', branch: 'b', intended: 'play' });
      for (const j of ['a', 'b', 'c']) await store.createJob('f', j, 'rec', { host_hostflags: 'x' });
      for (const h of ['h1', 'h2', 'h3']) await store.upsertHost({ name: h });
    });
    afterEach(async () => {
      for (const s of others.splice(0)) await s.close();
      await store.close();
      await fx.cleanup();
    });

    const worker = (id: string, now = T0, leaseMs = 10_000) =>
      store.lab.registerWorker({ id, host: 'm1', pid: 1, leaseMs, maxJobs: 2, now });
    const claim = (job: string, hosts: Record<string, string>, w = 'w1', now = T0, leaseMs = 10_000) =>
      store.lab.takeHosts({
        flight: 'f',
        job,
        holds: Object.entries(hosts).map(([ident, host]) => ({ ident, host })),
        claimFor: w,
        leaseMs,
        now,
      });

    it('registers, renews, drains and ends workers; a worker declared gone cannot renew', async () => {
      const w = await worker('w1');
      expect(w).toMatchObject({
        id: 'w1',
        host: 'm1',
        leaseUntil: T0 + 10_000,
        draining: false,
        ended: null,
      });
      await expect(worker('w1')).rejects.toThrow(ConflictError);
      await store.lab.registerWorker({ id: 'w2', host: 'm2', pid: 2, leaseMs: 1000, maxJobs: 1, now: T0 });
      expect((await store.lab.renewWorker('w1', 5000, T0 + 1000))!.leaseUntil).toBe(T0 + 6000);
      expect((await store.lab.drainWorkers({ host: 'm2' })).map((x) => x.id)).toEqual(['w2']);
      expect((await store.lab.renewWorker('w2', 1000, T0))!.draining).toBe(true);
      expect((await store.lab.drainWorkers({ id: 'nobody' })).length).toBe(0);
      await store.lab.endWorker('w2', 'exited', T0 + 10);
      expect(await store.lab.renewWorker('w2', 1000, T0 + 20)).toBeUndefined();
      expect((await store.lab.listWorkers()).map((x) => x.id)).toEqual(['w1']);
      expect((await store.lab.listWorkers({ all: true })).find((x) => x.id === 'w2')).toMatchObject({
        ended: T0 + 10,
        endReason: 'exited',
      });
    });

    it('queues a flight (not a finished or empty one), lists its jobs with definition runvars, blesses it once done', async () => {
      await expect(store.lab.queueFlight('nope', { by: 't' })).rejects.toThrow(NotFoundError);
      await store.createFlight({ flight: 'empty', branch: 'b', intended: 'play' });
      await expect(store.lab.queueFlight('empty', { by: 't' })).rejects.toThrow(/no jobs/);
      const q = await store.lab.queueFlight('f', { by: 't', priority: 5, now: T0 });
      expect(q).toMatchObject({ flight: 'f', queued: T0, priority: 5, intended: 'play' });
      await store.markFlightStarted('f');
      await store.setRunvar('f', 'a', 'out', 'v', { synth: true });
      const lq = await store.lab.labQueue();
      expect(lq.flights.map((x) => x.flight)).toEqual(['f']);
      expect(lq.jobs.map((j) => j.job)).toEqual(['a', 'b', 'c']);
      expect(lq.jobs[0]!.runvars).toEqual({ host_hostflags: 'x' });
      expect(await store.lab.completeFlights()).toEqual([]);
      for (const j of ['a', 'b']) await store.setJobStatus('f', j, 'pass');
      expect(await store.lab.settleUnclaimed('f', 'c', 'starved', 'waited too long')).toBe(true);
      expect(await store.lab.settleUnclaimed('f', 'c', 'broken', 'again')).toBe(false);
      expect((await store.getRunvar('f', 'c', 'lab_reason'))?.val).toBe('waited too long');
      expect(await store.lab.completeFlights()).toEqual([{ flight: 'f', blessing: 'play' }]);
      expect((await store.getFlight('f'))!.blessing).toBe('play');
      expect((await store.lab.labQueue()).flights).toEqual([]);
      await expect(store.lab.queueFlight('f', { by: 't' })).rejects.toThrow(/finished/);
    });

    it('takes all of a job’s hosts or none, claims a queued job once, for a live worker that is not draining', async () => {
      await worker('w1');
      await worker('w2');
      expect(await claim('a', { host: 'h1' })).toEqual({ ok: true });
      expect(await claim('a', { host: 'h2' })).toMatchObject({
        ok: false,
        why: expect.stringMatching(/claimed by worker w1/),
      });
      const before = await store.lab.holdHistory();
      expect(await claim('b', { src_host: 'h2', dst_host: 'h1' }, 'w2')).toMatchObject({
        ok: false,
        why: expect.stringMatching(/h1 is held by f\/a/),
      });
      expect(await store.lab.holdHistory()).toEqual(before);
      expect((await store.lab.listHolds()).map((h) => h.host)).toEqual(['h1']);
      expect(await claim('b', { src_host: 'h2', dst_host: 'h3' }, 'w2')).toEqual({ ok: true });
      expect((await store.lab.listClaims()).map((c) => `${c.job}:${c.worker}`)).toEqual(['a:w1', 'b:w2']);
      await store.lab.drainWorkers({ id: 'w2' });
      expect(await claim('c', { host: 'h1' }, 'w2')).toMatchObject({
        ok: false,
        why: expect.stringMatching(/draining/),
      });
      await store.setJobStatus('f', 'c', 'preparing');
      expect(await claim('c', { host: 'h1' }, 'w1')).toMatchObject({
        ok: false,
        why: expect.stringMatching(/preparing/),
      });
      await expect(
        store.lab.takeHosts({
          flight: 'f',
          job: 'c',
          holds: [{ ident: 'host', host: 'h1' }],
          claimFor: 'w1',
        }),
      ).rejects.toThrow(/needs a lease/);
      await expect(claim('a', { host: 'h1' }, 'ghost')).rejects.toThrow(NotFoundError);
      // Held hosts, whatever the table, are never given twice; the core allocateHost agrees.
      expect(await store.allocateHost('h3', { flight: 'f', job: 'c', ident: 'host' })).toBe(false);
      checkHoldLog(await store.lab.holdHistory());
    });

    it('refuses hosts in quarantine or maintenance, unless asked for a health check', async () => {
      await worker('w1');
      await store.lab.setHostHealth('h1', 'quarantined', 'by hand', T0);
      await store.lab.setHostHealth('h2', 'maintenance', 'new disk', T0);
      expect(await claim('a', { host: 'h1' })).toMatchObject({ ok: false, why: 'host h1 is quarantined' });
      expect(await claim('a', { host: 'h2' })).toMatchObject({ ok: false, why: 'host h2 is maintenance' });
      expect(
        await store.lab.takeHosts({
          flight: 'f',
          job: 'a',
          holds: [{ ident: 'host', host: 'h1' }],
          claimFor: 'w1',
          leaseMs: 1000,
          outOfService: true,
        }),
      ).toEqual({ ok: true });
    });

    it('takes several jobs in one transaction, each all or none, a later take seeing what the earlier ones took (takeEach)', async () => {
      await worker('w1');
      for (const j of ['d', 'e', 'g']) await store.createJob('f', j, 'rec');
      await store.upsertHost({ name: 'h4' });
      const t = (job: string, hosts: Record<string, string>, share?: object) => ({
        flight: 'f',
        job,
        holds: Object.entries(hosts).map(([ident, host]) => ({ ident, host })),
        ...(share ? { share: share as never } : {}),
        claimFor: 'w1',
        leaseMs: 1000,
        now: T0,
      });
      expect(await store.lab.takeEach([])).toEqual([]);
      const got = await store.lab.takeEach([
        t('a', { host: 'h1' }),
        // h1 went to a just before, in this same transaction: refused, and refusing it takes nothing.
        t('b', { x: 'h2', y: 'h1' }),
        t('c', { x: 'h2', y: 'h3' }),
        // c was just given its hosts: not twice.
        t('c', { host: 'h4' }),
      ]);
      expect(got).toEqual([
        { ok: true },
        { ok: false, why: expect.stringMatching(/host h1 is held by f\/a \(host\)/) },
        { ok: true },
        { ok: false, why: expect.stringMatching(/f\/c/) },
      ]);
      expect((await store.lab.listHolds()).map((h) => `${h.job}:${h.host}`).sort()).toEqual([
        'a:h1',
        'c:h2',
        'c:h3',
      ]);
      expect((await store.lab.listClaims()).map((c) => c.job).sort()).toEqual(['a', 'c']);
      // A share: started and joined in one go is refused (still being prepared); once ready, two
      // joins for one free slot: the first gets it.
      const share = { host: 'h4', type: 'build-x', harness: 'abc' };
      expect(
        await store.lab.takeEach([
          t('b', { host: 'h4' }, { ...share, action: 'start', slots: 2, wearLimit: 5 }),
          t('d', { host: 'h4' }, { ...share, action: 'join' }),
          // An exclusive take of a host just started as a share: refused too.
          t('e', { host: 'h4' }),
        ]),
      ).toEqual([
        { ok: true },
        { ok: false, why: expect.stringMatching(/being prepared/) },
        { ok: false, why: expect.stringMatching(/shared by 1/) },
      ]);
      expect(await store.lab.markShareReady('h4', { flight: 'f', job: 'b' })).toBe(true);
      expect(
        await store.lab.takeEach([
          t('d', { host: 'h4' }, { ...share, action: 'join' }),
          t('e', { host: 'h4' }, { ...share, action: 'join' }),
          t('g', { host: 'h4' }, { ...share, action: 'join' }),
        ]),
      ).toEqual([
        { ok: true },
        { ok: false, why: expect.stringMatching(/every slot of h4/) },
        { ok: false, why: expect.stringMatching(/every slot of h4/) },
      ]);
      expect((await store.lab.listShares())[0]).toMatchObject({ host: 'h4', wear: 2, holders: 2 });
      checkHoldLog(await store.lab.holdHistory());
    });

    it('shares a build host: started in prep, joined once ready, up to its slots; exclusive use waits for the sharers', async () => {
      await worker('w1');
      const share = { type: 'build-x', harness: 'abc' };
      const take = (job: string, s: object) =>
        store.lab.takeHosts({
          flight: 'f',
          job,
          holds: [{ ident: 'host', host: 'h1' }],
          share: { host: 'h1', ...share, ...s } as never,
          claimFor: 'w1',
          leaseMs: 1000,
          now: T0,
        });
      expect(await take('a', { action: 'start', slots: 2, wearLimit: 5 })).toEqual({ ok: true });
      expect(await take('b', { action: 'join' })).toMatchObject({ ok: false, why: /being prepared/ });
      expect(await store.lab.markShareReady('h1', { flight: 'f', job: 'b' })).toBe(false);
      expect(await store.lab.markShareReady('h1', { flight: 'f', job: 'a' })).toBe(true);
      expect(await take('b', { action: 'join', harness: 'other' })).toMatchObject({
        ok: false,
        why: /harness abc/,
      });
      expect(await take('b', { action: 'join' })).toEqual({ ok: true });
      expect(await take('c', { action: 'join' })).toMatchObject({ ok: false, why: /every slot/ });
      expect(await claim('c', { host: 'h1' })).toMatchObject({ ok: false, why: /shared by 2/ });
      expect((await store.lab.listShares())[0]).toMatchObject({
        host: 'h1',
        state: 'ready',
        wear: 2,
        holders: 2,
      });
      expect((await store.lab.listHolds()).map((h) => `${h.job}:${h.share}`)).toEqual([
        'a:build-x',
        'b:build-x',
      ]);
      // The sharers go; the share stays ready for the next; an exclusive job then ends it.
      await store.lab.closeJob({ flight: 'f', job: 'a', sharesPrepared: true });
      await store.lab.closeJob({ flight: 'f', job: 'b', sharesPrepared: false });
      expect((await store.lab.listShares())[0]).toMatchObject({ state: 'ready', holders: 0 });
      expect(await claim('c', { host: 'h1' })).toEqual({ ok: true });
      expect(await store.lab.listShares()).toEqual([]);
      const log = await store.lab.holdHistory({ host: 'h1' });
      expect(log.map((e) => `${e.event} ${e.job} ${e.share}`)).toEqual([
        'allocate a build-x',
        'allocate b build-x',
        'release a build-x',
        'release b build-x',
        'allocate c null',
      ]);
      expect(checkHoldLog(log).maxSharers.h1).toBe(2);
    });

    it('a share whose preparer ends without preparing it is dropped', async () => {
      await worker('w1');
      await store.lab.takeHosts({
        flight: 'f',
        job: 'a',
        holds: [{ ident: 'host', host: 'h1' }],
        share: { action: 'start', host: 'h1', type: 'build-x', harness: 'abc', slots: 2, wearLimit: 5 },
        claimFor: 'w1',
        leaseMs: 1000,
      });
      expect(
        (await store.lab.closeJob({ flight: 'f', job: 'a', worker: 'w1', sharesPrepared: false })).status,
      ).toBe('broken');
      expect(await store.lab.listShares()).toEqual([]);
      expect(await store.lab.listClaims()).toEqual([]);
    });

    it('renewing a worker renews its claims and their holds; a lapsed worker’s jobs break and its hosts return after the grace', async () => {
      await worker('w1', T0, 1000);
      await worker('w2', T0, 1000);
      expect(await claim('a', { host: 'h1' }, 'w1', T0, 1000)).toEqual({ ok: true });
      expect(await claim('b', { host: 'h2' }, 'w2', T0, 1000)).toEqual({ ok: true });
      await store.markFlightStarted('f');
      await store.setJobStatus('f', 'a', 'running');
      const s1 = await store.startStep('f', 'a', { testcase: 'ts-one', testid: 'one', started: T0 });
      await store.finishStep('f', 'a', s1.stepno, {
        status: 'pass',
        finished: T0 + 1,
        logPath: 'f/a/1.ts-one.log',
      });
      await store.startStep('f', 'a', { testcase: 'ts-two', testid: 'two', started: T0 + 2 });
      // w2 renews; w1 does not.
      await store.lab.renewWorker('w2', 1000, T0 + 900);
      expect((await store.lab.listHolds()).map((h) => `${h.host}:${h.leaseUntil}`)).toEqual([
        `h1:${T0 + 1000}`,
        `h2:${T0 + 1900}`,
      ]);
      const r1 = await store.lab.reapExpired({ graceMs: 500, now: T0 + 1200 });
      expect(r1.workers.map((w) => w.id)).toEqual(['w1']);
      expect(r1.jobs).toEqual([{ flight: 'f', job: 'a', worker: 'w1', status: 'broken', stepsClosed: [2] }]);
      expect(r1.released).toEqual([]);
      expect((await store.getJob('f', 'a'))!.status).toBe('broken');
      const steps = await store.listSteps('f', 'a');
      expect(steps.map((s) => `${s.stepno}:${s.status}:${s.logPath}`)).toEqual([
        '1:pass:f/a/1.ts-one.log',
        '2:broken:f/a/2.ts-two.log',
      ]);
      expect(steps[1]!.finished).toBe(T0 + 1200);
      expect(await store.lab.renewWorker('w1', 1000, T0 + 1300)).toBeUndefined();
      // Before the grace has passed the host is still held; after it, released by anyone, logged.
      expect((await store.lab.reapExpired({ graceMs: 500, now: T0 + 1400 })).released).toEqual([]);
      const r2 = await store.lab.reapExpired({ graceMs: 500, now: T0 + 1600 });
      expect(r2.released.map((h) => `${h.host}:${h.job}`)).toEqual(['h1:a']);
      expect((await store.lab.listHolds()).map((h) => h.host)).toEqual(['h2']);
      expect((await store.listHostEvents('h1')).map((e) => e.kind)).toContain('lease');
      expect((await store.lab.listClaims()).map((c) => c.job)).toEqual(['b']);
      checkHoldLog(await store.lab.holdHistory());
    });

    it('counts broken jobs against a host only when the same job passed elsewhere; quarantines at N; a health check brings it back', async () => {
      await store.createFlight({ flight: 'old', branch: 'b', intended: 'play' });
      for (const j of ['a', 'b']) {
        await store.createJob('old', j, 'rec');
        expect(await store.allocateHost('h2', { flight: 'old', job: j, ident: 'host' })).toBe(true);
        await store.releaseHost('h2');
        await store.setJobStatus('old', j, 'pass');
      }
      const out = (job: string, status: 'broken' | 'pass', now: number) =>
        store.lab.recordJobOutcome({
          flight: 'f',
          job,
          status,
          hosts: ['h1'],
          quarantineAfter: 2,
          lookbackMs: 3600_000,
          now,
        });
      // c never passed anywhere: its breaking says nothing about h1.
      expect(await out('c', 'broken', Date.now())).toEqual([]);
      expect(await out('a', 'broken', Date.now())).toMatchObject([
        { host: 'h1', from: 'good', to: 'suspect', brokenStreak: 1 },
      ]);
      const q = await out('b', 'broken', Date.now());
      expect(q).toMatchObject([{ host: 'h1', from: 'suspect', to: 'quarantined', brokenStreak: 2 }]);
      expect(q[0]!.reason).toMatch(/2 job\(s\) in a row broken here while they passed on other hosts/);
      const [h] = await store.lab.hostHealth('h1');
      expect(h).toMatchObject({ state: 'quarantined', brokenStreak: 2 });
      expect((await store.listHostEvents('h1')).filter((e) => e.kind === 'health')).toHaveLength(2);
      // A health check is due at most once per interval, and not while one is pending.
      expect(await store.lab.startHealthCheck('h1', 60_000, T0)).toBe(true);
      expect(await store.lab.startHealthCheck('h1', 60_000, T0 + 30_000)).toBe(false);
      expect(await store.lab.startHealthCheck('h1', 60_000, T0 + 70_000)).toBe(true);
      await store.lab.setHealthCheckFlight('h1', 'hc1');
      expect(await store.lab.startHealthCheck('h1', 60_000, T0 + 200_000)).toBe(false);
      expect(await store.lab.recordHealthCheck('h1', false, 'ssh refused', T0 + 200_001)).toBeUndefined();
      expect((await store.lab.hostHealth('h1'))[0]).toMatchObject({
        state: 'quarantined',
        checkFlight: null,
      });
      expect(await store.lab.startHealthCheck('h1', 60_000, T0 + 200_002)).toBe(true);
      expect(await store.lab.recordHealthCheck('h1', true, 'flight hc2', T0 + 280_000)).toMatchObject({
        from: 'quarantined',
        to: 'good',
        brokenStreak: 0,
      });
      expect(await store.lab.startHealthCheck('h1', 0, T0 + 300_000)).toBe(false);
      // A pass resets the streak of a suspect host.
      await out('a', 'broken', Date.now());
      expect(await out('a', 'pass', Date.now())).toMatchObject([{ to: 'good' }]);
      expect((await store.lab.hostHealth('h1'))[0]!.brokenStreak).toBe(0);
    });

    it('sets health by hand, names unknown hosts and states', async () => {
      expect((await store.lab.hostHealth()).map((h) => `${h.host}:${h.state}`)).toEqual([
        'h1:good',
        'h2:good',
        'h3:good',
      ]);
      expect(await store.lab.setHostHealth('h3', 'maintenance', 'new disk', T0)).toMatchObject({
        from: 'good',
        to: 'maintenance',
      });
      expect((await store.lab.hostHealth('h3'))[0]).toMatchObject({
        state: 'maintenance',
        reason: 'new disk',
        since: T0,
      });
      await expect(store.lab.setHostHealth('ghost', 'good', 'x')).rejects.toThrow(NotFoundError);
      await expect(store.lab.setHostHealth('h3', 'sick' as never, 'x')).rejects.toThrow(StoreError);
      await expect(store.lab.hostHealth('ghost')).rejects.toThrow(NotFoundError);
    });

    it('reserves hosts (blockages, by hand): lists current ones, refuses overlaps by hand, ends and removes them; takeHosts refuses a reserved host', async () => {
      const H = 3600_000;
      const block = await store.lab.addReservations({
        hosts: ['h2', 'h1'],
        start: T0 + H,
        end: T0 + 2 * H,
        kind: 'blockage',
        owner: 'ops',
        label: 'power work',
        now: T0,
      });
      expect(block.map((r) => [r.host, r.start, r.end, r.kind, r.owner, r.label, r.created])).toEqual([
        ['h1', T0 + H, T0 + 2 * H, 'blockage', 'ops', 'power work', T0],
        ['h2', T0 + H, T0 + 2 * H, 'blockage', 'ops', 'power work', T0],
      ]);
      // Blockages may overlap each other; bad input is refused and makes nothing.
      await store.lab.addReservations({
        hosts: ['h1'],
        start: T0,
        end: T0 + 3 * H,
        kind: 'blockage',
        owner: 'ops',
        label: 'more',
        now: T0,
      });
      const base = {
        start: T0,
        end: T0 + H,
        kind: 'manual' as const,
        owner: 'me',
        label: 'by hand',
        now: T0,
      };
      await expect(store.lab.addReservations({ ...base, hosts: ['h3', 'ghost'] })).rejects.toThrow(
        NotFoundError,
      );
      await expect(store.lab.addReservations({ ...base, hosts: ['h3'], end: T0 })).rejects.toThrow(
        /must end after it starts/,
      );
      await expect(store.lab.addReservations({ ...base, hosts: [] })).rejects.toThrow(StoreError);
      await expect(
        store.lab.addReservations({ ...base, hosts: ['h3'], kind: 'holiday' as never }),
      ).rejects.toThrow(/not one of blockage, manual/);
      expect((await store.lab.listReservations()).length).toBe(3);

      // By hand (exclusive): all or none, refused while a job holds the host or a reservation covers it.
      await worker('w1');
      expect(await claim('a', { host: 'h3' })).toEqual({ ok: true });
      await expect(store.lab.addReservations({ ...base, hosts: ['h3'], exclusive: true })).rejects.toThrow(
        /host h3 is held by f\/a \(host\)/,
      );
      await expect(store.lab.addReservations({ ...base, hosts: ['h1'], exclusive: true })).rejects.toThrow(
        ConflictError,
      );
      await store.lab.closeJob({ flight: 'f', job: 'a', worker: 'w1', sharesPrepared: false, now: T0 });
      await expect(
        store.lab.addReservations({ ...base, hosts: ['h3', 'h1'], exclusive: true }),
      ).rejects.toThrow(/host h1 is reserved \(blockage \d+ by ops/);
      expect((await store.lab.listReservations()).length).toBe(3);
      const mine = await store.lab.addReservations({ ...base, hosts: ['h3'], exclusive: true });
      expect(mine).toMatchObject([{ host: 'h3', kind: 'manual', owner: 'me', start: T0, end: T0 + H }]);

      // A job is not given a host reserved now.
      const take = await claim('b', { host: 'h3' }, 'w1', T0 + 1000);
      expect(take.ok).toBe(false);
      expect(take.ok ? '' : take.why).toMatch(/host h3 is reserved \(manual \d+ by me/);
      expect(await claim('b', { host: 'h2' }, 'w1', T0 + 1000)).toEqual({ ok: true });

      // Ending: only the owner's, of that kind; one under way ends now, one to come is deleted.
      expect(
        await store.lab.endReservations({ hosts: ['h3'], owner: 'you', kind: 'manual', now: T0 + 10 }),
      ).toEqual([]);
      const ended = await store.lab.endReservations({
        hosts: ['h3'],
        owner: 'me',
        kind: 'manual',
        now: T0 + 10,
      });
      expect(ended.map((r) => r.id)).toEqual([mine[0]!.id]);
      expect((await store.lab.listReservations()).find((r) => r.id === mine[0]!.id)!.end).toBe(T0 + 10);
      expect(await claim('c', { host: 'h3' }, 'w1', T0 + 20)).toEqual({ ok: true });
      const later = await store.lab.addReservations({
        ...base,
        hosts: ['h2'],
        start: T0 + 5 * H,
        end: T0 + 6 * H,
      });
      await store.lab.endReservations({ hosts: ['h2'], owner: 'me', kind: 'manual', now: T0 + 30 });
      expect((await store.lab.listReservations()).some((r) => r.id === later[0]!.id)).toBe(false);

      // current: not yet over at now.
      expect(
        (await store.lab.listReservations({ current: true, now: T0 + 2 * H })).map((r) => [r.host, r.label]),
      ).toEqual([['h1', 'more']]);
      expect(await store.lab.removeReservation(block[0]!.id)).toMatchObject({ id: block[0]!.id, host: 'h1' });
      expect(await store.lab.removeReservation(block[0]!.id)).toBeUndefined();
      expect((await store.lab.listReservations()).map((r) => r.label).sort()).toEqual([
        'by hand',
        'more',
        'power work',
      ]);
      expect((await store.listHostEvents('h1')).filter((e) => e.kind === 'reservation').length).toBe(3);
    });

    it('reads the lab for the allocator at one moment: the same as the separate reads; known runvars and unchanged history left out', async () => {
      await store.setHostFlags('h1', ['x', 'fast']);
      await store.setHostProp('h2', 'Quote', "it's a \\ back'slash");
      await store.lab.setHostHealth('h3', 'maintenance', 'cabling', T0);
      await store.createFlight({ flight: 'g', branch: 'b', intended: 'real' });
      await store.createJob('g', 'a', 'rec', { host_hostflags: "x,it's" });
      await store.lab.queueFlight('f', { by: 't', now: T0 });
      await store.lab.queueFlight('g', { by: 't', now: T0 + 1 });
      await worker('w1');
      // One run of job `a` in flight f, to make history.
      expect((await claim('a', { host: 'h1' })).ok).toBe(true);
      const st = await store.startStep('f', 'a', { testcase: 'ts-x', testid: 'x', started: T0 });
      await store.finishStep('f', 'a', st.stepno, { status: 'pass', finished: T0 + 60_000 });
      await store.setJobStatus('f', 'a', 'pass');
      await store.lab.closeJob({
        flight: 'f',
        job: 'a',
        worker: 'w1',
        sharesPrepared: false,
        now: T0 + 60_000,
      });
      await store.lab.addReservations({
        hosts: ['h2'],
        start: T0 + 3_600_000,
        end: T0 + 7_200_000,
        kind: 'blockage',
        owner: 'ops',
        label: 'power work',
        now: T0,
      });
      const now = T0 + 120_000;
      const s = await store.lab.schedulerState({ now, historySince: 0, alsoJobs: ['elsewhere'] });
      const hosts = await store.listHosts();
      expect(s.hosts).toEqual(hosts.map((h) => ({ name: h.name, flags: h.flags, props: h.props })));
      expect(s.hosts.find((h) => h.name === 'h2')!.props).toEqual({ Quote: "it's a \\ back'slash" });
      expect(s.health).toEqual(await store.lab.hostHealth());
      expect(s.shares).toEqual(await store.lab.listShares());
      expect(s.holds).toEqual(await store.lab.listHolds());
      expect(s.queue).toEqual(await store.lab.labQueue());
      expect(s.queue.jobs.find((j) => j.flight === 'g')!.runvars).toEqual({ host_hostflags: "x,it's" });
      expect(s.reservations).toEqual(await store.lab.listReservations({ current: true, now }));
      expect(s.history).toEqual(await store.lab.pastRuns(['a', 'b', 'c'], { since: 0 }));
      expect(s.history!.map((r) => [r.flight, r.job, r.status, r.hosts])).toEqual([
        ['f', 'a', 'pass', ['h1']],
      ]);
      // Runvars of flights the caller knows are not read again.
      const known = await store.lab.schedulerState({ now, historySince: 0, runvarsKnown: ['g'] });
      expect(known.queue.jobs.find((j) => j.flight === 'g')!.runvars).toEqual({});
      expect(known.queue.jobs.find((j) => j.flight === 'f' && j.job === 'b')!.runvars).toEqual({
        host_hostflags: 'x',
      });
      // The history alone (read by a worker before its turn): the same runs and mark, and the queued
      // jobs' names; none when skipped or when the mark has not moved.
      const h = await store.lab.jobHistory({ since: 0 });
      expect(h.mark).toBe(s.historyMark);
      expect(h.runs).toEqual(await store.lab.pastRuns(['a', 'b', 'c'], { since: 0 }));
      expect([...h.queuedJobs].sort()).toEqual(['a', 'b', 'c']);
      expect(await store.lab.jobHistory({ since: 0, history: { unlessMark: h.mark } })).toEqual({
        mark: h.mark,
        queuedJobs: h.queuedJobs,
      });
      expect((await store.lab.jobHistory({ since: 0, history: 'skip' })).runs).toBeUndefined();
      // A dependency's end is its last step's; jobs come in byte order of flight, then job.
      expect(s.queue.jobs.find((j) => j.flight === 'f' && j.job === 'a')!.lastFinished).toBe(T0 + 60_000);
      const order = s.queue.jobs.map((j) => `${j.flight} ${j.job}`);
      expect(order).toEqual([...order].sort());
      // Every queued flight known and history skipped: those statements are not run, the rest is the same.
      const lean = await store.lab.schedulerState({
        now,
        historySince: 0,
        runvarsKnown: ['f', 'g'],
        history: 'skip',
      });
      expect(lean.queue.jobs.every((j) => Object.keys(j.runvars).length === 0)).toBe(true);
      expect(lean.queue.jobs.map((j) => ({ ...j, runvars: {} }))).toEqual(
        s.queue.jobs.map((j) => ({ ...j, runvars: {} })),
      );
      expect([lean.hosts, lean.reservations, lean.historyMark, lean.history]).toEqual([
        s.hosts,
        s.reservations,
        s.historyMark,
        undefined,
      ]);
      // History: skipped when asked; read only when its mark moved.
      expect(
        (await store.lab.schedulerState({ now, historySince: 0, history: 'skip' })).history,
      ).toBeUndefined();
      const same = await store.lab.schedulerState({
        now,
        historySince: 0,
        history: { unlessMark: s.historyMark },
      });
      expect(same.history).toBeUndefined();
      expect(same.historyMark).toBe(s.historyMark);
      expect((await claim('b', { host: 'h1' }, 'w1', now)).ok).toBe(true);
      await store.setJobStatus('f', 'b', 'fail');
      await store.lab.closeJob({ flight: 'f', job: 'b', worker: 'w1', sharesPrepared: false, now: now + 1 });
      const moved = await store.lab.schedulerState({
        now,
        historySince: 0,
        history: { unlessMark: s.historyMark },
      });
      expect(moved.historyMark).not.toBe(s.historyMark);
      expect(moved.history).toBeDefined();
    });

    it('lets one decision run at a time across connections (deciding)', async () => {
      const other = fx.reopen ? await fx.reopen() : store;
      if (other !== store) others.push(other);
      let inside = 0;
      let most = 0;
      const decide = (s: Store) =>
        s.lab.deciding(async () => {
          inside += 1;
          most = Math.max(most, inside);
          await new Promise((r) => setTimeout(r, 30));
          inside -= 1;
        });
      await Promise.all([decide(store), decide(other), decide(store), decide(other)]);
      // sqlite runs decisions as they come (its takes wait for the one writer); PostgreSQL takes turns.
      if (store.kind === 'postgres') expect(most).toBe(1);
      expect(inside).toBe(0);
      // A decision that throws lets the next one in.
      await expect(store.lab.deciding(() => Promise.reject(new Error('planner broke')))).rejects.toThrow(
        'planner broke',
      );
      await expect(other.lab.deciding(async () => 'next')).resolves.toBe('next');
    });

    it('names the transaction in change notifications and carries decisions to other workers (PostgreSQL)', async () => {
      if (!store.lab.notifies) {
        // sqlite has no NOTIFY (its workers poll): no snapshot to announce, and announcing does nothing.
        expect(store.kind).toBe('sqlite');
        const s = await store.lab.schedulerState({ now: T0, historySince: 0 });
        expect(s.snapshot).toBeUndefined();
        const said = await store.lab.deciding(
          async () => 'decided',
          undefined,
          () => ({ snapshot: s.snapshot, more: false }),
        );
        expect(said).toBe('decided');
        return;
      }
      // A decision's announcement, said as the turn is given up.
      const announce = (a: Announcement) =>
        store.lab.deciding(
          async () => undefined,
          undefined,
          () => a,
        );
      const other = fx.reopen ? await fx.reopen() : store;
      if (other !== store) others.push(other);
      const heard: LabWake[] = [];
      const stop = await other.lab.listen((_what, w) => heard.push(w));
      try {
        const until = async (n: number) => {
          for (let i = 0; i < 200 && heard.length < n; i++) await new Promise((r) => setTimeout(r, 10));
          expect(heard.length).toBeGreaterThanOrEqual(n);
        };
        await store.lab.queueFlight('f', { by: 't', now: T0 });
        await until(1);
        expect(heard[0]!.what).toBe('queue');
        const xid = heard[0]!.xid!;
        expect(typeof xid).toBe('bigint');
        // A snapshot read after that commit sees it: a worker woken by it need not decide again.
        const s = await store.lab.schedulerState({ now: T0, historySince: 0 });
        const ledger = new WakeLedger();
        ledger.deciding();
        ledger.changed(xid);
        expect(ledger.needed).toBe(true);
        await announce({ snapshot: s.snapshot, more: false, due: T0 + 5_000 });
        await until(2);
        const d = heard[1]!.decided!;
        expect(d).toEqual({ snapshot: s.snapshot, more: false, due: T0 + 5_000 });
        ledger.decided(d.snapshot, d.more, d.due, T0, heard[1]!.xid);
        expect(ledger.needed).toBe(false);
        // A decision that left more names its own transaction: work for whoever decides next, done
        // once a decision that saw that transaction finds nothing more.
        await announce({ snapshot: s.snapshot, more: true, due: Number.POSITIVE_INFINITY });
        await until(3);
        const more = heard[2]!;
        expect(more.decided).toEqual({ snapshot: s.snapshot, more: true, due: Number.POSITIVE_INFINITY });
        expect(more.xid! > xid).toBe(true);
        ledger.decided(more.decided!.snapshot, true, more.decided!.due, T0, more.xid);
        expect(ledger.needed).toBe(true);
        // The same old snapshot does not see the announcement; a fresh one does.
        ledger.decided(s.snapshot, false, undefined, T0);
        expect(ledger.needed).toBe(true);
        const later = await store.lab.schedulerState({ now: T0, historySince: 0 });
        ledger.decided(later.snapshot, false, undefined, T0);
        expect(ledger.needed).toBe(false);
      } finally {
        await stop();
      }
    });

    it('gives a host to one claimer when two connections race for it', async () => {
      const other = fx.reopen ? await fx.reopen() : store;
      if (other !== store) others.push(other);
      await worker('w1');
      await worker('w2');
      for (let round = 0; round < 10; round++) {
        const host = `r${round}`;
        await store.upsertHost({ name: host });
        await store.createJob('f', `x${round}`, 'rec');
        await store.createJob('f', `y${round}`, 'rec');
        const [p, q] = await Promise.all([
          store.lab.takeHosts({
            flight: 'f',
            job: `x${round}`,
            holds: [{ ident: 'host', host }],
            claimFor: 'w1',
            leaseMs: 1000,
          }),
          other.lab.takeHosts({
            flight: 'f',
            job: `y${round}`,
            holds: [{ ident: 'host', host }],
            claimFor: 'w2',
            leaseMs: 1000,
          }),
        ]);
        expect([p.ok, q.ok].filter(Boolean)).toHaveLength(1);
      }
      checkHoldLog(await store.lab.holdHistory());
    });
  });
}
