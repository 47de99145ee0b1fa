import { describe, expect, it } from 'vitest';
import { flakeRecord, flakeSuffix } from '../../src/report/flake.js';
import { HistoryIndex, hostOfStep } from '../../src/report/history.js';
import { judgeFlight } from '../../src/report/judge.js';
import type { FlightRecord } from '../../src/report/types.js';
import { flight, job, NEW, OLD } from './report-fixtures.js';

/** One flight per entry, newest first: [flight, revision of xen, host, status of guest-start]. */
function runs(list: [number, string, string, 'pass' | 'fail' | 'broken' | 'blocked'][]): FlightRecord[] {
  return list.map(([n, rev, host, status]) =>
    flight(n, { xen: rev }, [job('test-xl', { 'guest-start': status }, { hosts: { host } })]),
  );
}

function record(history: FlightRecord[], host: string, window?: number) {
  return flakeRecord(
    new HistoryIndex(history, 'none', new Map([['test-xl', new Set(['guest-start'])]])),
    'test-xl',
    'guest-start',
    host,
    window,
  );
}

describe('flake rate per (job, testid, host)', () => {
  it('a fail at revisions that also passed is a flake; at revisions that never passed it is not', () => {
    const h = runs([
      [108, 'r3', 'h1', 'fail'], // r3 passed in 107: flake
      [107, 'r3', 'h1', 'pass'],
      [106, 'r2', 'h1', 'fail'], // r2 never passed: a real failure of r2, not a flake
      [105, 'r1', 'h1', 'fail'], // r1 passed on h2: flake
      [104, 'r1', 'h2', 'pass'],
      [103, 'r1', 'h1', 'pass'],
    ]);
    expect(record(h, 'h1')).toEqual({ failures: 2, runs: 5, host: 'h1' });
    expect(record(h, 'h2')).toEqual({ failures: 0, runs: 1, host: 'h2' });
    expect(record(h, 'h3')).toEqual({ failures: 0, runs: 0, host: 'h3' });
  });

  it('only the newest N runs on the host count; passes anywhere in the history count', () => {
    const h = runs([
      [110, 'r1', 'h1', 'pass'],
      [109, 'r1', 'h1', 'pass'],
      [108, 'r1', 'h1', 'fail'],
      [107, 'r1', 'h2', 'fail'],
      [106, 'r1', 'h1', 'fail'],
    ]);
    expect(record(h, 'h1', 3)).toEqual({ failures: 1, runs: 3, host: 'h1' });
    expect(record(h, 'h1', 4)).toEqual({ failures: 2, runs: 4, host: 'h1' });
    expect(record(h, 'h1')).toEqual({ failures: 2, runs: 4, host: 'h1' });
  });

  it('broken and blocked steps are not runs', () => {
    const h = runs([
      [104, 'r1', 'h1', 'broken'],
      [103, 'r1', 'h1', 'blocked'],
      [102, 'r1', 'h1', 'fail'],
      [101, 'r1', 'h1', 'pass'],
    ]);
    expect(record(h, 'h1')).toEqual({ failures: 1, runs: 2, host: 'h1' });
  });

  it('a window must be a positive integer', () => {
    expect(() => record([], 'h1', 0)).toThrow(RangeError);
  });

  it('the host of a step: its ident, an ident in the testid, the only host, or the pair', () => {
    const pair = job(
      'test-pair',
      { 'xen-install/src_host': 'pass', 'guest-migrate': 'pass' },
      {
        hosts: { src_host: 'h1', dst_host: 'h2' },
      },
    );
    expect(hostOfStep(pair, pair.steps[0]!)).toBe('h1');
    expect(hostOfStep(pair, pair.steps[1]!)).toBe('h1+h2');
    expect(hostOfStep(pair, { ...pair.steps[1]!, ident: 'dst_host' })).toBe('h2');
    const single = job('test-xl', { x: 'pass' }, { hosts: { host: 'h9' } });
    expect(hostOfStep(single, single.steps[0]!)).toBe('h9');
    expect(hostOfStep({ ...single, hosts: {} }, single.steps[0]!)).toBeUndefined();
  });

  it('is shown in the verdict line only when nonzero', () => {
    expect(flakeSuffix({ failures: 3, runs: 40, host: 'h1' })).toBe(' (flaked 3/40 on this host)');
    expect(flakeSuffix({ failures: 1, runs: 5, host: 'h1+h2' })).toBe(' (flaked 1/5 on these hosts)');
    expect(flakeSuffix({ failures: 0, runs: 40, host: 'h1' })).toBe('');
    expect(flakeSuffix(undefined)).toBe('');
  });
});

describe('flake rate in the judgement', () => {
  it('fail REGR. vs. N (flaked 1/3 on this host)', () => {
    const now = flight(110, NEW, [job('test-xl', { 'guest-start': 'fail' }, { hosts: { host: 'h1' } })]);
    const history = [
      flight(103, OLD, [job('test-xl', { 'guest-start': 'pass' }, { hosts: { host: 'h1' } })]),
      flight(102, OLD, [job('test-xl', { 'guest-start': 'fail' }, { hosts: { host: 'h1' } })]),
      flight(101, OLD, [job('test-xl', { 'guest-start': 'pass' }, { hosts: { host: 'h1' } })]),
      flight(100, OLD, [job('test-xl', { 'guest-start': 'fail' }, { hosts: { host: 'h2' } })]),
    ];
    const j = judgeFlight({ flight: now, baseline: { flight: '103', revisions: OLD }, history });
    const f = j.failures[0]!;
    expect(f.flake).toEqual({ failures: 1, runs: 3, host: 'h1' });
    expect(f.text).toBe('fail REGR. vs. 103 (flaked 1/3 on this host)');
    const small = judgeFlight({
      flight: now,
      baseline: { revisions: OLD },
      history,
      options: { flakeWindow: 1 },
    });
    expect(small.failures[0]!.text).toBe('fail REGR. vs. 103');
    expect(small.failures[0]!.flake).toEqual({ failures: 0, runs: 1, host: 'h1' });
  });
});
