/**
 * Flight and host controls through the compiled CLI on a real sqlite store: flight adjust
 * (cs-adjust-flight), flight bless (cs-flight-bless), and the host editing commands of mg-hosts.
 * Every refusal is checked against a snapshot of the whole database.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/db/store.js';
import { snapshotSqlite } from '../helpers/dbsnapshot.js';
import { createWorkspace, type Workspace } from '../helpers/workspace.js';

let ws: Workspace;
let db: string;

beforeAll(() => {
  ws = createWorkspace(['HostFlags_gamma cfg-only', 'HostFlags !retired']);
  db = join(ws.dir, 'standalone.db');
});

afterAll(() => ws?.cleanup());

async function withStore<T>(fn: (s: Store) => Promise<T>): Promise<T> {
  const s = await ws.openStore();
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

async function ok(args: string[]) {
  const r = await ws.cli(args);
  if (r.code !== 0) throw new Error(`osstest ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r;
}

/** Runs each command, expecting exit 2, the message, and not one row of the database changed. */
async function refused(cases: [string[], RegExp][]) {
  const before = snapshotSqlite(db);
  for (const [args, re] of cases) {
    const r = await ws.cli(args);
    expect(r.code, args.join(' ')).toBe(2);
    expect(r.stderr, args.join(' ')).toMatch(re);
    expect(snapshotSqlite(db), args.join(' ')).toBe(before);
  }
}

async function runvars(flight: string): Promise<Record<string, Record<string, string>>> {
  return withStore(async (s) => {
    const out: Record<string, Record<string, string>> = {};
    for (const r of await s.listRunvars(flight)) {
      if (r.synth) continue;
      out[r.job] ??= {};
      out[r.job]![r.name] = r.val;
    }
    return out;
  });
}

describe('help', () => {
  it('documents the new commands and their aliases', async () => {
    const adjust = (await ok(['cs-adjust-flight', '--help'])).stdout;
    expect(adjust).toMatch(/change JOBGLOB NAMEGLOB FROM TO/);
    expect((await ok(['flight', 'adjust', '--help'])).stdout).toMatch(/copy-jobs SRCFLIGHT JOBGLOB/);
    for (const c of [
      'flight bless',
      'cs-flight-bless',
      'hosts create-like',
      'hosts setflags',
      'hosts setprops',
      'hosts select',
      'hosts matrix',
    ]) {
      expect((await ok([...c.split(' '), '--help'])).stdout, c).toMatch(/^Usage: osstest /);
    }
    expect((await ok(['mg-hosts', '--help'])).stdout).toMatch(/Usage: osstest hosts\|mg-hosts/);
  });
});

