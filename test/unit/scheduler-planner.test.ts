import { describe, expect, it } from 'vitest';
import { SchedulerInputError } from '../../src/scheduler/errors.js';
import { decisionFor, type Plan, PlanCache, plan } from '../../src/scheduler/planner.js';
import type { Decision } from '../../src/scheduler/types.js';
import { HOUR, held, host, MIN, queued, snap } from './scheduler-fixtures.js';

const PAIR = {
  host_idents: 'src_host dst_host',
  src_host_hostflags: 'equiv-1',
  dst_host_hostflags: 'equiv-1',
};

function d(p: Plan, key: string): Decision {
  const x = decisionFor(p, key);
  if (!x) throw new Error(`no decision for ${key}`);
  return x;
}
function placed(
  p: Plan,
  key: string,
): { kind: string; hosts: Record<string, string>; start: number; end: number } {
  const x = d(p, key);
  if (x.kind !== 'allocate' && x.kind !== 'book')
    throw new Error(`${key}: ${x.kind}: ${'reason' in x ? x.reason : ''}`);
  return x;
}

describe('planner: allocate now or book the earliest slot', () => {
  it('a free fitting host is allocated now, a busy lab gives a booking at the first release', () => {
    const hosts = [host('a', ['x']), host('b', ['x'])];
    const p = plan(snap(0, hosts, [queued('j1', { all_hostflags: 'x' })]));
    expect(placed(p, 'j1')).toMatchObject({ kind: 'allocate', hosts: { host: 'a' }, start: 0, end: HOUR });
    const busy = plan(
      snap(
        0,
        hosts,
        [queued('j1', { all_hostflags: 'x' })],
        [held('a', 'o1', 0, 2 * HOUR), held('b', 'o2', 0, HOUR)],
      ),
      { full: true },
    );
    expect(placed(busy, 'j1')).toMatchObject({ kind: 'book', hosts: { host: 'b' }, start: HOUR });
  });

  it('jobs of one plan never get the same host', () => {
    const hosts = [host('a', ['x']), host('b', ['x'])];
    const q = ['j1', 'j2', 'j3'].map((k, i) => queued(k, { all_hostflags: 'x' }, { waitStart: i }));
    const p = plan(snap(0, hosts, q), { full: true });
    expect(placed(p, 'j1').kind).toBe('allocate');
    expect(placed(p, 'j2').kind).toBe('allocate');
    expect(placed(p, 'j1').hosts.host).not.toBe(placed(p, 'j2').hosts.host);
    expect(placed(p, 'j3')).toMatchObject({ kind: 'book', start: HOUR });
  });

  it('a pair books two equivalent hosts; a later small job backfills only where it delays nothing', () => {
    const hosts = [host('a', ['equiv-g']), host('b', ['equiv-g'])];
    const holders = [held('a', 'running', 0, HOUR)];
    const pair = queued('pair', PAIR, { waitStart: 0, durationMs: 2 * HOUR });
    const short = queued('short', {}, { waitStart: 1, durationMs: 30 * MIN });
    const long = queued('long', {}, { waitStart: 2, durationMs: 90 * MIN });
    const alone = plan(snap(10, hosts, [pair], holders), { full: true });
    const p = plan(snap(10, hosts, [pair, short, long], holders), { full: true });
    expect(placed(alone, 'pair')).toMatchObject({ kind: 'book', start: HOUR });
    // The pair's booking is the same with the small jobs in the queue.
    expect(placed(p, 'pair')).toMatchObject({
      kind: 'book',
      start: HOUR,
      hosts: { src_host: 'a', dst_host: 'b' },
    });
    expect(placed(p, 'short')).toMatchObject({ kind: 'allocate', hosts: { host: 'b' }, start: 10 });
    // 90 minutes on b now would run into the pair: booked after it instead.
    expect(placed(p, 'long')).toMatchObject({ kind: 'book', start: 3 * HOUR });
  });

  it('priority beats wait start; wait start orders equal priorities', () => {
    const hosts = [host('a', [])];
    const q = [
      queued('adhoc', {}, { priority: 400, waitStart: 0 }),
      queued('real-late', {}, { priority: 200, waitStart: 50 }),
      queued('real-early', {}, { priority: 200, waitStart: 10 }),
      queued('bisect', {}, { priority: 100, waitStart: 90 }),
    ];
    const p = plan(snap(100, hosts, q), { full: true });
    expect(p.decisions.map((x) => x.key)).toEqual(['bisect', 'real-early', 'real-late', 'adhoc']);
    expect(placed(p, 'bisect').kind).toBe('allocate');
    expect(placed(p, 'adhoc').start).toBe(100 + 3 * HOUR);
  });

  it('an overdue holder is re-estimated from now, not assumed gone', () => {
    const hosts = [host('a', [])];
    const q = [queued('j', {})];
    // Expected 60 min, still there at 90 min: a quarter of the estimate from now (15 min).
    const p = plan(snap(90 * MIN, hosts, q, [held('a', 'slow', 0, HOUR)]), { full: true });
    expect(p.releases.a).toBe(105 * MIN);
    expect(placed(p, 'j')).toMatchObject({ kind: 'book', start: 105 * MIN });
    // Tiny estimates still get the minimum extension; unknown ends get the default hold time.
    const tiny = plan(snap(10 * MIN, hosts, q, [held('a', 'x', 0, MIN)]), {
      full: true,
      overdueMinMs: 5 * MIN,
    });
    expect(tiny.releases.a).toBe(15 * MIN);
    const byHand = plan(snap(0, hosts, q, [held('a', 'ian', 0, null)]), {
      full: true,
      defaultHeldMs: 2 * HOUR,
    });
    expect(byHand.releases.a).toBe(2 * HOUR);
  });

  it('a job that waited past its limit ends starved, and its slot goes to the next job', () => {
    const hosts = [host('a', []), host('b', ['big'])];
    const holders = [held('a', 'r', 0, 3 * HOUR)];
    const q = [
      queued('hungry', {}, { waitStart: 0, starveAfterMs: HOUR }),
      queued('next', {}, { waitStart: 1 }),
      queued('patient', { all_hostflags: 'big' }, { waitStart: 0, starveAfterMs: HOUR }),
    ];
    // b is free, so `hungry` (any host) gets it: past its limit but it can start now.
    const p1 = plan(snap(2 * HOUR, hosts, q, holders), { full: true });
    expect(d(p1, 'hungry').kind).toBe('allocate');
    // With b held too, `hungry` would start at 3h: starved; `next` takes that slot.
    const p2 = plan(snap(2 * HOUR, hosts, q, [...holders, held('b', 'r2', 0, 4 * HOUR)]), { full: true });
    const h = d(p2, 'hungry');
    expect(h.kind).toBe('starved');
    if (h.kind === 'starved') {
      expect(h.waitedMs).toBe(2 * HOUR);
      expect(h.reason).toMatch(
        /waited 120 min, longer than its limit of 60 min; its earliest start is in 60 min/,
      );
    }
    expect(placed(p2, 'next')).toMatchObject({ kind: 'book', start: 3 * HOUR, hosts: { host: 'a' } });
    expect(d(p2, 'patient').kind).toBe('starved');
  });

  it('quarantined and maintenance hosts are never allocated; jobs wait (and may starve), suspect is last resort', () => {
    const q = [queued('j', { all_hostflags: 'x' }, { starveAfterMs: HOUR })];
    const out = [host('a', ['x'], { health: 'quarantined' }), host('b', ['x'], { health: 'maintenance' })];
    const w = d(plan(snap(0, out, q)), 'j');
    expect(w).toMatchObject({ kind: 'wait' });
    if (w.kind === 'wait') expect(w.reason).toMatch(/a quarantined, b maintenance/);
    expect(d(plan(snap(2 * HOUR, out, q)), 'j').kind).toBe('starved');
    const mixed = [
      host('a', ['x'], { health: 'suspect' }),
      host('b', ['x']),
      host('c', ['x'], { health: 'quarantined' }),
    ];
    expect(placed(plan(snap(0, mixed, q)), 'j').hosts.host).toBe('b');
    const onlySuspect = [
      host('a', ['x'], { health: 'suspect' }),
      host('c', ['x'], { health: 'quarantined' }),
    ];
    expect(placed(plan(snap(0, onlySuspect, q)), 'j').hosts.host).toBe('a');
  });

  it('a job no host could ever satisfy is impossible, with the reason', () => {
    const p = plan(snap(0, [host('a', ['arch-amd64'])], [queued('j', { all_hostflags: 'arch-arm64' })]));
    const x = d(p, 'j');
    expect(x.kind).toBe('impossible');
    if (x.kind === 'impossible')
      expect(x.reason).toMatch(/no host has arch-arm64,blessed-real; closest: a lacks arch-arm64/);
  });

  it('reservations (blockages, bookings by hand) are honoured', () => {
    const hosts = [host('a', []), host('b', [])];
    const res = [
      { host: 'a', start: 0, end: 2 * HOUR, label: 'outage' },
      { host: 'b', start: 30 * MIN, end: 2 * HOUR, label: 'outage' },
    ];
    const p = plan(
      snap(0, hosts, [queued('j', {}), queued('short', {}, { durationMs: 20 * MIN })], [], res),
      {
        full: true,
      },
    );
    expect(placed(p, 'j')).toMatchObject({ kind: 'book', start: 2 * HOUR });
    expect(placed(p, 'short')).toMatchObject({ kind: 'allocate', hosts: { host: 'b' } });
  });

  it('pre-set hosts are used even when busy (the job waits for them) and warnings travel with the decision', () => {
    const hosts = [host('a', ['x']), host('b', [])];
    const q = [queued('pinned', { all_hostflags: 'x', host: 'b' })];
    const p = plan(snap(0, hosts, q, [held('b', 'other', 0, HOUR)]), { full: true });
    const x = placed(p, 'pinned');
    expect(x).toMatchObject({ kind: 'book', hosts: { host: 'b' }, start: HOUR });
    expect(d(p, 'pinned').warnings[0]).toMatch(/pre-set host b lacks x/);
  });

  it('duration by host is used for one-host jobs', () => {
    const hosts = [host('a', []), host('b', [])];
    const p = plan(
      snap(
        0,
        hosts,
        [queued('j', {}, { durationMs: HOUR, durationByHost: { b: 10 * MIN } })],
        [],
        [
          { host: 'a', start: 20 * MIN, end: HOUR, label: 'x' },
          { host: 'b', start: 20 * MIN, end: HOUR, label: 'x' },
        ],
      ),
    );
    expect(placed(p, 'j')).toMatchObject({ kind: 'allocate', hosts: { host: 'b' }, end: 10 * MIN });
  });

  it('planning stops early once nothing more can start now; `full` books everything', () => {
    const hosts = [host('a', []), host('b', [])];
    const q = Array.from({ length: 20 }, (_, i) => queued(`j${i}`, {}, { waitStart: i }));
    const p = plan(snap(0, hosts, q));
    expect(p.decisions.filter((x) => x.kind === 'allocate').length).toBe(2);
    expect(p.stoppedEarly).toBe(true);
    expect(p.examined).toBe(2);
    expect(d(p, 'j5')).toMatchObject({ kind: 'wait' });
    const full = plan(snap(0, hosts, q), { full: true });
    expect(full.stoppedEarly).toBe(false);
    expect(placed(full, 'j19')).toMatchObject({ kind: 'book', start: 9 * HOUR });
    // Early stop never changes what is allocated now.
    const now = (x: Plan) => x.decisions.filter((y) => y.kind === 'allocate').map((y) => y.key);
    expect(now(p)).toEqual(now(full));
  });

  it('a cache kept between plans follows changes of host health and flags', () => {
    const cache = new PlanCache();
    const q = [queued('j', { all_hostflags: 'x' })];
    expect(placed(plan(snap(0, [host('a', ['x']), host('b', ['x'])], q), { cache }), 'j').hosts.host).toBe(
      'a',
    );
    const sick = [host('a', ['x'], { health: 'quarantined' }), host('b', ['x'])];
    expect(placed(plan(snap(0, sick, q), { cache }), 'j').hosts.host).toBe('b');
    const reflagged = [host('a', ['x'], { health: 'quarantined' }), host('b', [])];
    expect(d(plan(snap(0, reflagged, q), { cache }), 'j').kind).toBe('wait');
  });

  it('rejects a malformed queue with the job named', () => {
    expect(() => plan(snap(0, [], [queued('j', {}, { durationMs: 0 })]))).toThrow(
      /job j: bad duration estimate 0/,
    );
    expect(() => plan(snap(0, [], [queued('j', {}), queued('j', {})]))).toThrow(SchedulerInputError);
  });
});

