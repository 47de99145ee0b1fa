import { describe, expect, it } from 'vitest';
import { flattenSteps, identArgs, perHost } from '../../src/executor/recipe.js';
import { pauseWanted } from '../../src/executor/run-job.js';
import { parseRunvarWords } from '../../src/flight/make-flight.js';
import { nextJobStatus, worseStepStatus } from '../../src/model/status.js';
import { shq } from '../../src/testcase/shell.js';
import { parseTestLine, TestTally } from '../../src/testcase/test-report.js';
import { parseJobRef } from '../../src/testcase/testcase.js';

describe('job status rules', () => {
  it('broken and aborted stick', () => {
    expect(nextJobStatus('broken', 'pass')).toBe('broken');
    expect(nextJobStatus('aborted', 'fail')).toBe('aborted');
    expect(nextJobStatus('fail', 'broken')).toBe('broken');
    expect(nextJobStatus('running', 'fail')).toBe('fail');
  });
  it('the worse of parallel step outcomes wins', () => {
    expect(worseStepStatus('pass', 'fail')).toBe('fail');
    expect(worseStepStatus('broken', 'fail')).toBe('broken');
  });
});

describe('recipes', () => {
  it('one-host steps keep the ident out of the testid, several-host steps name it', () => {
    expect(identArgs(['host'], 'host')).toEqual(['+', 'host']);
    expect(identArgs(['src_host', 'dst_host'], 'dst_host')).toEqual(['dst_host', '+']);
  });
  it('per-host steps run in parallel only when there are several hosts', () => {
    const one = perHost(['host'], (h) => ({ testcase: 'ts-x', args: [h], onFailure: 'broken' }));
    expect('parallel' in one).toBe(false);
    const two = perHost(['a', 'b'], (h) => ({ testcase: 'ts-x', args: [h], onFailure: 'broken' }));
    expect(flattenSteps([two]).map((s) => s.args)).toEqual([['a'], ['b']]);
  });
});

describe('pause_on_<status>', () => {
  const e = { stepno: 4, testcase: 'ts-run-tests', testid: 'run-tests' };
  it('matches script names and testids by glob', () => {
    expect(pauseWanted({ pause_on_fail: 'ts-run-*' }, 'fail', e)).toBe(true);
    expect(pauseWanted({ pause_on_fail: 'other run-tests' }, 'fail', e)).toBe(true);
    expect(pauseWanted({ pause_on_fail: 'build' }, 'fail', e)).toBe(false);
    expect(pauseWanted({ pause_on_fail: '*' }, 'pass', e)).toBe(false);
  });
});

describe('build job references', () => {
  it('job in this flight, or flight.job', () => {
    expect(parseJobRef('build-amd64', '12')).toEqual({ flight: '12', job: 'build-amd64' });
    expect(parseJobRef('7.build-amd64', '12')).toEqual({ flight: '7', job: 'build-amd64' });
  });
});

describe('RUNVARS words', () => {
  it('parses name=value words and refuses others', () => {
    expect(parseRunvarWords('a=1 b=x=y  c=', 'RUNVARS')).toEqual({ a: '1', b: 'x=y', c: '' });
    expect(() => parseRunvarWords('a=1 oops', 'RUNVARS')).toThrow(/RUNVARS: 'oops'/);
  });
});

describe('test output', () => {
  it('reads TAP and automake lines', () => {
    expect(parseTestLine('ok 1 - greeting')).toEqual({ name: 'greeting', outcome: 'pass' });
    expect(parseTestLine('not ok 2 - add')).toEqual({ name: 'add', outcome: 'fail' });
    expect(parseTestLine('ok 3 net # SKIP no network')).toEqual({ name: 'net', outcome: 'skip' });
    expect(parseTestLine('not ok 4 - later # TODO not yet')).toEqual({ name: 'later', outcome: 'skip' });
    expect(parseTestLine('FAIL: t/parse')).toEqual({ name: 't/parse', outcome: 'fail' });
    expect(parseTestLine('1..3')).toBeUndefined();
    expect(parseTestLine('okay then')).toBeUndefined();
  });
  it('tallies across chunks that split lines', () => {
    const t = new TestTally();
    expect(t.feed('ok 1 - a\nnot o')).toHaveLength(1);
    expect(t.feed('k 2 - b\n')).toEqual([{ name: 'b', outcome: 'fail' }]);
    t.feed('ok 3 - c');
    expect(t.flush()).toHaveLength(1);
    expect([t.count('pass'), t.count('fail')]).toEqual([2, 1]);
  });
});

describe('shell quoting', () => {
  it('quotes what the shell would interpret', () => {
    expect(shq('plain/path-1.2')).toBe('plain/path-1.2');
    expect(shq("it's $(x)")).toBe(`'it'\\''s $(x)'`);
  });
});
