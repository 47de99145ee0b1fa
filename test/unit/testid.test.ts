import { describe, expect, it } from 'vitest';
import { computeTestid, reportTestid, scriptArgs, scriptBaseName } from '../../src/model/testid.js';

describe('testid naming (OSSTEST-BEHAVIOUR §3)', () => {
  it('default is the script name without ts- and no arguments', () => {
    expect(computeTestid('=', 'ts-guest-start', ['+', 'host', 'debian'], 7)).toBe('guest-start');
    expect(computeTestid(undefined, 'ts-guest-start', [], 7)).toBe('guest-start');
  });
  it('=SFX appends the suffix', () => {
    expect(computeTestid('=.2', 'ts-guest-start', ['+', 'host', 'debian'], 12)).toBe('guest-start.2');
  });
  it('arguments before + become /arg', () => {
    expect(computeTestid('=', 'ts-guest-localmigrate', ['x10', '+', 'host', 'debian'], 9)).toBe(
      'guest-localmigrate/x10',
    );
    expect(computeTestid('=', 'ts-xen-install', ['src_host'], 4)).toBe('xen-install/src_host');
    expect(computeTestid('=', 'ts-guest-migrate', ['src_host', 'dst_host', '+', 'debian'], 20)).toBe(
      'guest-migrate/src_host/dst_host',
    );
  });
  it('* appends the step number', () => {
    expect(computeTestid('*', 'ts-host-install-twice', [], 3)).toBe('host-install-twice(3)');
    expect(computeTestid('host-install(*)', 'ts-host-install-twice', [], 3)).toBe('host-install(3)');
  });
  it('anything else is literal, with /@ still expanded', () => {
    expect(computeTestid('capture-logs', 'ts-logs-capture', ['host'], 30)).toBe('capture-logs');
    expect(computeTestid('leak-check/basis/@', 'ts-leak-check', ['src_host', '+', 'basis'], 5)).toBe(
      'leak-check/basis/src_host',
    );
  });
  it('only a final (*) is replaced', () => {
    expect(computeTestid('a(*)b', 'ts-x', [], 2)).toBe('a(*)b');
  });
  it('reports drop a trailing (N)', () => {
    expect(reportTestid('host-install(3)')).toBe('host-install');
    expect(reportTestid('guest-start.2')).toBe('guest-start.2');
  });
  it('script base names and arguments', () => {
    expect(scriptBaseName('testcases/ts-build.ts')).toBe('build');
    expect(scriptBaseName('my-check')).toBe('my-check');
    expect(scriptArgs(['a', '+', 'b', '+'])).toEqual(['a', 'b', '+']);
  });
});
