import { describe, expect, it } from 'vitest';
import { assignments, findAssignment, HostIndex, jobCandidates } from '../../src/scheduler/candidates.js';
import { SchedulerInputError } from '../../src/scheduler/errors.js';
import { jobRequirements } from '../../src/scheduler/requirements.js';
import { host, req } from './scheduler-fixtures.js';

describe('job requirements from runvars', () => {
  it('one ident `host` by default, flags from all_hostflags and host_hostflags, blessing added', () => {
    const r = req('test-amd64-xl', { all_hostflags: 'arch-amd64,purpose-test', host_hostflags: 'hvm-intel' });
    expect(r.idents).toEqual([
      {
        ident: 'host',
        flags: ['arch-amd64', 'blessed-real', 'hvm-intel', 'purpose-test'],
        without: [],
        equiv: [],
      },
    ]);
  });

  it('no blessing flag in standalone mode (intended null)', () => {
    expect(req('j', { all_hostflags: 'arch-amd64' }, null).idents[0]!.flags).toEqual(['arch-amd64']);
  });

  it('pair jobs: host_idents, per-ident flags, equiv-<class> as a class and not a host flag', () => {
    const r = req('test-pair', {
      host_idents: 'src_host dst_host',
      all_hostflags: 'arch-amd64',
      src_host_hostflags: 'equiv-1,hvm',
      dst_host_hostflags: 'equiv-1',
    });
    expect(r.idents.map((i) => [i.ident, i.flags, i.equiv])).toEqual([
      ['src_host', ['arch-amd64', 'blessed-real', 'hvm'], ['1']],
      ['dst_host', ['arch-amd64', 'blessed-real'], ['1']],
    ]);
  });

  it('a host already named by the ident runvar is a pre-set host', () => {
    const r = req('j', { host_idents: 'src_host,dst_host', src_host: 'pinned1' });
    expect(r.idents[0]!.preset).toBe('pinned1');
    expect(r.idents[1]!.preset).toBeUndefined();
  });

  it('share-build-<suite>-<arch> is a host flag and makes the job share-eligible; !flag excludes', () => {
    const r = req(
      'build-amd64',
      { host_hostflags: 'share-build-bookworm-amd64,arch-amd64,!broken-disk' },
      'real',
      'abc',
    );
    expect(r.idents[0]!.share).toBe('build-bookworm-amd64');
    expect(r.idents[0]!.flags).toContain('share-build-bookworm-amd64');
    expect(r.idents[0]!.without).toEqual(['broken-disk']);
    expect(r.harness).toBe('abc');
  });

  it('the recipe default idents apply when host_idents is absent', () => {
    const r = jobRequirements({
      flight: 'f',
      job: 'j',
      runvars: {},
      intended: 'play',
      defaultIdents: ['a', 'b'],
    });
    expect(r.idents.map((i) => i.ident)).toEqual(['a', 'b']);
    expect(r.idents[0]!.flags).toEqual(['blessed-play']);
  });

  it('bad input is refused with the job and runvar named', () => {
    expect(() => req('j', { all_hostflags: 'arch amd64' })).toThrow(
      /f1\/j: runvar all_hostflags: bad host flag "arch amd64"/,
    );
    expect(() => req('j', { host_idents: 'a a' })).toThrow(/host ident a named twice/);
    expect(() => req('j', { host_idents: 'a-b' })).toThrow(SchedulerInputError);
    expect(() => req('j', { host_hostflags: 'equiv-' })).toThrow(
      /runvar host_hostflags: equiv- names no class/,
    );
    expect(() => req('j', { all_hostflags: 'x,!x' })).toThrow(/both needs and excludes host flag x/);
    expect(() => req('j', { host_idents: 'a b', all_hostflags: 'share-build-bookworm-amd64' })).toThrow(
      /share-build-\* host flags are for one-host build jobs/,
    );
  });
});