describe('planner: cost among hosts free at the same time', () => {
  const four = () => [host('a', ['x']), host('b', ['x']), host('c', ['x']), host('d', ['x'])];

  it('prefers the host where the test last failed, then hosts that have not run it lately', () => {
    const now = 100 * 24 * HOUR;
    const prefs = {
      lastFailedHosts: ['c'],
      lastRanOn: { a: now - HOUR, b: now - 3 * 24 * HOUR, c: now - HOUR, d: now - 2 * HOUR },
    };
    const p = plan(snap(now, four(), [queued('j', { all_hostflags: 'x' }, { prefs })]));
    expect(placed(p, 'j').hosts.host).toBe('c');
    const noFail = { lastRanOn: prefs.lastRanOn };
    // a, d ran it today, b three days ago, c an hour ago: b (never counts as not lately too).
    expect(
      placed(plan(snap(now, four(), [queued('j', { all_hostflags: 'x' }, { prefs: noFail })])), 'j').hosts
        .host,
    ).toBe('b');
  });

  it('the preferred host is not waited for: earliest start comes first', () => {
    const p = plan(
      snap(
        0,
        four(),
        [queued('j', { all_hostflags: 'x' }, { prefs: { lastFailedHosts: ['a'] } })],
        [held('a', 'busy', 0, HOUR)],
      ),
    );
    expect(placed(p, 'j')).toMatchObject({ kind: 'allocate', hosts: { host: 'b' } });
  });

  it('one-host jobs keep off hosts that pairs need; ties break by host name', () => {
    const hosts = [host('e1', ['equiv-g']), host('e2', ['equiv-g']), host('z', [])];
    const q = [queued('single', {}, { waitStart: 0 }), queued('pair', PAIR, { waitStart: 1 })];
    const p = plan(snap(0, hosts, q));
    expect(placed(p, 'single').hosts.host).toBe('z');
    expect(placed(p, 'pair')).toMatchObject({ kind: 'allocate', hosts: { src_host: 'e1', dst_host: 'e2' } });
    const p2 = plan(snap(0, [host('b', []), host('a', [])], [queued('j', {})]));
    expect(placed(p2, 'j').hosts.host).toBe('a');
  });

  it('a pair picks the equivalence group where it can start earliest, then the cheaper one', () => {
    const hosts = [
      host('a1', ['equiv-a']),
      host('a2', ['equiv-a']),
      host('b1', ['equiv-b']),
      host('b2', ['equiv-b']),
    ];
    const p = plan(snap(0, hosts, [queued('pair', PAIR)], [held('a1', 'x', 0, HOUR)]));
    expect(placed(p, 'pair')).toMatchObject({ kind: 'allocate', hosts: { src_host: 'b1', dst_host: 'b2' } });
    const failed = plan(snap(0, hosts, [queued('pair', PAIR, { prefs: { lastFailedHosts: ['a2', 'a1'] } })]));
    expect(Object.values(placed(failed, 'pair').hosts).sort()).toEqual(['a1', 'a2']);
  });
});
