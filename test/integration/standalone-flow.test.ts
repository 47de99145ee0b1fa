/**
 * The standalone user's whole story, through the CLI, on real hosts: two network namespaces running
 * OpenSSH's sshd (a build host and a test host), a real git tree with a small C project, the real
 * sqlite store. Build → stash → install → tests; then a broken build (test blocked), a failing test
 * (fail), an unreachable host (broken) and a test killed by its timeout (recorded, log kept).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  commitBrokenBuild,
  commitFailingTest,
  commitFixed,
  commitHangingTest,
  createSampleProject,
  type SampleProject,
} from '../../src/lab/sample-project.js';
import { prerequisites } from '../helpers/env.js';
import { createTestHosts, type TestHost } from '../helpers/netns.js';
import { createWorkspace, type Workspace } from '../helpers/workspace.js';

const ok = prerequisites('standalone flow on netns sshd hosts', {
  root: true,
  commands: ['ip', '/usr/sbin/sshd', 'git', 'make', 'cc'],
});

interface Shown {
  jobs: {
    job: string;
    status: string;
    steps: { stepno: number; testid: string; status: string; logPath: string | null }[];
    runvars: { name: string; val: string; synth: boolean }[];
  }[];
}

describe.skipIf(!ok)('standalone: standalone-reset, run-job build, run-job test', () => {
  let ws: Workspace;
  let project: SampleProject;
  let buildHost: TestHost;
  let testHost: TestHost;

  const cli = async (args: string[], expectCode?: number) => {
    const r = await ws.cli(args);
    if (expectCode !== undefined && r.code !== expectCode) {
      throw new Error(
        `osstest ${args.join(' ')} exited ${r.code}, wanted ${expectCode}\n${r.stdout}\n${r.stderr}`,
      );
    }
    return r;
  };
  const show = async (): Promise<Shown> =>
    JSON.parse((await cli(['flight', 'show', '--json'], 0)).stdout) as Shown;
  const job = (s: Shown, name: string) => s.jobs.find((j) => j.job === name)!;
  const rv = (s: Shown, j: string, name: string) => job(s, j).runvars.find((r) => r.name === name)?.val;
  const steps = (s: Shown, j: string) => job(s, j).steps.map((x) => `${x.testid}:${x.status}`);
  const stepLog = (s: Shown, j: string, testid: string) => {
    const st = job(s, j).steps.find((x) => x.testid === testid)!;
    return readFileSync(join(ws.dir, 'logs', st.logPath!), 'utf8');
  };
  const reset = (rev: string) => cli(['standalone-reset', '--rev', `demo=${rev}`], 0);

  beforeAll(async () => {
    ws = createWorkspace();
    project = await createSampleProject(join(ws.dir, 'demo.git'));
    ws.configure([
      `Tree_demo ${project.path}`,
      'DemoBuildCommand make && make install DESTDIR="$OSSTEST_DIST"',
      'DemoTestCommand ./run-tests',
      `HostProp_buildbox_Workdir ${join(ws.dir, 'hosts', 'buildbox')}`,
      `HostProp_testbox_Workdir ${join(ws.dir, 'hosts', 'testbox')}`,
      'HostProp_CaptureFiles /etc/hostname',
    ]);
    await reset(project.good);
    const pub = readFileSync(join(ws.dir, 'keys', 'id_ed25519.pub'), 'utf8');
    const made = await createTestHosts(2, { authorizedKeys: pub });
    buildHost = made[0]!;
    testHost = made[1]!;
    await cli(
      ['hosts', 'add', 'buildbox', '--ip', buildHost.address, '--flags', 'purpose-build,arch-amd64'],
      0,
    );
    await cli(['hosts', 'add', 'testbox', '--ip', testHost.address, '--flags', 'purpose-test,arch-amd64'], 0);
  });

  afterAll(() => ws?.cleanup());

  it('builds on the build host, stashes the artefacts, installs and tests them on the test host', async () => {
    const b = await cli(['run-job', 'build-amd64'], 0);
    expect(b.stdout).toMatch(/standalone build-amd64: pass/);
    let s = await show();
    expect(steps(s, 'build-amd64')).toEqual([
      'hosts-allocate:pass',
      'build-prep:pass',
      'build:pass',
      'capture-logs:pass',
    ]);
    expect(rv(s, 'build-amd64', 'host')).toBe('buildbox');
    expect(rv(s, 'build-amd64', 'built_revision_demo')).toBe(project.good);
    expect(rv(s, 'build-amd64', 'path_dist')).toBe('build/dist.tar.gz');
    const tarball = join(ws.dir, 'logs', 'standalone', 'build-amd64', 'build', 'dist.tar.gz');
    const listing = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' });
    expect(listing).toContain('./bin/hello');
    expect(listing).toContain('./run-tests');
    expect(stepLog(s, 'build-amd64', 'build')).toMatch(/cc .*-o hello hello\.c/);
    expect(existsSync(join(ws.dir, 'logs', 'standalone', 'build-amd64', 'buildbox--uname.log'))).toBe(true);

    const t = await cli(['run-job', 'test-amd64-amd64-demo'], 0);
    expect(t.stdout).toMatch(/test-amd64-amd64-demo: pass/);
    s = await show();
    expect(steps(s, 'test-amd64-amd64-demo')).toEqual([
      'build-check:pass',
      'hosts-allocate:pass',
      'host-install:pass',
      'install-dist:pass',
      'run-tests:pass',
      'capture-logs:pass',
    ]);
    expect(rv(s, 'test-amd64-amd64-demo', 'host')).toBe('testbox');
    expect(rv(s, 'test-amd64-amd64-demo', 'tests_passed')).toBe('3');
    expect(rv(s, 'test-amd64-amd64-demo', 'tests_failed')).toBe('0');
    const log = stepLog(s, 'test-amd64-amd64-demo', 'run-tests');
    expect(log).toMatch(/test: greeting: pass/);
    expect(log).toMatch(/test: add: pass/);
    expect(log).toMatch(/exit status 0: step pass/);
    // The installed binary is on the test host, not just in the stash.
    const prefix = rv(s, 'test-amd64-amd64-demo', 'install_prefix')!;
    expect(prefix.startsWith(join(ws.dir, 'hosts', 'testbox'))).toBe(true);
    expect(execFileSync(join(prefix, 'bin', 'hello'), { encoding: 'utf8' })).toBe('hello, world\n');
    // Any testcase runs by hand with the executor's arguments: no step is recorded.
    const byHand = await ws.cli(['ts', '--job', 'test-amd64-amd64-demo', 'ts-run-tests', 'host=testbox']);
    expect(byHand.code).toBe(0);
    expect(byHand.stdout).toMatch(/test: add: pass/);
    expect(job(await show(), 'test-amd64-amd64-demo').steps).toHaveLength(6);
    // Host keys were recorded on first contact; hosts were released when the jobs ended.
    const hosts = JSON.parse((await cli(['hosts', 'list', '--json'], 0)).stdout) as {
      name: string;
      allocation: unknown;
      dbProps: Record<string, string>;
    }[];
    for (const h of hosts.filter((x) => ['buildbox', 'testbox'].includes(x.name))) {
      expect(h.allocation).toBeNull();
      expect(h.dbProps.SshHostKey).toBeTruthy();
    }
  });

  it('a broken build fails the build job and blocks the test job', async () => {
    const rev = await commitBrokenBuild(project);
    await reset(rev);
    await cli(['run-job', 'build-amd64'], 1);
    await cli(['run-job', 'test-amd64-amd64-demo'], 1);
    const s = await show();
    expect(job(s, 'build-amd64').status).toBe('fail');
    expect(steps(s, 'build-amd64')).toEqual([
      'hosts-allocate:pass',
      'build-prep:pass',
      'build:fail',
      'capture-logs:pass',
    ]);
    expect(stepLog(s, 'build-amd64', 'build')).toMatch(/this is not C/);
    expect(job(s, 'test-amd64-amd64-demo').status).toBe('blocked');
    expect(steps(s, 'test-amd64-amd64-demo')).toEqual(['build-check:blocked', 'capture-logs:pass']);
  });

  it('a failing test makes the test job fail, with the failing test named in its log', async () => {
    const rev = await commitFailingTest(project);
    await reset(rev);
    await cli(['run-job', 'build-amd64'], 0);
    await cli(['run-job', 'test-amd64-amd64-demo'], 1);
    const s = await show();
    expect(job(s, 'test-amd64-amd64-demo').status).toBe('fail');
    expect(steps(s, 'test-amd64-amd64-demo')).toEqual([
      'build-check:pass',
      'hosts-allocate:pass',
      'host-install:pass',
      'install-dist:pass',
      'run-tests:fail',
      'capture-logs:pass',
    ]);
    expect(rv(s, 'test-amd64-amd64-demo', 'tests_failed')).toBe('1');
    expect(stepLog(s, 'test-amd64-amd64-demo', 'run-tests')).toMatch(/test: add: fail/);
  });

  it('an unreachable test host makes the job broken', async () => {
    const rev = await commitFixed(project);
    await reset(rev);
    await cli(['run-job', 'build-amd64'], 0);
    await testHost.stopSshd();
    try {
      await cli(['run-job', 'test-amd64-amd64-demo'], 1);
    } finally {
      await testHost.startSshd();
    }
    const s = await show();
    expect(job(s, 'test-amd64-amd64-demo').status).toBe('broken');
    expect(steps(s, 'test-amd64-amd64-demo').slice(0, 4)).toEqual([
      'build-check:pass',
      'hosts-allocate:pass',
      'host-install:pass',
      'install-dist:broken',
    ]);
    expect(stepLog(s, 'test-amd64-amd64-demo', 'install-dist')).toMatch(/cannot reach testbox/);
    // A host without an InstallMethod (a netns host) is used as it is: ts-host-install passes, installing nothing.
    expect(stepLog(s, 'test-amd64-amd64-demo', 'host-install')).toMatch(
      /testbox has no InstallMethod: used as it is, nothing to install/,
    );
  });

  it('a test killed by its timeout is recorded as failed with its log', async () => {
    const rev = await commitHangingTest(project, 120);
    await reset(rev);
    ws.configure(['StepTimeout_run_tests 4']);
    await cli(['run-job', 'build-amd64'], 0);
    await cli(['run-job', 'test-amd64-amd64-demo'], 1);
    const s = await show();
    expect(steps(s, 'test-amd64-amd64-demo')).toEqual([
      'build-check:pass',
      'hosts-allocate:pass',
      'host-install:pass',
      'install-dist:pass',
      'run-tests:fail',
      'capture-logs:pass',
    ]);
    const log = stepLog(s, 'test-amd64-amd64-demo', 'run-tests');
    expect(log).toMatch(/timed out after 4 s/);
    expect(log).toMatch(/1\.\.3/);
  });
});
