/**
 * The push gate end to end on real git repositories made here: two trees (xen, several hundred
 * commits with side branches merged back; linux likewise), each with a bare "upstream" holding
 * `staging` and `master`. Flights go through the real make-flight, execute-flight (runner processes,
 * the shipped recipes, the real ts-hosts-allocate and ts-build-check), the report loader and judge,
 * and the real push to the upstream. Only the costly steps are shadowed in the workspace's
 * TestcasePath: the build records what it was given (reading the flight's tree, the gate's mirror),
 * and run-tests fails when a marker commit is in the tested xen, fails once when told to, and can
 * move master upstream while the flight runs.
 *
 * Each scenario has its own workspace (database, config, mirrors) and its own upstreams.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/db/store.js';
import { type DailyBranchResult, dailyBranch, GateStoppedError } from '../../src/gate/daily-branch.js';
import { MirrorError, mirrorPath, syncMirror, withFileLock } from '../../src/gate/mirror.js';
import { prerequisites } from '../helpers/env.js';
import { generateTwoTrees, type TwoTrees } from '../helpers/gitrepos.js';
import { createWorkspace, nodeTestcase, repoRoot, type Workspace } from '../helpers/workspace.js';

const ok = prerequisites('the push gate over real git repositories', { commands: ['git', 'flock'] });

const TEST_JOB = 'test-amd64-amd64-demo';

let root: string;
let src: TwoTrees;
/** Main-line commits of xen after its basis, oldest first: each an ancestor of the next and of the tip. */
let line: string[];

function gitOut(args: string[]): string {
  return execFileSync('git', args, { encoding: 'utf8' }).trim();
}

function isAncestor(repo: string, a: string, b: string): boolean {
  try {
    execFileSync('git', ['-C', repo, 'merge-base', '--is-ancestor', a, b]);
    return true;
  } catch {
    return false;
  }
}

