import { describe, expect, it } from 'vitest';
import { parseAllowFile } from '../../src/report/allow.js';
import { stepKey } from '../../src/report/history.js';
import { JudgeInputError, judgeFlight, outcomeLine } from '../../src/report/judge.js';
import { sections } from '../../src/report/text.js';
import type { Failure, FlightRecord, JudgeInput } from '../../src/report/types.js';
import { flight, job, NEW, OLD } from './report-fixtures.js';

const base = { flight: '101', revisions: OLD };

function judge(f: FlightRecord, history: FlightRecord[], extra: Partial<JudgeInput> = {}) {
  return judgeFlight({ flight: f, baseline: base, history, ...extra });
}

function only(failures: Failure[], testid: string): Failure {
  const hits = failures.filter((f) => f.testid === testid);
  expect(hits).toHaveLength(1);
  return hits[0]!;
}

describe('each failure against the baseline (OSSTEST-BEHAVIOUR §4)', () => {
  it('REGR. vs. N: passed in the baseline flight', () => {
    const now = flight(110, NEW, [job('test-xl', { 'guest-start': 'fail' })]);
    const j = judge(now, [flight(101, OLD, [job('test-xl', { 'guest-start': 'pass' })])]);
    const f = only(j.failures, 'guest-start');
    expect(f).toMatchObject({ verdict: 'regression', refFlight: '101', blocking: true, stepno: 1 });
    expect(f.text).toBe('fail REGR. vs. 101');
    expect(j.overall).toBe('regressions');
    expect(j.heading).toBe('Regressions :-(');
    expect(j.tolerable).toBe(false);
  });

  it('like N: failed the same way in the baseline; not blocking', () => {
    const now = flight(110, NEW, [job('test-xl', { 'guest-stop': 'fail' })]);
    const j = judge(now, [
      flight(101, OLD, [job('test-xl', { 'guest-stop': 'fail' })]),
      flight(90, { xen: 'old0' }, [job('test-xl', { 'guest-stop': 'pass' })]),
    ]);
    const f = only(j.failures, 'guest-stop');
    expect(f).toMatchObject({ verdict: 'like', refFlight: '101', blocking: false, text: 'fail like 101' });
    expect(f.allowed).toBeUndefined();
    expect(j.overall).toBe('tolerable');
    expect(j.heading).toBe('Failures :-/ but no regressions.');
    expect(j.tolerable).toBe(true);
  });

  it('failed in N: did not pass in the baseline, but failed otherwise there; blocking', () => {
    const now = flight(110, NEW, [job('test-xl', { 'guest-start': 'fail' })]);
    const j = judge(now, [
      flight(101, OLD, [job('test-xl', { 'guest-start': 'broken' })]),
      flight(90, { xen: 'old0' }, [job('test-xl', { 'guest-start': 'pass' })]),
    ]);
    expect(only(j.failures, 'guest-start')).toMatchObject({
      verdict: 'failed in',
      refFlight: '101',
      blocking: true,
      text: 'fail failed in 101',
    });
    expect(j.overall).toBe('problems');
    expect(j.heading).toBe('Failures and problems with tests :-(');
    expect(j.tolerable).toBe(false);
  });

  it('blocked in N: the baseline never got as far as the step; blocking', () => {
    const now = flight(110, NEW, [job('test-xl', { 'build-check': 'pass', 'guest-start': 'fail' })]);
    const j = judge(now, [
      flight(101, OLD, [job('test-xl', { 'build-check': 'blocked' })]),
      flight(100, OLD, [job('test-xl', { 'build-check': 'pass', 'guest-start': 'blocked' })]),
      flight(90, { xen: 'old0' }, [job('test-xl', { 'build-check': 'pass', 'guest-start': 'pass' })]),
    ]);
    expect(only(j.failures, 'guest-start')).toMatchObject({
      verdict: 'blocked in',
      refFlight: '101',
      blocking: true,
      text: 'fail blocked in 101',
    });
  });

  it('never pass: never passed on the branch; not blocking', () => {
    const now = flight(110, NEW, [job('test-xl', { 'migrate-support-check': 'fail' })]);
    const j = judge(now, [flight(101, OLD, [job('test-xl', { 'migrate-support-check': 'fail' })])]);
    expect(only(j.failures, 'migrate-support-check')).toMatchObject({
      verdict: 'never pass',
      blocking: false,
      text: 'fail never pass',
    });
    expect(j.tolerable).toBe(true);
  });

  it('never pass looks beyond the window through everPassed', () => {
    const now = flight(110, NEW, [job('test-xl', { 'guest-start': 'fail' })]);
    const history = [flight(101, OLD, [job('test-xl', { 'guest-start': 'fail' })])];
    const j = judge(now, history, { everPassed: new Set([stepKey('test-xl', 'guest-start')]) });
    expect(only(j.failures, 'guest-start').verdict).toBe('like');
  });

  it('the newest baseline flight where the step ran decides', () => {
    const now = flight(110, NEW, [job('test-xl', { 'guest-start': 'fail' })]);
    const j = judge(now, [
      flight(103, OLD, [job('test-xl', { 'guest-start': 'blocked' })]),
      flight(102, OLD, [job('test-xl', { 'guest-start': 'fail' })]),
      flight(101, OLD, [job('test-xl', { 'guest-start': 'pass' })]),
    ]);
    expect(only(j.failures, 'guest-start')).toMatchObject({ verdict: 'like', refFlight: '102' });
  });

  it('baseline flights are those that tested the baseline tuple, of a trusted blessing', () => {
    const now = flight(110, NEW, [job('test-xl', { 'guest-start': 'fail' })]);
    const history = [
      // newer, passing, but at other revisions: not a baseline flight
      flight(108, { xen: 'cccc' }, [job('test-xl', { 'guest-start': 'pass' })]),
      // at the baseline revisions but a play flight: not trusted
      flight(105, OLD, [job('test-xl', { 'guest-start': 'pass' })], { blessing: 'play' }),
      flight(102, OLD, [job('test-xl', { 'guest-start': 'fail' })]),
    ];
    const j = judgeFlight({ flight: now, baseline: { revisions: OLD }, history });
    expect(only(j.failures, 'guest-start')).toMatchObject({ verdict: 'like', refFlight: '102' });
    expect(j.baseline?.flights).toEqual(['102']);
    // The flight the gate names as the baseline counts whatever its blessing.
    const named = judgeFlight({ flight: now, baseline: { flight: '105', revisions: OLD }, history });
    expect(only(named.failures, 'guest-start')).toMatchObject({ verdict: 'regression', refFlight: '105' });
    // And the trusted blessings can be widened.
    const widened = judgeFlight({
      flight: now,
      baseline: { revisions: OLD },
      history,
      options: { baselineBlessings: ['real', 'play'] },
    });
    expect(only(widened.failures, 'guest-start').refFlight).toBe('105');
  });

  it("a job's tuple is compared only on the trees it built", () => {
    const tuple = { xen: 'aaaa', linux: 'L1' };
    const now = flight(110, { xen: 'bbbb', linux: 'L1' }, [
      job('build-amd64-pvops', { 'kernel-build': 'pass' }, { revisions: { linux: 'L1' } }),
      job('test-xl', { 'guest-start': 'fail' }, { revisions: { xen: 'bbbb', linux: 'L1' } }),
    ]);
    const hist = flight(101, { xen: 'aaaa', linux: 'L0' }, [
      job('test-xl', { 'guest-start': 'pass' }, { revisions: { xen: 'aaaa' } }),
    ]);
    const j = judgeFlight({ flight: now, baseline: { revisions: tuple }, history: [hist] });
    expect(only(j.failures, 'guest-start').verdict).toBe('regression');
    // A job that recorded no revisions at all tested nothing known.
    const blind = flight(101, OLD, [job('test-xl', { 'guest-start': 'pass' }, { revisions: {} })]);
    const k = judgeFlight({ flight: now, baseline: { revisions: tuple }, history: [blind] });
    expect(only(k.failures, 'guest-start').verdict).toBe('baseline untested');
  });

  it('baseline untested: nothing pushed yet, or no flight of the baseline revisions; blocking', () => {
    const now = flight(110, NEW, [job('test-xl', { 'guest-start': 'fail' })]);
    const history = [flight(100, { xen: 'zzzz' }, [job('test-xl', { 'guest-start': 'pass' })])];
    const j = judgeFlight({ flight: now, baseline: null, history });
    expect(only(j.failures, 'guest-start')).toMatchObject({
      verdict: 'baseline untested',
      blocking: true,
      text: 'fail baseline untested',
    });
    expect(j.baseline).toBeNull();
    expect(j.tolerable).toBe(false);
    expect(only(judge(now, history).failures, 'guest-start').verdict).toBe('baseline untested');
  });

  it('testids are compared without a trailing (N)', () => {
    const now = flight(110, NEW, [job('test-xl', { 'hosts-allocate': 'pass', 'host-install(3)': 'broken' })]);
    const j = judge(now, [
      flight(101, OLD, [job('test-xl', { 'hosts-allocate': 'pass', 'host-install(4)': 'pass' })]),
    ]);
    expect(only(j.failures, 'host-install(3)')).toMatchObject({ verdict: 'regression', status: 'broken' });
    expect(only(j.failures, 'host-install(3)').text).toBe('broken REGR. vs. 101');
  });

  it('a flight in the history that is the flight judged is ignored', () => {
    const now = flight(110, NEW, [job('test-xl', { 'guest-start': 'fail' })]);
    const j = judge(now, [now, flight(101, OLD, [job('test-xl', { 'guest-start': 'pass' })])]);
    expect(only(j.failures, 'guest-start').verdict).toBe('regression');
  });
});