describe('flight adjust', () => {
  beforeAll(async () => {
    await withStore(async (s) => {
      await s.createFlight({ flight: 'src', branch: 'demo', intended: 'real' });
      await s.createJob('src', 'build-amd64', 'build', {
        tree_xen: 'git://x/xen.git',
        revision_xen: 'aaa111',
      });
      await s.createJob('src', 'build-i386', 'build', {
        tree_xen: 'git://x/xen.git',
        revision_xen: 'aaa111',
      });
      await s.createJob('src', 'test-amd64-xl', 'test', {
        buildjob: 'build-amd64',
        kernbuildjob: 'other.build-amd64-pvops',
        toolstack: 'xl',
        debian_suite: 'bookworm',
      });
      await s.createJob('src', 'test-i386-xl', 'test', { buildjob: 'build-i386', toolstack: 'xl' });
      await s.markFlightStarted('src'); // a source may be any flight, finished or not
      await s.createFlight({ flight: 'dst', branch: 'demo', intended: 'play' });
      await s.createJob('dst', 'build-amd64', 'build', {
        tree_xen: 'git://x/xen.git',
        revision_xen: 'bbb222',
      });
    });
  });

  it('--dry-run prints the plan and writes nothing', async () => {
    const before = snapshotSqlite(db);
    const r = await ok([
      'flight',
      'adjust',
      'dst',
      'copy-jobs',
      'src',
      'test-*',
      'set',
      'test-*',
      'extra=1',
      '--dry-run',
    ]);
    expect(r.stdout).toMatch(/^flight dst: would change/);
    expect(r.stdout).toMatch(/\+ job test-amd64-xl \(recipe test, copied from flight src\)/);
    expect(r.stdout).toMatch(/test-i386-xl buildjob: build-i386 → src\.build-i386/);
    expect(snapshotSqlite(db)).toBe(before);
  });

  it('copies jobs, then sets, deletes and changes runvars in order', async () => {
    const r = await ok([
      'flight',
      'adjust',
      'dst',
      'copy-jobs',
      'src',
      'test-*',
      'set',
      'test-*,build-amd64',
      'extra=1',
      'note=x y',
      'del',
      'test-i386-xl',
      'toolstack',
      'change',
      '*',
      'tree_*,debian_*',
      'git://x/',
      'https://mirror/',
      'change',
      'test-amd64-xl',
      'debian_suite',
      'bookworm',
      'trixie',
      '--json',
    ]);
    const plan = JSON.parse(r.stdout) as {
      applied: boolean;
      createJobs: { job: string; recipe: string; from: string }[];
      rewritten: { job: string; name: string; old: string; val: string }[];
      set: { job: string; name: string; old: string | null; val: string }[];
    };
    expect(plan.applied).toBe(true);
    expect(plan.createJobs.map((c) => `${c.job}/${c.recipe}/${c.from}`)).toEqual([
      'test-amd64-xl/test/src',
      'test-i386-xl/test/src',
    ]);
    // dst has build-amd64 of its own, so only the i386 test's build reference goes back to src.
    expect(plan.rewritten).toEqual([
      { job: 'test-i386-xl', name: 'buildjob', old: 'build-i386', val: 'src.build-i386' },
    ]);
    expect(plan.set).toContainEqual({ job: 'build-amd64', name: 'extra', old: null, val: '1' });
    expect(plan.set).toContainEqual({
      job: 'build-amd64',
      name: 'tree_xen',
      old: 'git://x/xen.git',
      val: 'https://mirror/xen.git',
    });

    const rv = await runvars('dst');
    expect(rv['build-amd64']).toEqual({
      tree_xen: 'https://mirror/xen.git',
      revision_xen: 'bbb222',
      extra: '1',
      note: 'x y',
    });
    expect(rv['test-amd64-xl']).toEqual({
      buildjob: 'build-amd64',
      kernbuildjob: 'other.build-amd64-pvops',
      toolstack: 'xl',
      debian_suite: 'trixie',
      extra: '1',
      note: 'x y',
    });
    expect(rv['test-i386-xl']).toEqual({ buildjob: 'src.build-i386', extra: '1', note: 'x y' });
    const jobs = await withStore((s) => s.listJobs('dst'));
    expect(jobs.map((j) => `${j.job}:${j.status}`)).toEqual([
      'build-amd64:queued',
      'test-amd64-xl:queued',
      'test-i386-xl:queued',
    ]);
    // The source flight is untouched.
    expect((await runvars('src'))['test-amd64-xl']?.debian_suite).toBe('bookworm');
  });

  it('keeps same-flight build references when the builds are copied too (alias cs-adjust-flight)', async () => {
    await withStore((s) => s.createFlight({ flight: 'dst2', branch: 'demo', intended: 'play' }));
    const r = await ok(['cs-adjust-flight', 'dst2', 'copy-jobs', 'src', 'test-i386-xl', 'build-i386']);
    expect(r.stdout).not.toMatch(/→/);
    expect((await runvars('dst2'))['test-i386-xl']?.buildjob).toBe('build-i386');
  });

  it('del with name globs, and notes an operation that changed nothing', async () => {
    const r = await ok([
      'flight',
      'adjust',
      'dst',
      'del',
      'test-*',
      'ext*',
      'no_such_*',
      'change',
      '*',
      'note',
      'zzz',
      'q',
    ]);
    expect(r.stdout).toMatch(/- test-amd64-xl extra \(was 1\)/);
    expect(r.stderr).toMatch(/note: operation 2 \(change\): no note runvar holds 'zzz'/);
    const rv = await runvars('dst');
    expect(rv['test-amd64-xl']?.extra).toBeUndefined();
    expect(rv['test-i386-xl']?.extra).toBeUndefined();
    expect(rv['build-amd64']?.extra).toBe('1');
    const again = await ok(['flight', 'adjust', 'dst', 'del', 'test-*', 'extra']);
    expect(again.stdout).toMatch(/nothing to change/);
  });

  it('refuses bad operations before writing anything, even when earlier ones were fine', async () => {
    const set = ['set', 'build-amd64', 'ok=1'];
    await refused([
      [
        ['flight', 'adjust', 'dst', 'change', '*', 'tree_*', 'a', 'b', 'frobnicate'],
        /operation 2: 'frobnicate' is not an operation \(one of copy-jobs, set, del, change\)/,
      ],
      [['flight', 'adjust', 'dst', ...set, 'frobnicate'], /'frobnicate' is not NAME=VALUE, nor an operation/],
      [
        ['flight', 'adjust', 'dst', ...set, 'set', 'nomatch-*', 'a=1'],
        /operation 2 \(set\): no job of flight dst matches 'nomatch-\*'/,
      ],
      [['flight', 'adjust', 'dst', ...set, 'set', 'build-amd64', 'novalue'], /'novalue' is not NAME=VALUE/],
      [
        ['flight', 'adjust', 'dst', ...set, 'set', 'build-amd64', 'bad-name=1'],
        /invalid runvar name "bad-name"/,
      ],
      [['flight', 'adjust', 'dst', ...set, 'set', 'build-amd64'], /no NAME=VALUE after build-amd64/],
      [
        ['flight', 'adjust', 'dst', ...set, 'copy-jobs', 'src', 'build-amd64'],
        /already has a job 'build-amd64'.*does not replace/,
      ],
      [
        ['flight', 'adjust', 'dst', ...set, 'copy-jobs', 'nowhere', '*'],
        /operation 2 \(copy-jobs\): no flight 'nowhere'/,
      ],
      [
        ['flight', 'adjust', 'dst', ...set, 'copy-jobs', 'src', 'zz-*'],
        /no job of flight src matches 'zz-\*'/,
      ],
      [['flight', 'adjust', 'dst', ...set, 'copy-jobs', 'src'], /no JOBGLOB after src/],
      [['flight', 'adjust', 'dst', ...set, 'del', 'build-amd64'], /no NAMEGLOB after build-amd64/],
      [['flight', 'adjust', 'dst', ...set, 'change', '*', 'tree_*', '', 'x'], /FROM is empty/],
      [
        ['flight', 'adjust', 'dst', ...set, 'change', '*', 'tree_*', 'x'],
        /expected JOBGLOB NAMEGLOB FROM TO/,
      ],
      [['flight', 'adjust', 'dst', ...set, 'del', 'a,,b', 'x'], /empty alternative/],
      [['flight', 'adjust', 'nosuch', ...set], /no flight 'nosuch'/],
    ]);
  });

  it('refuses once the flight runs (frozen), dry run included', async () => {
    await withStore(async (s) => {
      await s.createFlight({ flight: 'late', branch: 'demo', intended: 'play' });
      await s.createJob('late', 'build-amd64', 'build', { a: '1' });
      await s.markFlightStarted('late');
    });
    await refused([
      [['flight', 'adjust', 'late', 'set', '*', 'a=2'], /flight late is running: its definition is frozen/],
      [['flight', 'adjust', 'late', 'del', '*', 'a', '--dry-run'], /frozen/],
      [['cs-adjust-flight', 'late', 'copy-jobs', 'src', 'test-*'], /frozen/],
    ]);
  });
});