/** The written report email, its quoted-printable body decoded. */
function mailText(file: string): string {
  return readFileSync(file, 'utf8')
    .replace(/=\r?\n/g, '')
    .replace(/=([0-9A-F]{2})/g, (_m, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
}

interface Scenario {
  branch: string;
  ws: Workspace;
  store: Store;
  ctl: string;
  xenUp: string;
  linuxUp: string;
  ref(repo: string, branch: string): string;
  setRef(repo: string, branch: string, sha: string): void;
  run(): Promise<DailyBranchResult>;
  runsLog(): string[];
}

const scenarios: Scenario[] = [];

async function scenario(branch: string, extra: string[] = []): Promise<Scenario> {
  const ws = createWorkspace([
    'FlightHostWait 60',
    `BranchTrees_${branch.replace(/-/g, '_')} xen linux`,
    `TreeUnderTest_${branch.replace(/-/g, '_')} xen`,
    'DemoArchs amd64',
    'DemoBuildCommand true',
    'DemoTestCommand true',
    'GateRetries 1',
    ...extra,
  ]);
  const ctl = join(ws.dir, 'ctl');
  execFileSync('mkdir', ['-p', ctl]);
  const xenUp = join(ws.dir, 'upstream', 'xen.git');
  const linuxUp = join(ws.dir, 'upstream', 'linux.git');
  for (const [from, to] of [
    [src.xen.path, xenUp],
    [src.linux.path, linuxUp],
  ] as const) {
    execFileSync('git', ['clone', '--bare', '--quiet', from, to]);
  }
  ws.configure([`Tree_xen ${xenUp}`, `Tree_linux ${linuxUp}`]);
  const setRef = (repo: string, b: string, sha: string) =>
    execFileSync('git', ['-C', repo, 'update-ref', `refs/heads/${b}`, sha]);
  setRef(xenUp, 'master', src.xen.basis);
  setRef(xenUp, 'staging', src.xen.failure);
  setRef(linuxUp, 'master', src.linux.failure);

  for (const t of ['ts-build-prep', 'ts-install-dist', 'ts-logs-capture'])
    ws.addTestcase(t, '#!/bin/sh\nexit 0\n');
  ws.addTestcase(
    'ts-build',
    nodeTestcase(`
  const { execFileSync } = await import('node:child_process');
  const rv = await tc.runvars();
  for (const [name, url] of Object.entries(rv)) {
    if (!name.startsWith('tree_')) continue;
    const t = name.slice(5);
    const head = execFileSync('git', ['-C', url, 'rev-parse', '--verify', rv['revision_' + t] + '^{commit}'], { encoding: 'utf8' }).trim();
    tc.log('tree ' + t + ': ' + url + ' at ' + head);
    await tc.setRunvar('built_revision_' + t, head);
  }`),
  );
  ws.addTestcase(
    'ts-run-tests',
    nodeTestcase(`
  const { execFileSync } = await import('node:child_process');
  const fs = await import('node:fs');
  const ctl = ${JSON.stringify(ctl)};
  const up = ${JSON.stringify(xenUp)};
  const rev = await tc.runvar('revision_xen');
  const host = await tc.runvar('host');
  fs.appendFileSync(ctl + '/runs.log', tc.flight + ' ' + tc.job + ' ' + host + ' ' + rev + '\\n');
  if (fs.existsSync(ctl + '/move-master')) {
    const to = fs.readFileSync(ctl + '/move-master', 'utf8').trim();
    fs.unlinkSync(ctl + '/move-master');
    execFileSync('git', ['-C', up, 'update-ref', 'refs/heads/master', to]);
    tc.log('moved master upstream to ' + to);
  }
  if (fs.existsSync(ctl + '/flaky-once')) {
    fs.unlinkSync(ctl + '/flaky-once');
    throw new Error('a flaky failure, this once');
  }
  if (fs.existsSync(ctl + '/bad')) {
    const bad = fs.readFileSync(ctl + '/bad', 'utf8').trim();
    let has = true;
    try { execFileSync('git', ['-C', up, 'merge-base', '--is-ancestor', bad, rev]); } catch { has = false; }
    if (has) throw new Error('marker commit ' + bad + ' is in the tested tree');
  }
  tc.log('tests pass on ' + host);`),
  );

  const store = await ws.openStore();
  const hosts: [string, string[]][] = [
    ['bh1', ['arch-amd64', 'purpose-build']],
    ['th1', ['arch-amd64', 'purpose-test', 'equiv-a']],
    ['th2', ['arch-amd64', 'purpose-test', 'equiv-a']],
  ];
  for (const [name, flags] of hosts) {
    await store.upsertHost({ name, ip: '127.0.0.1' });
    await store.setHostFlags(name, flags);
  }
  const s: Scenario = {
    branch,
    ws,
    store,
    ctl,
    xenUp,
    linuxUp,
    ref: (repo, b) => gitOut(['-C', repo, 'rev-parse', `refs/heads/${b}`]),
    setRef,
    run: () => dailyBranch({ store, config: ws.config(), branch }),
    runsLog: () =>
      existsSync(join(ctl, 'runs.log')) ? readFileSync(join(ctl, 'runs.log'), 'utf8').trim().split('\n') : [],
  };
  scenarios.push(s);
  return s;
}

beforeAll(async () => {
  if (!ok) return;
  root = mkdtempSync(join(tmpdir(), 'osstest-gate-'));
  src = await generateTwoTrees(join(root, 'src'), 400, 300, 11);
  const main = src.xen.commits.filter(
    (c) => c.inRange && (c.label.startsWith('main-') || c.label.startsWith('merge')),
  );
  line = main.map((c) => c.sha);
});

afterAll(async () => {
  for (const s of scenarios) {
    await s.store.close();
    s.ws.cleanup();
  }
  if (root) rmSync(root, { recursive: true, force: true });
});

describe.skipIf(!ok)('osstest daily-branch', () => {
  it('the generated trees are what the scenarios need: hundreds of commits, merges, a main line', () => {
    expect(src.xen.range.length).toBe(400);
    expect(src.linux.range.length).toBe(300);
    expect(src.xen.commits.filter((c) => c.merge).length).toBeGreaterThan(3);
    expect(line.length).toBeGreaterThan(100);
    expect(line.at(-1)).toBe(src.xen.failure);
    const third = line[Math.floor(line.length / 3)]!;
    expect(isAncestor(src.xen.path, src.xen.basis, third)).toBe(true);
    expect(isAncestor(src.xen.path, third, src.xen.failure)).toBe(true);
  });

  it('baseline test first; block-push honoured; clean staging pushed as a fast-forward; then nothing to do; stop refuses', async () => {
    const s = await scenario('demo-clean');
    const cli = (args: string[]) => s.ws.cli(args);
    const cliOk = async (args: string[]) => {
      const r = await cli(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r;
    };

    // Nothing has tested master: a baseline test of master itself, no push.
    const first = await cli(['daily-branch', s.branch, '--json']);
    expect(first.code, first.stderr).toBe(0);
    const base = JSON.parse(first.stdout) as DailyBranchResult;
    expect(base).toMatchObject({ kind: 'baseline', outcome: 'baseline tested', push: null });
    expect(base.old).toBe(src.xen.basis);
    expect(base.new).toBe(src.xen.basis);
    expect(base.revisions).toEqual({ xen: src.xen.basis, linux: src.linux.failure });
    expect(base.judgement?.overall).toBe('perfect');
    expect(base.email?.subject).toMatch(/ - baseline test$/);
    expect(mailText(base.email!.file)).toContain('baseline test');
    expect(s.ref(s.xenUp, 'master')).toBe(src.xen.basis);
    // The flight tested the mirrors, and recorded the harness revision.
    const flight = base.flight!;
    expect((await s.store.getRunvar(flight, 'build-amd64', 'tree_xen'))?.val).toBe(
      mirrorPath(join(s.ws.dir, 'repos'), 'xen'),
    );
    expect((await s.store.getRunvar(flight, 'build-amd64', 'built_revision_xen'))?.val).toBe(src.xen.basis);
    expect((await s.store.getRunvar(flight, 'build-amd64', 'built_revision_linux'))?.val).toBe(
      src.linux.failure,
    );
    expect((await s.store.harnessRevisions(flight)).length).toBeGreaterThan(0);
    expect((await s.store.getFlight(flight))?.blessing).toBe('real');

    // Pushes blocked: staging is tested (it is clean) but not pushed.
    await cliOk(['branch', 'block-push', s.branch, '--reason', 'release freeze']);
    const mirrorDir = mirrorPath(join(s.ws.dir, 'repos'), 'xen');
    const inode = statSync(mirrorDir).ino;
    const blocked = await s.run();
    expect(blocked).toMatchObject({ kind: 'test', outcome: 'not pushed', push: null });
    expect(blocked.judgement?.tolerable).toBe(true);
    expect(blocked.detail).toMatch(/blocked.*release freeze/);
    expect(s.ref(s.xenUp, 'master')).toBe(src.xen.basis);
    // Fetched again, not cloned again.
    expect(statSync(mirrorDir).ino).toBe(inode);

    // Unblocked: tested again and pushed, a fast-forward to exactly NEW, reported PUSHED.
    await cliOk(['branch', 'unblock-push', s.branch]);
    const pushedRun = await cli(['daily-branch', s.branch, '--json']);
    expect(pushedRun.code, pushedRun.stderr).toBe(0);
    const pushed = JSON.parse(pushedRun.stdout) as DailyBranchResult;
    expect(pushed).toMatchObject({
      kind: 'test',
      outcome: 'pushed',
      old: src.xen.basis,
      new: src.xen.failure,
    });
    expect(pushed.judgement?.failures).toEqual([]);
    expect(pushed.judgement?.overall).toBe('perfect');
    expect(pushed.push).toMatchObject({
      result: 'pushed',
      from: src.xen.basis,
      to: src.xen.failure,
      ref: 'master',
    });
    expect(s.ref(s.xenUp, 'master')).toBe(src.xen.failure);
    expect(isAncestor(s.xenUp, src.xen.basis, src.xen.failure)).toBe(true);
    expect(pushed.email?.subject).toBe(`[${s.branch} test] ${pushed.flight}: tolerable all pass - PUSHED`);
    const mail = mailText(pushed.email!.file);
    expect(mail).toContain('People who touched revisions under test');
    expect(mail).toContain('Generated Developer');
    expect(mail).toContain('Revision log');
    // The report compared against the flight that tested master.
    expect(mail).toContain(`flight ${base.flight}, which tested xen`);

    // Staging == master now: nothing to do, no flight.
    const idle = await s.run();
    expect(idle).toMatchObject({ kind: 'nothing', outcome: 'nothing to do', flight: null });

    // Stopped: refused, nothing recorded; started again it runs.
    await cliOk(['branch', 'stop', s.branch, '--reason', 'lab move']);
    const runsBefore = (await s.store.listGateRuns({ branch: s.branch })).length;
    const stopped = await cli(['daily-branch', s.branch]);
    expect(stopped.code).toBe(3);
    expect(stopped.stderr).toMatch(
      /branch demo-clean is stopped \(lab move\).*osstest branch start demo-clean/,
    );
    await expect(s.run()).rejects.toBeInstanceOf(GateStoppedError);
    expect((await s.store.listGateRuns({ branch: s.branch })).length).toBe(runsBefore);
    await cliOk(['branch', 'start', s.branch]);
    expect((await s.run()).outcome).toBe('nothing to do');

    // BranchAlwaysRun: a flight even though staging has not moved. Its after hook fails first: the
    // run stops with an error, and the flight that never ran is removed.
    const flightsBefore = (await s.store.listFlights({ branch: s.branch })).length;
    s.ws.configure([
      'BranchAlwaysRun_demo_clean true',
      'BranchHook_demo_clean_after echo refusing $OSSTEST_FLIGHT; exit 7',
    ]);
    const hookFailed = await cli(['daily-branch', s.branch]);
    expect(hookFailed.code).toBe(2);
    expect(hookFailed.stderr).toMatch(/BranchHook_demo_clean_after failed \(exit status 7\): refusing \d+/);
    expect((await s.store.listFlights({ branch: s.branch })).length).toBe(flightsBefore);
    s.ws.configure(["BranchHook_demo_clean_after ''"]);
    const always = await s.run();
    expect(always).toMatchObject({ kind: 'test', outcome: 'tested', push: null });
    expect(always.new).toBe(always.old);
    expect(s.ref(s.xenUp, 'master')).toBe(src.xen.failure);

    const status = await cli(['branch', 'status', s.branch, '--json']);
    expect(status.code, status.stderr).toBe(0);
    const st = JSON.parse(status.stdout) as {
      control: { stopped: boolean };
      runs: { kind: string; outcome: string }[];
      pushes: { result: string }[];
    };
    expect(st.control.stopped).toBe(false);
    expect(st.runs.map((r) => r.outcome)).toEqual([
      'tested',
      'error',
      'nothing to do',
      'nothing to do',
      'pushed',
      'not pushed',
      'baseline tested',
    ]);
    expect(st.pushes.map((p) => p.result)).toEqual(['pushed']);
  });

  it('a regression is not pushed (after a rerun on the other host fails too) and goes to the bisector; force-push pushes it once', async () => {
    const s = await scenario('demo-regr', [
      'BranchHook_demo_regr_before echo "$OSSTEST_GATE_KIND $OSSTEST_REVISION_XEN $OSSTEST_REVISION_LINUX" >> hooks.log',
      'BranchHook_demo_regr_after echo "after $OSSTEST_FLIGHT" >> hooks.log',
    ]);
    const marker = line[Math.floor(line.length / 2)]!;
    expect((await s.run()).outcome).toBe('baseline tested');
    writeFileSync(join(s.ctl, 'bad'), marker);

    const r = await s.run();
    expect(r).toMatchObject({ kind: 'test', outcome: 'not pushed', push: null });
    expect(r.judgement?.overall).toBe('regressions');
    const regr = r.judgement!.failures.filter((f) => f.blocking);
    expect(regr.map((f) => `${f.job} ${f.testid} ${f.verdict}`)).toEqual([
      `${TEST_JOB} run-tests regression`,
    ]);
    expect(r.detail).toMatch(/Regressions/);
    expect(s.ref(s.xenUp, 'master')).toBe(src.xen.basis);
    // The rerun: same revisions, pinned to the other test host, failed again.
    expect(r.reruns).toHaveLength(1);
    const failedOn = r.reruns[0]!.pins[0]!.failedOn;
    expect(r.reruns[0]).toMatchObject({ job: TEST_JOB, status: 'fail', passed: false });
    expect(r.reruns[0]!.pins[0]!.host).toBe(failedOn === 'th1' ? 'th2' : 'th1');
    const runs = s.runsLog().filter((l) => l.includes(src.xen.failure));
    expect(runs).toEqual([
      `${r.flight} ${TEST_JOB} ${failedOn} ${src.xen.failure}`,
      `${r.reruns[0]!.flight} ${TEST_JOB} ${r.reruns[0]!.pins[0]!.host} ${src.xen.failure}`,
    ]);
    expect((await s.store.getRunvar(r.reruns[0]!.flight, TEST_JOB, 'buildjob'))?.val).toBe(
      `${r.flight}.build-amd64`,
    );
    expect((await s.store.getFlight(r.reruns[0]!.flight))?.intended).toBe('real-retest');
    // Handed to the bisector: the right job and testid, the flight it was seen in.
    expect(r.bisections).toEqual([
      { job: TEST_JOB, testid: 'run-tests', id: expect.any(Number), created: true },
    ]);
    const pending = await s.store.listBisections({ branch: s.branch, state: 'pending' });
    expect(pending.map((b) => [b.job, b.testid, b.requestedFlight])).toEqual([
      [TEST_JOB, 'run-tests', r.flight],
    ]);
    // The hooks ran around make-flight, told what is tested.
    expect(readFileSync(join(s.ws.dir, 'hooks.log'), 'utf8').trim().split('\n')).toEqual([
      `baseline ${src.xen.basis} ${src.linux.failure}`,
      'after 1',
      `test ${src.xen.failure} ${src.linux.failure}`,
      `after ${r.flight}`,
    ]);
    const gateRun = await s.store.getGateRun(r.run);
    expect(gateRun).toMatchObject({ completed: true, outcome: 'not pushed', reruns: [r.reruns[0]!.flight] });

    // force-push of exactly that revision (given as a ref name, resolved to the commit): pushed
    // despite the regression, once, and still as a fast-forward.
    s.ws.configure(['GateRetries 0']);
    const fp = await s.ws.cli(['branch', 'force-push', s.branch, 'staging', '--json']);
    expect(fp.code, fp.stderr).toBe(0);
    expect(JSON.parse(fp.stdout).forcePush).toBe(src.xen.failure);
    const forced = await s.run();
    expect(forced).toMatchObject({ outcome: 'pushed', reruns: [] });
    expect(forced.judgement?.tolerable).toBe(false);
    expect(forced.push).toMatchObject({ result: 'pushed', overridden: true, to: src.xen.failure });
    expect(s.ref(s.xenUp, 'master')).toBe(src.xen.failure);
    expect((await s.store.getBranchControl(s.branch)).forcePush).toBeNull();
    // The same regression again: the open bisection is kept, not doubled.
    expect(forced.bisections).toEqual([
      { job: TEST_JOB, testid: 'run-tests', id: r.bisections[0]!.id, created: false },
    ]);
  });

  it('a flaky failure passing on its rerun is pushed as `pass in N`; master moved during the flight refuses the push', async () => {
    const s = await scenario('demo-flaky');
    const mid = line[Math.floor(line.length / 3)]!;
    const later = line[Math.floor((2 * line.length) / 3)]!;
    s.setRef(s.xenUp, 'staging', mid);
    expect((await s.run()).outcome).toBe('baseline tested');

    writeFileSync(join(s.ctl, 'flaky-once'), '');
    const r = await s.run();
    expect(r.outcome, r.detail).toBe('pushed');
    expect(r.reruns).toHaveLength(1);
    expect(r.reruns[0]).toMatchObject({ job: TEST_JOB, status: 'pass', passed: true });
    expect(r.reruns[0]!.pins[0]!.host).not.toBe(r.reruns[0]!.pins[0]!.failedOn);
    const f = r.judgement!.failures.find((x) => x.job === TEST_JOB)!;
    expect(f).toMatchObject({ verdict: 'pass in', refFlight: r.reruns[0]!.flight, blocking: false });
    expect(f.text).toBe(`fail pass in ${r.reruns[0]!.flight}`);
    expect(r.judgement?.overall).toBe('tolerable');
    expect(s.ref(s.xenUp, 'master')).toBe(mid);
    expect(mailText(r.email!.file)).toContain(`pass in ${r.reruns[0]!.flight}`);

    // Next: staging at the tip; while the flight runs someone pushes `later` (an ancestor of the
    // tip, so an unguarded push would have fast-forwarded over it). The gate must refuse.
    s.setRef(s.xenUp, 'staging', src.xen.failure);
    writeFileSync(join(s.ctl, 'move-master'), later);
    const cas = await s.run();
    expect(cas.judgement?.tolerable).toBe(true);
    expect(cas.outcome).toBe('push refused');
    expect(cas.push).toMatchObject({ result: 'refused', from: mid, to: src.xen.failure, overridden: false });
    expect(cas.push!.detail).toMatch(/moved since the flight started/);
    expect(s.ref(s.xenUp, 'master')).toBe(later);
    expect((await s.store.listPushes({ branch: s.branch })).map((p) => p.result)).toEqual([
      'refused',
      'pushed',
    ]);

    // master is now at a revision nothing tested: the next run is a baseline test of it.
    const next = await s.run();
    expect(next).toMatchObject({ kind: 'baseline', old: later, outcome: 'baseline tested' });
  });

  it('mirrors: one clone, then incremental fetches, safe when several processes sync at once; the lock dies with its holder', async () => {
    const dir = mkdtempSync(join(root, 'mirrors-'));
    const up = join(dir, 'up.git');
    execFileSync('git', ['clone', '--bare', '--quiet', src.linux.path, up]);
    const reposDir = join(dir, 'repos');
    const all = await Promise.all(Array.from({ length: 4 }, () => syncMirror('linux', up, { reposDir })));
    expect(all.filter((m) => m.cloned)).toHaveLength(1);
    const path = mirrorPath(reposDir, 'linux');
    expect(gitOut(['-C', path, 'config', 'gc.pruneExpire'])).toBe('never');

    // A new commit upstream is fetched; a deleted branch is pruned.
    const commit = gitOut([
      '-C',
      up,
      'commit-tree',
      '-p',
      src.linux.failure,
      '-m',
      'new upstream',
      `${src.linux.failure}^{tree}`,
    ]);
    execFileSync('git', ['-C', up, 'update-ref', 'refs/heads/main', commit]);
    execFileSync('git', ['-C', up, 'update-ref', '-d', 'refs/heads/side-1']);
    const again = await syncMirror('linux', up, { reposDir });
    expect(again.cloned).toBe(false);
    expect(gitOut(['-C', path, 'rev-parse', 'refs/heads/main'])).toBe(commit);
    expect(() => gitOut(['-C', path, 'rev-parse', '--verify', '--quiet', 'refs/heads/side-1'])).toThrow();

    // Held by someone else for longer than we wait: a clear error.
    let release!: () => void;
    const held = withFileLock(`${path}.flock`, 5, () => new Promise<void>((r) => (release = r)));
    await new Promise((r) => setTimeout(r, 200));
    await expect(syncMirror('linux', up, { reposDir, lockWaitSeconds: 1 })).rejects.toThrow(MirrorError);
    release();
    await held;

    // A holder killed outright (SIGKILL: no clean-up of its own) leaves no stale lock behind.
    const lib = join(repoRoot, 'dist', 'src', 'gate', 'mirror.js');
    const holder = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { withFileLock } from ${JSON.stringify(lib)};
         setInterval(() => {}, 1000);
         await withFileLock(${JSON.stringify(`${path}.flock`)}, 5, async () => {
           console.log('held');
           await new Promise(() => {});
         });`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve, reject) => {
      holder.stdout!.on('data', (d: Buffer) => d.toString().includes('held') && resolve());
      holder.once('exit', (code) =>
        reject(new Error(`the lock holder exited (${code}) before taking the lock`)),
      );
    });
    await expect(syncMirror('linux', up, { reposDir, lockWaitSeconds: 1 })).rejects.toThrow(/held the lock/);
    const gone = new Promise((r) => holder.once('exit', r));
    holder.kill('SIGKILL');
    await gone;
    const t0 = Date.now();
    expect((await syncMirror('linux', up, { reposDir, lockWaitSeconds: 10 })).cloned).toBe(false);
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});