describe('the heisenbug rule', () => {
  const now = flight(110, NEW, [job('test-xl', { 'guest-saverestore.2': 'fail' })]);
  const baselinePass = flight(101, OLD, [job('test-xl', { 'guest-saverestore.2': 'pass' })]);

  it('pass in N: passed in another flight at the same revisions; not blocking', () => {
    const j = judge(now, [
      flight(109, NEW, [job('test-xl', { 'guest-saverestore.2': 'pass' })]),
      baselinePass,
    ]);
    const f = only(j.failures, 'guest-saverestore.2');
    expect(f).toMatchObject({
      verdict: 'pass in',
      refFlight: '109',
      blocking: false,
      text: 'fail pass in 109',
    });
    expect(f.allowed).toBeUndefined();
    expect(j.tolerable).toBe(true);
    expect(sections(j).map((s) => s.title)).toEqual([
      'Tests which are failing intermittently (not blocking):',
    ]);
  });

  it('a pass at other revisions is no excuse', () => {
    const j = judge(now, [
      flight(109, { xen: 'cccc' }, [job('test-xl', { 'guest-saverestore.2': 'pass' })]),
      baselinePass,
    ]);
    expect(only(j.failures, 'guest-saverestore.2').verdict).toBe('regression');
  });

  it('does not replace a verdict that blocks nothing', () => {
    const j = judge(now, [
      flight(109, NEW, [job('test-xl', { 'guest-saverestore.2': 'pass' })]),
      flight(101, OLD, [job('test-xl', { 'guest-saverestore.2': 'fail' })]),
    ]);
    expect(only(j.failures, 'guest-saverestore.2').verdict).toBe('like');
  });
});