describe('flight bless', () => {
  beforeAll(async () => {
    await withStore(async (s) => {
      await s.createFlight({ flight: 'b1', branch: 'demo', intended: 'real' });
      await s.createJob('b1', 'build-amd64', 'build');
      await s.createJob('b1', 'test-amd64', 'test');
      await s.markFlightStarted('b1');
      await s.setJobStatus('b1', 'build-amd64', 'pass');
      await s.setJobStatus('b1', 'test-amd64', 'running');
    });
  });

  it('refuses transitional states, bad names, unknown flights and running flights', async () => {
    await refused([
      [['flight', 'bless', 'b1', 'constructing'], /'constructing' is a state the flight moves through/],
      [['cs-flight-bless', 'b1', 'running', '--force'], /'running' is a state/],
      [['flight', 'bless', 'b1', 'real'], /flight b1 is still running \(test-amd64 running\).*--force/],
      [['flight', 'bless', 'nosuch', 'real'], /no flight 'nosuch'/],
      [['flight', 'bless', 'b1', 'no good', '--force'], /invalid blessing "no good"/],
    ]);
    // A queued job of a started flight is still to run.
    await withStore((s) => s.setJobStatus('b1', 'test-amd64', 'queued'));
    await refused([[['flight', 'bless', 'b1', 'real'], /still running \(test-amd64 queued\)/]]);
  });

  it('blesses with --force while running, and plainly once every job has ended', async () => {
    const forced = await ok(['flight', 'bless', 'b1', 'play', '--force']);
    expect(forced.stdout).toBe('flight b1: running → play\n');
    await withStore((s) => s.setJobStatus('b1', 'test-amd64', 'fail'));
    const r = JSON.parse((await ok(['cs-flight-bless', 'b1', 'real', '--json'])).stdout) as unknown;
    expect(r).toEqual({ flight: 'b1', old: 'play', blessing: 'real' });
    expect((await withStore((s) => s.getFlight('b1')))?.blessing).toBe('real');
  });
});

