import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  AllowFileError,
  AllowList,
  allowFileNames,
  allowPatternRegExp,
  parseAllowFile,
  readAllowFiles,
} from '../../src/report/allow.js';
import { judgeFlight } from '../../src/report/judge.js';
import { flight, job, NEW, OLD } from './report-fixtures.js';

describe('allow file syntax', () => {
  it('reads JOBPATTERN [TESTIDPATTERN] lines, skipping comments and blank lines', () => {
    const rules = parseAllowFile(
      [
        '# armhf boards are flaky',
        '',
        'test-armhf-@@',
        '  test-@-xl   guest-start/@@  # known',
        'test-x#y',
      ].join('\n'),
      'allow.all',
    );
    expect(rules).toEqual([
      { file: 'allow.all', line: 3, jobPattern: 'test-armhf-@@' },
      { file: 'allow.all', line: 4, jobPattern: 'test-@-xl', testidPattern: 'guest-start/@@' },
      { file: 'allow.all', line: 5, jobPattern: 'test-x#y' },
    ]);
  });

  it('refuses a line with more than two fields, naming file and line', () => {
    expect(() => parseAllowFile('ok\ntest-xl guest-start extra\n', 'allow.xen')).toThrow(AllowFileError);
    expect(() => parseAllowFile('ok\ntest-xl guest-start extra\n', 'allow.xen')).toThrow(
      /^allow\.xen:2: expected/,
    );
  });
});

describe('allow patterns', () => {
  it('@ is a run that does not cross - . or /', () => {
    const re = allowPatternRegExp('test-@-xl');
    expect(re.test('test-amd64-xl')).toBe(true);
    expect(re.test('test-amd64-i386-xl')).toBe(false);
    expect(allowPatternRegExp('guest-@').test('guest-start.2')).toBe(false);
    expect(allowPatternRegExp('guest-start/@').test('guest-start/debian/x')).toBe(false);
    expect(allowPatternRegExp('guest-start/@').test('guest-start/debian')).toBe(true);
  });

  it('@@ is any run of non-space characters, and may be empty', () => {
    const re = allowPatternRegExp('test-@@-xl');
    expect(re.test('test-amd64-i386-xl')).toBe(true);
    expect(re.test('test--xl')).toBe(true);
    expect(allowPatternRegExp('guest-start@@').test('guest-start')).toBe(true);
    expect(allowPatternRegExp('guest-start@@').test('guest-start.2/x')).toBe(true);
  });

  it('every other character stands for itself, and the whole name must match', () => {
    expect(allowPatternRegExp('guest-start.2').test('guest-startX2')).toBe(false);
    expect(allowPatternRegExp('leak-check(1)').test('leak-check(1)')).toBe(true);
    expect(allowPatternRegExp('guest').test('guest-start')).toBe(false);
    expect(allowPatternRegExp('a+b').test('aab')).toBe(false);
  });

  it('a job-only line allows every testid; testids also match without their (N)', () => {
    const list = new AllowList(parseAllowFile('test-pair\nbuild-@@ host-install\n', 'allow.all'));
    expect(list.match('test-pair', 'guest-migrate/src_host/dst_host')?.line).toBe(1);
    expect(list.match('build-amd64', 'host-install(3)')?.line).toBe(2);
    expect(list.match('build-amd64', 'host-install-twice')).toBeUndefined();
    expect(list.match('test-xl', 'host-install')).toBeUndefined();
  });
});

describe('allow files per branch and for all', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'osstest-allow-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('allow.<branch> then allow.all; missing files are no rules', async () => {
    expect(allowFileNames('xen-unstable')).toEqual(['allow.xen-unstable', 'allow.all']);
    expect(await readAllowFiles(dir, 'xen-unstable')).toEqual([]);
    await writeFile(path.join(dir, 'allow.all'), 'test-@@ guest-stop\n');
    await writeFile(path.join(dir, 'allow.xen-unstable'), '# this branch\ntest-armhf-@@\n');
    await writeFile(path.join(dir, 'allow.linux'), 'test-@@\n');
    const rules = await readAllowFiles(dir, 'xen-unstable');
    expect(rules).toEqual([
      { file: path.join(dir, 'allow.xen-unstable'), line: 2, jobPattern: 'test-armhf-@@' },
      { file: path.join(dir, 'allow.all'), line: 1, jobPattern: 'test-@@', testidPattern: 'guest-stop' },
    ]);
  });

  it('errors name the file', async () => {
    await writeFile(path.join(dir, 'allow.all'), 'a b c\n');
    await expect(readAllowFiles(dir, 'xen')).rejects.toThrow(`${path.join(dir, 'allow.all')}:1: expected`);
    await expect(readAllowFiles(dir, '../etc')).rejects.toThrow(/cannot name an allow file/);
  });
});

describe('the logs-capture slip: an allow line that can never match', () => {
  // The original allowed `logs-capture` (the script is ts-logs-capture) while the step's testid is
  // capture-logs: the line matched nothing and nobody was told.
  const scripts = {
    'hosts-allocate': 'ts-hosts-allocate',
    build: 'ts-build',
    'capture-logs': 'ts-logs-capture',
  };
  const now = flight(110, NEW, [
    job('build-amd64', { 'hosts-allocate': 'pass', build: 'pass', 'capture-logs': 'fail' }, { scripts }),
  ]);
  const history = [
    flight(101, OLD, [
      job('build-amd64', { 'hosts-allocate': 'pass', build: 'pass', 'capture-logs': 'pass' }, { scripts }),
    ]),
  ];

  it('a script name in an allow line is reported, naming the testid to write', () => {
    const allow = parseAllowFile('build-@@ logs-capture\n', 'allow.all');
    const j = judgeFlight({ flight: now, baseline: { revisions: OLD }, history, allow });
    expect(j.failures[0]).toMatchObject({ testid: 'capture-logs', verdict: 'regression', blocking: true });
    expect(j.warnings).toEqual([
      'allow.all:1: testid pattern `logs-capture` matches no testid of the jobs matching `build-@@` ' +
        '(allow lines name testids, not scripts: ts-logs-capture is recorded as `capture-logs`)',
    ]);
  });

  it('the testid as the report shows it is what clears the failure, with no warning', () => {
    const allow = parseAllowFile('build-@@ capture-logs\n', 'allow.all');
    const j = judgeFlight({ flight: now, baseline: { revisions: OLD }, history, allow });
    expect(j.failures[0]).toMatchObject({ testid: 'capture-logs', blocking: false, allowed: { line: 1 } });
    expect(j.warnings).toEqual([]);
    expect(j.tolerable).toBe(true);
  });

  it('a job pattern that matches no job is reported too', () => {
    const list = new AllowList(parseAllowFile('tset-@@\ntest-@@ guest-start\n', 'allow.xen'));
    expect(list.lint([{ job: 'test-xl', testid: 'guest-start' }])).toEqual([
      'allow.xen:1: job pattern `tset-@@` matches no job run on this branch',
    ]);
  });
});