describe('build jobs', () => {
  it('any pass of the build in a baseline flight makes a failure a regression', () => {
    // capture-logs runs only when a build fails: step by step it would be "never pass".
    const now = flight(110, NEW, [
      job('build-amd64', { 'hosts-allocate': 'pass', build: 'fail', 'capture-logs': 'fail' }),
    ]);
    const history = [
      flight(103, OLD, [job('build-amd64', { 'hosts-allocate': 'broken' })]),
      flight(101, OLD, [job('build-amd64', { 'hosts-allocate': 'pass', build: 'pass' })]),
    ];
    const j = judge(now, history);
    expect(only(j.failures, 'build')).toMatchObject({ verdict: 'regression', refFlight: '101' });
    expect(only(j.failures, 'capture-logs')).toMatchObject({ verdict: 'regression', refFlight: '101' });
    // The same history for a test job: the newest baseline flight decides, step by step.
    const t = judge(
      flight(110, NEW, [job('test-x', { 'hosts-allocate': 'pass', build: 'fail', 'capture-logs': 'fail' })]),
      [
        flight(103, OLD, [job('test-x', { 'hosts-allocate': 'broken' })]),
        flight(101, OLD, [job('test-x', { 'hosts-allocate': 'pass', build: 'pass' })]),
      ],
    );
    expect(only(t.failures, 'build').verdict).toBe('regression');
    expect(only(t.failures, 'capture-logs').verdict).toBe('never pass');
  });

  it('a build that passed at the same revisions is a heisenbug', () => {
    const now = flight(110, NEW, [job('build-amd64', { build: 'fail' })]);
    const j = judge(now, [
      flight(109, NEW, [job('build-amd64', { 'build-prep': 'pass' }, { status: 'pass' })]),
      flight(101, OLD, [job('build-amd64', { build: 'pass' })]),
    ]);
    expect(only(j.failures, 'build')).toMatchObject({ verdict: 'pass in', refFlight: '109' });
  });
});