describe('hosts (mg-hosts)', () => {
  beforeAll(async () => {
    await withStore(async (s) => {
      await s.upsertHost({ name: 'alpha', ip: '127.0.0.11' });
      await s.setHostFlags('alpha', ['arch-amd64', 'equiv-1', 'purpose-test']);
      await s.setHostProp('alpha', 'PowerMethod', 'qemu');
      await s.setHostProp('alpha', 'Build_Make_Flags', '-j4');
      await s.upsertHost({ name: 'beta', ip: '127.0.0.12' });
      await s.setHostFlags('beta', ['arch-amd64', 'quarantined', 'equiv-2', 'retired']);
      await s.upsertHost({ name: 'gamma', ip: '127.0.0.13' });
      await s.setHostFlags('gamma', ['arch-i386', 'equiv-2']);
    });
  });

  it('create-like copies database flags and properties, not the address', async () => {
    const r = JSON.parse(
      (await ok(['mg-hosts', 'create-like', 'alpha2', 'alpha', '--ip', '127.0.0.21', '--json'])).stdout,
    ) as {
      name: string;
      ip: string | null;
      mac: string | null;
      flags: string[];
      props: Record<string, string>;
    };
    expect(r).toEqual({
      name: 'alpha2',
      ip: '127.0.0.21',
      mac: null,
      flags: ['arch-amd64', 'equiv-1', 'purpose-test'],
      props: { Build_Make_Flags: '-j4', PowerMethod: 'qemu' },
    });
    const plain = await ok(['hosts', 'create-like', 'alpha3', 'alpha', '--mac', '52-54-00-AA-BB-01']);
    expect(plain.stdout).toMatch(/^alpha3: like alpha; flags arch-amd64,equiv-1,purpose-test; props /);
    const h = await withStore((s) => s.getHost('alpha3'));
    expect(h?.mac).toBe('52:54:00:aa:bb:01');
    expect(h?.ip).toBeNull();
    await refused([
      [['hosts', 'create-like', 'alpha2', 'alpha'], /host 'alpha2' already exists/],
      [['hosts', 'create-like', 'delta', 'nobody'], /no host 'nobody'/],
      [['hosts', 'create-like', 'bad_name', 'alpha'], /invalid host name "bad_name"/],
      [['hosts', 'create-like', 'delta', 'alpha', '--mac', 'zz'], /invalid MAC address "zz" for host delta/],
      [
        ['hosts', 'create-like', 'delta', 'alpha', '--mac', '52:54:00:aa:bb:01'],
        /already belongs to host alpha3/,
      ],
    ]);
  });

  it('setflags edits every host a glob matches, and only those', async () => {
    const r = await ok(['hosts', 'setflags', 'alpha?', '+blessed-real', '-equiv-1', '!purpose-test']);
    expect(r.stdout).toMatch(/alpha2\s+arch-amd64,blessed-real/);
    expect(r.stdout).toMatch(/alpha3\s+arch-amd64,blessed-real/);
    const flags = async (h: string) => (await withStore((s) => s.getHost(h)))?.flags;
    expect(await flags('alpha2')).toEqual(['arch-amd64', 'blessed-real']);
    expect(await flags('alpha3')).toEqual(['arch-amd64', 'blessed-real']);
    expect(await flags('alpha')).toEqual(['arch-amd64', 'equiv-1', 'purpose-test']);
    const j = JSON.parse((await ok(['hosts', 'setflags', 'beta,gamma', 'hvm', '--json'])).stdout) as {
      host: string;
      flags: string[];
    }[];
    expect(j.map((x) => x.host)).toEqual(['beta', 'gamma']);
    expect(j.every((x) => x.flags.includes('hvm'))).toBe(true);
    await refused([
      [
        ['hosts', 'setflags', 'zeta*', '+x'],
        /no host matches 'zeta\*' \(hosts: alpha alpha2 alpha3 beta gamma\)/,
      ],
      [['hosts', 'setflags', '*', '+x', 'bad/flag'], /'bad\/flag' is not a flag edit/],
      [['hosts', 'setflags', '*', '+x', '-x'], /flag x is both added and removed/],
      [['hosts', 'setflags', '*,', '+x'], /empty alternative/],
    ]);
  });

  it('setprops sets and deletes properties on every host a glob matches', async () => {
    await ok(['hosts', 'setprops', 'alpha*', 'SerialMethod=qemu', 'Build_Make_Flags=']);
    const props = async (h: string) => (await withStore((s) => s.getHost(h)))?.props;
    expect(await props('alpha')).toEqual({ PowerMethod: 'qemu', SerialMethod: 'qemu' });
    expect(await props('alpha2')).toEqual({ PowerMethod: 'qemu', SerialMethod: 'qemu' });
    expect(await props('beta')).toEqual({});
    await refused([
      [['hosts', 'setprops', 'nomatch', 'A=1'], /no host matches 'nomatch'/],
      [['hosts', 'setprops', '*', 'A=1', 'novalue'], /'novalue' is not Prop=value/],
      [['hosts', 'setprops', '*', 'A=1', '9lives=1'], /invalid host property name "9lives"/],
    ]);
  });

  it('select picks hosts by a flag expression over database and config flags', async () => {
    const sel = async (...w: string[]) =>
      (JSON.parse((await ok(['hosts', 'select', ...w, '--json'])).stdout) as { hosts: string[] }).hosts;
    expect(await sel('arch-amd64 & !quarantined & (equiv-1 | equiv-2)')).toEqual(['alpha']);
    expect(await sel('equiv-2')).toEqual(['beta', 'gamma']);
    // HostFlags_gamma adds cfg-only; HostFlags !retired takes beta's database flag away.
    expect(await sel('cfg-only')).toEqual(['gamma']);
    expect(await sel('retired')).toEqual([]);
    // Words are joined, so the shell need not see one argument.
    expect(await sel('arch-*', '&', '!', 'hvm')).toEqual(['alpha', 'alpha2', 'alpha3']);
    const text = await ok(['mg-hosts', 'select', 'equiv-1 | arch-i386']);
    expect(text.stdout).toBe('alpha\ngamma\n');
    const typo = await ok(['hosts', 'select', 'equiv-1 | quarantned']);
    expect(typo.stderr).toMatch(/no host has flag 'quarantned'/);
    await refused([
      [
        ['hosts', 'select', 'arch-amd64 & (equiv-1 | equiv-2'],
        /column 32: '\(' at column 14 is not closed\n {2}arch-amd64 & \(equiv-1 \| equiv-2\n {33}\^/,
      ],
      [['hosts', 'select', 'arch-amd64 && hvm'], /column 12: '&&' is not an operator/],
      [['hosts', 'select', 'a & -b'], /column 5: a flag cannot start with '-'/],
    ]);
  });

  it('matrix shows hosts × effective flags, filtered by globs', async () => {
    const m = JSON.parse((await ok(['hosts', 'matrix', '--flags', 'equiv-*,cfg-*', '--json'])).stdout) as {
      flags: string[];
      hosts: { name: string; flags: string[] }[];
    };
    expect(m.flags).toEqual(['cfg-only', 'equiv-1', 'equiv-2']);
    expect(m.hosts).toEqual([
      { name: 'alpha', flags: ['equiv-1'] },
      { name: 'alpha2', flags: [] },
      { name: 'alpha3', flags: [] },
      { name: 'beta', flags: ['equiv-2'] },
      { name: 'gamma', flags: ['cfg-only', 'equiv-2'] },
    ]);
    const t = (await ok(['mg-hosts', 'matrix', '--flags', 'equiv-?', '--hosts', 'alpha,beta'])).stdout;
    expect(t).toBe(
      [
        '       e e',
        '       q q',
        '       u u',
        '       i i',
        '       v v',
        '       - -',
        '       1 2',
        'host   - -',
        'alpha  x .',
        'beta   . x',
        '',
      ].join('\n'),
    );
  });
});
