import { describe, expect, it } from 'vitest';
import { parseAllowFile } from '../../src/report/allow.js';
import { judgeFlight } from '../../src/report/judge.js';
import {
  formatMro,
  JSON_FORMAT,
  judgementJson,
  MroError,
  parseJudgementJson,
  parseMro,
} from '../../src/report/mro.js';
import { renderSummary, subjectLine } from '../../src/report/text.js';
import type { Judgement } from '../../src/report/types.js';
import { flight, job, NEW, OLD } from './report-fixtures.js';

/** One of each verdict, in one flight. */
function mixed(): Judgement {
  const now = flight(110, NEW, [
    job('build-amd64', { build: 'fail' }),
    job('test-xl', { 'build-check(1)': 'blocked' }),
    job('test-pv', {
      'guest-start': 'fail',
      'guest-stop': 'fail',
      'guest-saverestore.2': 'fail',
      'migrate-support-check': 'fail',
      'leak-check': 'fail',
    }),
    job('test-pair', {}, { status: 'broken' }),
    job('test-ok', { run: 'pass' }),
  ]);
  const history = [
    flight(109, NEW, [job('test-pv', { 'guest-saverestore.2': 'pass' })]),
    flight(101, OLD, [
      job('build-amd64', { build: 'pass' }),
      job('test-pv', {
        'guest-start': 'pass',
        'guest-stop': 'fail',
        'guest-saverestore.2': 'pass',
        'migrate-support-check': 'fail',
        'leak-check': 'pass',
      }),
    ]),
    flight(90, { xen: 'old0' }, [job('test-pv', { 'guest-stop': 'pass' })]),
  ];
  return judgeFlight({
    flight: now,
    baseline: { flight: '101', revisions: OLD },
    history,
    allow: parseAllowFile('test-pv leak-check\n', 'allow.all'),
  });
}

describe('.mro lines', () => {
  it('say the flight, versions, each failure and the verdict', () => {
    const j = mixed();
    expect(formatMro(j).split('\n')).toEqual([
      'flight 110',
      'version this xen bbbb',
      'version that xen aaaa',
      'regression build-amd64 build 101',
      'blocked test-xl build-check(1)',
      'regression test-pv guest-start 101',
      'like test-pv guest-stop 101',
      'heisenbug test-pv guest-saverestore.2 109',
      'never-passed test-pv migrate-support-check',
      'allowable test-pv leak-check allow.all:1',
      'broken test-pair <none executed>',
      '',
    ]);
  });

  it('tolerable and perfect', () => {
    const perfect = judgeFlight({
      flight: flight(5, NEW, [job('t', { a: 'pass' })]),
      baseline: null,
      history: [],
    });
    expect(formatMro(perfect)).toBe('flight 5\nversion this xen bbbb\ntolerable\nperfect\n');
    const tolerable = judgeFlight({
      flight: flight(6, NEW, [job('t', { a: 'fail' })]),
      baseline: { revisions: OLD },
      history: [flight(5, OLD, [job('t', { a: 'fail' })])],
    });
    expect(formatMro(tolerable).trim().split('\n').slice(-2)).toEqual(['never-passed t a', 'tolerable']);
  });

  it('blocker lines for blocking failures that are not regressions', () => {
    const j = judgeFlight({
      flight: flight(6, NEW, [job('t', { a: 'fail' })]),
      baseline: { revisions: OLD },
      history: [
        flight(5, OLD, [job('t', { a: 'broken' })]),
        flight(4, { xen: 'x' }, [job('t', { a: 'pass' })]),
      ],
    });
    expect(formatMro(j)).toContain('\nblocker t a 5\n');
    expect(formatMro(j)).not.toContain('tolerable');
  });

  it('read back into the same facts', () => {
    const j = mixed();
    const m = parseMro(formatMro(j), 'x.mro');
    expect(m.flight).toBe('110');
    expect(m.versions).toEqual({ this: { xen: 'bbbb' }, that: { xen: 'aaaa' } });
    expect(m.tolerable).toBe(false);
    expect(m.perfect).toBe(false);
    expect(m.entries).toContainEqual({
      kind: 'regression',
      job: 'test-pv',
      testid: 'guest-start',
      arg: '101',
    });
    expect(m.entries).toContainEqual({ kind: 'broken', job: 'test-pair', testid: '<none executed>' });
    expect(m.entries).toContainEqual({
      kind: 'allowable',
      job: 'test-pv',
      testid: 'leak-check',
      arg: 'allow.all:1',
    });
    expect(m.entries).toHaveLength(j.failures.length);
  });

  it('refuse what they do not know, naming the file and line', () => {
    expect(() => parseMro('flight 1\nwibble x y\n', 'f.mro')).toThrow(MroError);
    expect(() => parseMro('flight 1\nwibble x y\n', 'f.mro')).toThrow(
      /^f\.mro:2: unknown line kind "wibble"/,
    );
    expect(() => parseMro('version other xen a\n', 'f.mro')).toThrow(
      /f\.mro:1: expected: version this\|that/,
    );
  });
});