describe('blocked steps and job-level failures', () => {
  it('blocked steps are not judged themselves', () => {
    const now = flight(110, NEW, [
      job('build-amd64', { build: 'fail' }),
      job('test-xl', { 'build-check(1)': 'blocked' }),
    ]);
    const j = judge(now, [
      flight(101, OLD, [job('build-amd64', { build: 'pass' }), job('test-xl', { 'build-check(1)': 'pass' })]),
    ]);
    expect(only(j.failures, 'build-check(1)')).toMatchObject({
      verdict: 'blocked',
      blocking: false,
      text: 'blocked n/a',
    });
    expect(only(j.failures, 'build-check(1)').flake).toBeUndefined();
    expect(j.overall).toBe('regressions');
  });

  it('<none executed>: a job that did not pass with no failing step; blocking', () => {
    const now = flight(110, NEW, [
      job('test-xl', {}, { status: 'broken' }),
      job('test-pv', {}, { status: 'queued' }),
      job('test-pair', {}, { status: 'blocked' }),
      job('test-ok', { run: 'pass' }),
    ]);
    const j = judge(now, []);
    expect(j.failures.map((f) => [f.job, f.testid, f.verdict, f.blocking, f.text])).toEqual([
      ['test-xl', '<none executed>', 'none executed', true, 'broken'],
      ['test-pv', '<none executed>', 'none executed', true, 'queued'],
      ['test-pair', '<none executed>', 'blocked', false, 'blocked n/a'],
    ]);
    expect(j.failures[0]!.stepno).toBeUndefined();
    expect(j.overall).toBe('problems');
  });

  it('a passed job with a failed step still has that step judged', () => {
    const now = flight(110, NEW, [job('test-xl', { 'leak-check': 'fail' }, { status: 'pass' })]);
    const j = judge(now, [flight(101, OLD, [job('test-xl', { 'leak-check': 'pass' })])]);
    expect(only(j.failures, 'leak-check').verdict).toBe('regression');
  });
});

