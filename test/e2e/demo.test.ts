/**
 * The heart of the demo (`npm run demo`, src/lab/demo.ts) as a test: the push gate on the virtual lab,
 * through the CLI. Two sample trees with history (hello and the libadd it is built with) in bare
 * "upstreams"; `lab up` with one QEMU test host and one netns build host; `daily-branch` tests
 * libadd's master (a baseline flight) — its build job runs on the build host, its test job on the QEMU
 * host, which ts-host-install brings from power-off to ssh through our DHCP, TFTP and HTTP (ramdisk);
 * then clean staging commits are tested and pushed (master == staging); then a staging commit that
 * breaks hello's add tests is caught: the test job fails, nothing is pushed, a bisection is requested.
 * Serial logs and host events are in the test job's logs directory. `lab down` at the end.
 *
 * Left out to stay within a few minutes of CI under TCG: running the bisection to the breaking commit
 * (eleven more flights on the lab, about eight minutes; bisect --run on real flights is tested in
 * test/integration/bisect-flights.test.ts); the demo itself does it on the lab.
 *
 * Software emulation (TCG) unless OSSTEST_TEST_LAB_ACCEL=kvm; the kernel package is kept in
 * /var/tmp/osstest-e2e-images (OSSTEST_TEST_IMAGES overrides) as for test/e2e/virtual-lab.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DailyBranchResult } from '../../src/gate/daily-branch.js';
import { commitLibaddChanges, createSampleTrees, type SampleTrees } from '../../src/lab/sample-project.js';
import { prerequisites } from '../helpers/env.js';
import { createWorkspace, type Workspace } from '../helpers/workspace.js';

const ok = prerequisites('the demo on the virtual lab', {
  root: true,
  commands: [
    'qemu-system-x86_64',
    'ip',
    '/usr/sbin/sshd',
    '/bin/busybox',
    '/usr/sbin/dropbear',
    '/usr/lib/openssh/sftp-server',
    'dropbearkey',
    'apt-get',
    'dpkg-deb',
    'git',
    'gcc',
    'make',
  ],
});

// Addresses of its own (the demo uses 10.218.0.0/24), so a demo running on this machine is not disturbed.
const NS = 'ot-demo-e2e';
const SUBNET = '10.218.1';
const IMAGES = process.env.OSSTEST_TEST_IMAGES || '/var/tmp/osstest-e2e-images';
const BRANCH = 'demo-libadd';
const BUILD = 'build-amd64';
const TEST = 'test-amd64-amd64-demo';
const QHOST = 'dtest-q0';
const BHOST = 'dtest-b0';

function git(repo: string, ...args: string[]): string {
  return execFileSync('git', ['-C', repo, ...args], { encoding: 'utf8' }).trim();
}

describe.skipIf(!ok)(
  'the demo: the push gate on the virtual lab (build on a netns host, test on QEMU)',
  () => {
    let ws: Workspace;
    let trees: SampleTrees;
    let upstream: string;
    let baseline: DailyBranchResult;
    let down = false;

    const cli = async (args: string[], timeoutMs = 150_000, codes = [0]) => {
      const r = await ws.cli(args, {}, timeoutMs);
      if (!codes.includes(r.code))
        throw new Error(`osstest ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
      return r.stdout;
    };
    const steps = async (flight: string, job: string) => {
      const s = await ws.openStore();
      try {
        return (await s.listSteps(flight, job)).map((x) => `${x.testid}:${x.status}`);
      } finally {
        await s.close();
      }
    };
    const runvar = async (flight: string, job: string, name: string) => {
      const s = await ws.openStore();
      try {
        return (await s.getRunvar(flight, job, name))?.val;
      } finally {
        await s.close();
      }
    };

    beforeAll(async () => {
      ws = createWorkspace([
        `Images ${IMAGES}`,
        `LabNamespace ${NS}`,
        `LabSubnet ${SUBNET}.0/24`,
        'LabLinkNet 10.218.255.4/30',
        'LabHostPrefix dtest',
        'LabQemuHosts 1',
        'LabBuildHosts 1',
        `LabQemuAccel ${process.env.OSSTEST_TEST_LAB_ACCEL || 'tcg'}`,
        'HostInstallTimeout 200',
        `BranchTrees_${BRANCH.replace(/-/g, '_')} hello libadd`,
        `TreeUnderTest_${BRANCH.replace(/-/g, '_')} libadd`,
        'GateRetries 0',
        'DemoArchs amd64',
        'DemoBuildCommand make && make install DESTDIR="$OSSTEST_DIST"',
        'DemoTestCommand ./run-tests',
      ]);
      trees = await createSampleTrees(join(ws.dir, 'work'));
      for (const t of ['hello', 'libadd'] as const) {
        const up = join(ws.dir, 'upstream', `${t}.git`);
        execFileSync('git', ['clone', '--bare', '--quiet', trees[t], up]);
        git(up, 'branch', 'staging', 'master');
      }
      upstream = join(ws.dir, 'upstream', 'libadd.git');
      ws.configure([
        `LabDir ${join(ws.dir, 'lab')}`,
        `TftpPath ${join(ws.dir, 'tftp')}`,
        `WebspaceDir ${join(ws.dir, 'webspace')}`,
        `Tree_hello ${join(ws.dir, 'upstream', 'hello.git')}`,
        `Tree_libadd ${upstream}`,
      ]);
      await cli(['images', 'update'], 300_000);
      await cli(['lab', 'up']);
    }, 400_000);

    afterAll(async () => {
      if (ws && !down) await ws.cli(['lab', 'down'], {}, 120_000);
      ws?.cleanup();
    }, 150_000);

    it("a baseline flight of libadd's master: built on the build host, tested on the QEMU host it installed", async () => {
      const t0 = Date.now();
      baseline = JSON.parse(await cli(['daily-branch', BRANCH, '--json'], 400_000)) as DailyBranchResult;
      process.stderr.write(`demo e2e: baseline flight in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
      expect(baseline).toMatchObject({ kind: 'baseline', outcome: 'baseline tested', push: null });
      expect(baseline.judgement?.overall).toBe('perfect');
      const f = baseline.flight!;
      expect(await steps(f, BUILD)).toEqual([
        'hosts-allocate:pass',
        'build-prep:pass',
        'build:pass',
        'capture-logs:pass',
      ]);
      expect(await steps(f, TEST)).toEqual([
        'build-check:pass',
        'hosts-allocate:pass',
        'host-install:pass',
        'install-dist:pass',
        'run-tests:pass',
        'capture-logs:pass',
      ]);
      expect(await runvar(f, BUILD, 'host')).toBe(BHOST);
      expect(await runvar(f, TEST, 'host')).toBe(QHOST);
      expect(await runvar(f, TEST, 'host_install_method')).toBe('ramdisk');
      expect(await runvar(f, TEST, 'tests_passed')).toBe('4');
      expect(await runvar(f, BUILD, 'built_revision_libadd')).toBe(git(upstream, 'rev-parse', 'master'));

      // The QEMU host's serial console and its boot progress are in the test job's logs.
      const logs = join(ws.dir, 'logs', f, TEST);
      const serial = readFileSync(join(logs, `serial-${QHOST}.log`), 'utf8');
      expect(serial).toContain('iPXE');
      expect(serial).toContain(`osstest-ramdisk: host ${QHOST}`);
      expect(serial).toContain('osstest-ramdisk: boot complete');
      const events = readFileSync(join(logs, `host-events-${QHOST}.log`), 'utf8');
      expect(events).toMatch(/ dhcp ack /);
      expect(events).toMatch(/ progress booted\n/);
      expect(events).toMatch(/ progress ssh-ready\n/);
      const run = readFileSync(
        join(logs, (await stepLogName(ws, f, TEST, 'run-tests')) ?? 'missing'),
        'utf8',
      );
      expect(run).toContain('test: add-negative: pass');
      // The build host built it: its workdir is the netns host's, not the QEMU host's.
      expect(existsSync(join(ws.dir, 'logs', f, BUILD, 'build', 'dist.tar.gz'))).toBe(true);
    }, 420_000);

    it('clean commits on staging are tested on the lab and pushed: master == staging', async () => {
      const master = git(upstream, 'rev-parse', 'master');
      const clean = await commitLibaddChanges(trees, 2);
      execFileSync('git', ['-C', trees.libadd, 'push', '--quiet', upstream, 'HEAD:staging']);
      const r = JSON.parse(await cli(['daily-branch', BRANCH, '--json'], 400_000)) as DailyBranchResult;
      expect(r).toMatchObject({ kind: 'test', outcome: 'pushed', old: master, new: clean.at(-1) });
      expect(r.push).toMatchObject({ result: 'pushed', from: master, to: clean.at(-1), ref: 'master' });
      expect(git(upstream, 'rev-parse', 'master')).toBe(git(upstream, 'rev-parse', 'staging'));
      expect(await steps(r.flight!, TEST)).toContain('host-install:pass');
      expect(await runvar(r.flight!, TEST, 'host')).toBe(QHOST);
    }, 420_000);

    it('a staging commit that breaks a test in the second tree is caught on the lab and not pushed', async () => {
      const master = git(upstream, 'rev-parse', 'master');
      const [, bad] = await commitLibaddChanges(trees, 2, { breakAt: 2 });
      execFileSync('git', ['-C', trees.libadd, 'push', '--quiet', upstream, 'HEAD:staging']);
      const r = JSON.parse(await cli(['daily-branch', BRANCH, '--json'], 400_000, [1])) as DailyBranchResult;
      expect(r).toMatchObject({ kind: 'test', outcome: 'not pushed', push: null, old: master, new: bad });
      expect(r.judgement?.tolerable).toBe(false);
      expect(JSON.stringify(r.judgement?.failures)).toContain('run-tests');
      expect(git(upstream, 'rev-parse', 'master')).toBe(master);
      const f = r.flight!;
      expect(await steps(f, TEST)).toEqual([
        'build-check:pass',
        'hosts-allocate:pass',
        'host-install:pass',
        'install-dist:pass',
        'run-tests:fail',
        'capture-logs:pass',
      ]);
      expect(await runvar(f, TEST, 'host')).toBe(QHOST);
      expect(await runvar(f, TEST, 'tests_failed')).toBe('2');
      expect(readFileSync(join(ws.dir, 'logs', f, TEST, `serial-${QHOST}.log`), 'utf8')).toContain(
        'osstest-ramdisk: boot complete',
      );
      // The gate asked for a bisection of the regression.
      const s = await ws.openStore();
      try {
        const b = await s.listBisections({ branch: BRANCH });
        expect(b.map((x) => `${x.job} ${x.testid} ${x.requestedFlight}`)).toEqual([`${TEST} run-tests ${f}`]);
      } finally {
        await s.close();
      }
    }, 420_000);

    it('lab down removes the namespace', async () => {
      await cli(['lab', 'down']);
      down = true;
      expect(execFileSync('ip', ['netns', 'list']).toString()).not.toContain(NS);
    }, 120_000);
  },
);

async function stepLogName(ws: Workspace, flight: string, job: string, testid: string) {
  const s = await ws.openStore();
  try {
    const step = (await s.listSteps(flight, job)).find((x) => x.testid === testid);
    return step?.logPath?.split('/').at(-1);
  } finally {
    await s.close();
  }
}