describe('JSON', () => {
  it('has the judgement with its format tag, and reads back', () => {
    const j = mixed();
    const text = judgementJson(j);
    const o = JSON.parse(text);
    expect(Object.keys(o).sort()).toEqual(
      [
        'baseline',
        'branch',
        'failures',
        'flight',
        'format',
        'heading',
        'outcome',
        'overall',
        'tolerable',
        'versions',
        'warnings',
      ].sort(),
    );
    expect(o).toMatchObject({
      format: JSON_FORMAT,
      flight: '110',
      branch: 'xen-unstable',
      overall: 'regressions',
      tolerable: false,
      outcome: 'trouble: blocked/broken/fail/pass',
      baseline: { flight: '101', revisions: { xen: 'aaaa' }, flights: ['101'] },
    });
    expect(o.failures[0]).toEqual({
      job: 'build-amd64',
      stepno: 1,
      testid: 'build',
      status: 'fail',
      verdict: 'regression',
      refFlight: '101',
      blocking: true,
      reason: 'the build passed in baseline flight 101',
      flake: { failures: 0, runs: 1, host: 'h1' },
      text: 'fail REGR. vs. 101',
    });
    expect(parseJudgementJson(text, 'j.json')).toEqual(j);
    expect(() => parseJudgementJson('{"format":"other"}', 'j.json')).toThrow(/j\.json: not a judgement/);
    expect(() => parseJudgementJson('{', 'j.json')).toThrow(/j\.json: not JSON/);
  });
});

describe('text for people', () => {
  it('categorised failures, versions, and the subject line', () => {
    const j = mixed();
    expect(renderSummary(j)).toBe(
      [
        'flight 110 xen-unstable trouble: blocked/broken/fail/pass',
        '',
        'Regressions :-(',
        '',
        'Tests which did not succeed and are blocking,',
        'including tests which could not be run:',
        ' build-amd64 1 build                 fail REGR. vs. 101',
        ' test-pv     1 guest-start           fail REGR. vs. 101',
        ' test-pair     <none executed>       broken',
        '',
        'Tests which are failing intermittently (not blocking):',
        ' test-pv     3 guest-saverestore.2   fail pass in 109',
        '',
        'Regressions which are regarded as allowable (not blocking):',
        ' test-pv     5 leak-check            fail REGR. vs. 101  [allow.all:1]',
        '',
        'Tests which did not succeed, but are not blocking:',
        ' test-xl     1 build-check(1)        blocked n/a',
        ' test-pv     2 guest-stop            fail like 101',
        ' test-pv     4 migrate-support-check fail never pass',
        '',
        'version targeted for testing:',
        ' xen  bbbb',
        'baseline version:',
        ' xen  aaaa',
        '',
      ].join('\n'),
    );
    expect(subjectLine(j)).toBe('[xen-unstable test] 110: regressions - trouble: blocked/broken/fail/pass');
  });

  it('subject lines for tolerable, pushed and other blocking results', () => {
    const perfect = judgeFlight({
      flight: flight(5, NEW, [job('t', { a: 'pass' })]),
      baseline: null,
      history: [],
    });
    expect(subjectLine(perfect, { pushed: true })).toBe('[xen-unstable test] 5: tolerable all pass - PUSHED');
    const problems = judgeFlight({
      flight: flight(6, NEW, [job('t', {}, { status: 'broken' })]),
      baseline: null,
      history: [],
    });
    expect(subjectLine(problems)).toBe('[xen-unstable test] 6: trouble: broken');
    expect(renderSummary(problems)).toContain('baseline version:\n (none: this is a baseline test)\n');
  });
});