describe('allow files in the judgement', () => {
  const now = flight(110, NEW, [
    job('test-armhf-xl', { 'guest-start': 'fail', 'guest-stop': 'fail' }),
    job('test-amd64-xl', { 'guest-start': 'fail' }),
  ]);
  const history = [
    flight(101, OLD, [
      job('test-armhf-xl', { 'guest-start': 'pass', 'guest-stop': 'fail' }),
      job('test-amd64-xl', { 'guest-start': 'pass' }),
    ]),
    flight(90, { xen: 'old0' }, [job('test-armhf-xl', { 'guest-start': 'pass', 'guest-stop': 'pass' })]),
  ];

  it('a matching line clears a blocking failure and says which file:line', () => {
    const allow = parseAllowFile('# flaky board\ntest-armhf-@@\n', 'allow.all');
    const j = judge(now, history, { allow });
    const armhf = j.failures.find((f) => f.job === 'test-armhf-xl' && f.testid === 'guest-start')!;
    expect(armhf).toMatchObject({
      verdict: 'regression',
      blocking: false,
      allowed: { file: 'allow.all', line: 2, pattern: 'test-armhf-@@' },
      text: 'fail REGR. vs. 101',
    });
    expect(armhf.reason).toContain('allow.all:2');
    const amd64 = j.failures.find((f) => f.job === 'test-amd64-xl')!;
    expect(amd64).toMatchObject({ verdict: 'regression', blocking: true });
    expect(amd64.allowed).toBeUndefined();
    expect(j.overall).toBe('regressions');
  });

  it('only failures an allow line cleared are "allowable" (the original labelled every non-blocking one so)', () => {
    const allow = parseAllowFile('test-@@ guest-start\n', 'allow.xen-unstable');
    const j = judge(now, history, { allow });
    expect(j.tolerable).toBe(true);
    expect(j.overall).toBe('tolerable');
    const stop = only(j.failures, 'guest-stop');
    // guest-stop matches no line, and would match none that mattered: it blocks nothing by itself.
    expect(stop).toMatchObject({ verdict: 'like', blocking: false });
    expect(stop.allowed).toBeUndefined();
    expect(stop.reason).toBe('same result (fail) in baseline flight 101');
    const byTitle = Object.fromEntries(
      sections(j).map((s) => [s.title, s.failures.map((f) => `${f.job} ${f.testid}`)]),
    );
    expect(byTitle).toEqual({
      'Regressions which are regarded as allowable (not blocking):': [
        'test-armhf-xl guest-start',
        'test-amd64-xl guest-start',
      ],
      'Tests which did not succeed, but are not blocking:': ['test-armhf-xl guest-stop'],
    });
    // A line that matches a non-blocking failure does not make it "allowable" either.
    const wide = judge(now, history, { allow: parseAllowFile('test-@@\n', 'allow.all') });
    expect(only(wide.failures, 'guest-stop').allowed).toBeUndefined();
  });

  it('a job-only line clears a job-level failure', () => {
    const broken = flight(110, NEW, [job('test-xl', {}, { status: 'broken' })]);
    const j = judge(broken, [], { allow: parseAllowFile('test-xl\n', 'allow.all') });
    expect(j.failures[0]).toMatchObject({ testid: '<none executed>', blocking: false });
    expect(j.tolerable).toBe(true);
  });
});

describe('overall verdict and outcome line', () => {
  it('Perfect when nothing failed', () => {
    const now = flight(110, NEW, [job('build-amd64', { build: 'pass' }), job('test-xl', { run: 'pass' })]);
    const j = judge(now, []);
    expect(j).toMatchObject({
      overall: 'perfect',
      heading: 'Perfect :-)',
      tolerable: true,
      outcome: 'all pass',
    });
    expect(j.failures).toEqual([]);
  });

  it('all pass, ALL FAIL, FAIL, trouble', () => {
    expect(outcomeLine([{ status: 'pass' }, { status: 'pass' }])).toBe('all pass');
    expect(outcomeLine([{ status: 'fail' }, { status: 'blocked' }])).toBe('ALL FAIL');
    expect(outcomeLine([{ status: 'pass' }, { status: 'fail' }, { status: 'blocked' }])).toBe('FAIL');
    expect(
      outcomeLine([{ status: 'pass' }, { status: 'fail' }, { status: 'broken' }, { status: 'blocked' }]),
    ).toBe('trouble: blocked/broken/fail/pass');
    expect(outcomeLine([{ status: 'pass' }, { status: 'running' }])).toBe('trouble: pass/running');
  });

  it('versions tested against the baseline', () => {
    const now = flight(110, { xen: 'bbbb', linux: 'L1' }, [job('test-xl', { run: 'pass' })]);
    const j = judgeFlight({ flight: now, baseline: { revisions: { xen: 'aaaa', qemu: 'Q' } }, history: [] });
    expect(j.versions).toEqual([
      { tree: 'linux', this: 'L1' },
      { tree: 'qemu', that: 'Q' },
      { tree: 'xen', this: 'bbbb', that: 'aaaa' },
    ]);
  });
});

describe('bad input', () => {
  it('names the flight and job', () => {
    const j = job('test-xl', { run: 'pass' });
    expect(() => judge(flight(110, NEW, [j, j]), [])).toThrow(
      new JudgeInputError('flight 110: job test-xl appears twice'),
    );
    const twice = { ...j, steps: [j.steps[0]!, j.steps[0]!] };
    expect(() => judge(flight(110, NEW, [twice]), [])).toThrow(
      /flight 110 job test-xl: step 1 appears twice/,
    );
  });
});
