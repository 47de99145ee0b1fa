import { describe, expect, it } from 'vitest';
import { compareCost, recencyBucket } from '../../src/scheduler/cost.js';
import { SchedulerInputError } from '../../src/scheduler/errors.js';
import {
  estimateDuration,
  estimatesByHost,
  expectedRelease,
  type PastRun,
} from '../../src/scheduler/estimate.js';
import { defaultPriority, PRIORITY, resourcePriority } from '../../src/scheduler/priority.js';
import { HOUR, MIN } from './scheduler-fixtures.js';

const run = (hosts: string[], min: number, finished: number, status = 'pass'): PastRun => ({
  hosts,
  durationMs: min * MIN,
  finished,
  status,
});

describe('duration estimates', () => {
  const history = [
    run(['a'], 10, 1),
    run(['b'], 50, 2),
    run(['a'], 12, 3),
    run(['b'], 40, 4),
    run(['b'], 45, 5),
    run(['a'], 3, 6, 'broken'),
    run(['c'], 30, 7),
  ];

  it('median of the last N complete runs; broken runs do not count', () => {
    // Last 5 complete: c30, b45, b40, a12, b50 → 40.
    expect(estimateDuration(history)).toEqual({ ms: 40 * MIN, basis: 'job', samples: 5 });
    expect(estimateDuration(history, { lastN: 2 })).toEqual({ ms: 37.5 * MIN, basis: 'job', samples: 2 });
  });

  it('the same host preferred when it has enough runs', () => {
    expect(estimateDuration(history, { hosts: ['a'] })).toEqual({
      ms: 11 * MIN,
      basis: 'same-host',
      samples: 2,
    });
    // c has one run only: the job's estimate.
    expect(estimateDuration(history, { hosts: ['c'] }).basis).toBe('job');
    expect(estimatesByHost(history, ['a', 'b', 'c'])).toEqual({ a: 11 * MIN, b: 45 * MIN });
  });

  it('per-host estimates agree with estimateDuration on each host (random histories, pairs included)', () => {
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const names = ['a', 'b', 'c', 'd', 'e'];
    for (let k = 0; k < 200; k++) {
      const h: PastRun[] = [];
      for (let i = rnd(25); i > 0; i--) {
        const hosts = rnd(3) === 0 ? [names[rnd(5)]!, names[rnd(5)]!] : [names[rnd(5)]!];
        h.push(run(hosts, 1 + rnd(90), rnd(1000), rnd(6) === 0 ? 'broken' : 'pass'));
      }
      const opts = { lastN: 1 + rnd(6), minSameHost: 1 + rnd(3) };
      const want: Record<string, number> = {};
      for (const x of names) {
        const e = estimateDuration(h, { ...opts, hosts: [x] });
        if (e.basis === 'same-host') want[x] = e.ms;
      }
      expect(estimatesByHost(h, names, opts)).toEqual(want);
    }
  });

  it('a default for a job never seen; a bad duration is refused', () => {
    expect(estimateDuration([], { defaultMs: 2 * HOUR })).toEqual({
      ms: 2 * HOUR,
      basis: 'default',
      samples: 0,
    });
    expect(() => estimateDuration([run(['a'], Number.NaN, 1)])).toThrow(SchedulerInputError);
  });

  it('overdue holders are given a fraction of their estimate from now', () => {
    const a = { since: 0, expectedEnd: HOUR };
    expect(expectedRelease(a, 30 * MIN)).toBe(HOUR);
    expect(expectedRelease(a, 2 * HOUR)).toBe(2 * HOUR + 15 * MIN);
    expect(expectedRelease(a, 2 * HOUR, { overdueFraction: 0.5 })).toBe(2 * HOUR + 30 * MIN);
    expect(expectedRelease({ since: 0, expectedEnd: MIN }, 2 * MIN)).toBe(7 * MIN);
    expect(expectedRelease({ since: 0, expectedEnd: null }, 0, { defaultHeldMs: 3 * HOUR })).toBe(3 * HOUR);
  });
});

describe('priorities', () => {
  it('bisection before real before play before ad hoc; lower is sooner', () => {
    const order = ['adhoc', 'play', 'real', 'real-bisect', 'commission'].sort(
      (a, b) => defaultPriority(a) - defaultPriority(b),
    );
    expect(order).toEqual(['real-bisect', 'real', 'play', 'commission', 'adhoc']);
    expect(defaultPriority('adhoc-bisect')).toBe(PRIORITY.bisect);
    expect(defaultPriority(null)).toBe(PRIORITY.adhoc);
  });

  it('OSSTEST_RESOURCE_PRIORITY overrides; a bad value is refused naming the variable', () => {
    expect(resourcePriority('adhoc', { OSSTEST_RESOURCE_PRIORITY: '-5' })).toBe(-5);
    expect(resourcePriority('adhoc', { OSSTEST_RESOURCE_PRIORITY: '' })).toBe(PRIORITY.adhoc);
    expect(resourcePriority('real', {})).toBe(PRIORITY.real);
    expect(() => resourcePriority('real', { OSSTEST_RESOURCE_PRIORITY: 'high' })).toThrow(
      /OSSTEST_RESOURCE_PRIORITY: "high" is not an integer/,
    );
  });
});

describe('cost vectors', () => {
  it('compare lexicographically; recency buckets by age', () => {
    expect(compareCost([-1, 5], [0, 0])).toBe(-1);
    expect(compareCost([0, 1, 2], [0, 1, 2])).toBe(0);
    expect(compareCost([0, 1, 3], [0, 1, 2])).toBe(1);
    const now = 100 * 24 * HOUR;
    expect(recencyBucket(now, undefined)).toBe(0);
    expect(recencyBucket(now, now - HOUR)).toBe(3);
    expect(recencyBucket(now, now - 3 * 24 * HOUR)).toBe(2);
    expect(recencyBucket(now, now - 20 * 24 * HOUR)).toBe(1);
    expect(recencyBucket(now, now - 60 * 24 * HOUR)).toBe(0);
  });
});