describe('candidate hosts', () => {
  it('only hosts with every flag and the blessing; no excluded flags', () => {
    const ix = new HostIndex([
      host('a', ['arch-amd64']),
      host('b', ['arch-amd64', 'broken-disk']),
      { name: 'c', flags: ['arch-amd64', 'blessed-play'], health: 'good' },
      host('d', ['arch-arm64']),
    ]);
    const jc = jobCandidates(req('j', { all_hostflags: 'arch-amd64,!broken-disk' }), ix);
    expect(jc.idents[0]!.all).toEqual(['a']);
    expect(jc.impossible).toBeUndefined();
  });

  it('impossible names what is missing and the closest hosts', () => {
    const ix = new HostIndex([{ name: 'c', flags: ['arch-amd64', 'blessed-play'], health: 'good' }]);
    const jc = jobCandidates(req('j', { all_hostflags: 'arch-amd64' }), ix);
    expect(jc.impossible).toMatch(
      /ident host: no host has arch-amd64,blessed-real; closest: c lacks blessed-real/,
    );
  });

  it('quarantined and maintenance hosts are candidates that cannot be used now', () => {
    const ix = new HostIndex([
      host('a', ['x'], { health: 'quarantined' }),
      host('b', ['x'], { health: 'maintenance' }),
      host('c', ['x'], { health: 'suspect' }),
    ]);
    expect(jobCandidates(req('j', { all_hostflags: 'x' }), ix).idents[0]!.usable).toEqual(['c']);
    const only = new HostIndex([host('a', ['x'], { health: 'quarantined' })]);
    const jc = jobCandidates(req('j', { all_hostflags: 'x' }), only);
    expect(jc.impossible).toBeUndefined();
    expect(jc.outOfService).toMatch(/a quarantined/);
  });

  it('equiv class: both idents on hosts sharing one real equiv-* flag, never one host twice', () => {
    const ix = new HostIndex([
      host('a1', ['equiv-a']),
      host('a2', ['equiv-a']),
      host('b1', ['equiv-b']),
      host('b2', ['equiv-b', 'hvm']),
      host('n1', []),
      host('n2', []),
    ]);
    const jc = jobCandidates(
      req('pair', {
        host_idents: 'src_host dst_host',
        src_host_hostflags: 'equiv-1',
        dst_host_hostflags: 'equiv-1',
      }),
      ix,
    );
    expect(jc.classes).toEqual([{ name: '1', idents: [0, 1], options: ['a', 'b'] }]);
    const all = [...assignments(jc, ix, () => true)].map((a) => a.join('+')).sort();
    expect(all).toEqual(['a1+a2', 'a2+a1', 'b1+b2', 'b2+b1']);
    // Only one host of group b free: the pair must use group a.
    expect(findAssignment(jc, ix, 'usable', (_i, h) => h !== 'b1')).toEqual(['a1', 'a2']);
    // One free host per group: no assignment, although two hosts are free.
    expect(findAssignment(jc, ix, 'usable', (_i, h) => h === 'a1' || h === 'b1')).toBeUndefined();
  });

  it('equiv class with different per-ident flags', () => {
    const ix = new HostIndex([
      host('a1', ['equiv-a', 'hvm']),
      host('a2', ['equiv-a']),
      host('b1', ['equiv-b']),
    ]);
    const jc = jobCandidates(
      req('pair', {
        host_idents: 'src_host dst_host',
        src_host_hostflags: 'equiv-1,hvm',
        dst_host_hostflags: 'equiv-1',
      }),
      ix,
    );
    expect([...assignments(jc, ix, () => true)]).toEqual([['a1', 'a2']]);
  });

  it('an equiv class with no shared group is impossible, with the class named', () => {
    const ix = new HostIndex([host('a1', ['equiv-a']), host('b1', ['equiv-b']), host('n', [])]);
    const jc = jobCandidates(
      req('pair', {
        host_idents: 'src_host dst_host',
        src_host_hostflags: 'equiv-1',
        dst_host_hostflags: 'equiv-1',
      }),
      ix,
    );
    expect(jc.impossible).toMatch(/no assignment of distinct hosts to idents src_host, dst_host/);
  });

  it('pre-set hosts are honoured; flag mismatches are warnings; conflicts are impossible', () => {
    const ix = new HostIndex([host('a1', ['equiv-a', 'arch-amd64']), host('a2', ['equiv-a']), host('z', [])]);
    const pinned = jobCandidates(
      req('pair', {
        host_idents: 'src_host dst_host',
        all_hostflags: 'arch-amd64',
        src_host_hostflags: 'equiv-1',
        dst_host_hostflags: 'equiv-1',
        src_host: 'a2',
      }),
      ix,
    );
    expect(pinned.idents[0]!.all).toEqual(['a2']);
    expect(pinned.impossible).toBeUndefined();
    expect([...assignments(pinned, ix, () => true)]).toEqual([['a2', 'a1']]);
    expect(pinned.warnings[0]).toMatch(/ident src_host: pre-set host a2 lacks arch-amd64; used as pinned/);
    const same = jobCandidates(
      req('pair', { host_idents: 'src_host dst_host', src_host: 'z', dst_host: 'z' }),
      ix,
    );
    expect(same.impossible).toMatch(/idents src_host and dst_host are both pinned to host z/);
    const unknown = jobCandidates(req('j', { host: 'nosuch' }), ix);
    expect(unknown.impossible).toMatch(/pre-set host nosuch \(runvar host\) is not a known host/);
    const noEquiv = jobCandidates(
      req('pair', { host_idents: 's d', s_hostflags: 'equiv-1', d_hostflags: 'equiv-1', s: 'z' }),
      ix,
    );
    expect(noEquiv.warnings.join()).toMatch(/pre-set host z has no equiv-\* flag/);
    expect(noEquiv.impossible).toBeUndefined();
  });
});
