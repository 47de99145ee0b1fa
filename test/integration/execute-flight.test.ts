/**
 * execute-flight through the real CLI (and once in-process): real runner processes, the shipped
 * recipes `build` and `test-demo` with the real ts-hosts-allocate and ts-build-check, real sqlite.
 * Only the expensive steps (build-prep, build, install-dist, run-tests, logs-capture) are shadowed
 * by cheap shell stand-ins in the workspace's TestcasePath, told per job by files what to do (sleep,
 * fail), so no ssh host is needed; the last test runs the demo family on netns sshd hosts instead.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/db/store.js';
import type { Step } from '../../src/db/types.js';
import { executeFlight, type FlightJobView } from '../../src/flight/execute-flight.js';
import { createSampleProject } from '../../src/lab/sample-project.js';
import { prerequisites } from '../helpers/env.js';
import { createTestHosts } from '../helpers/netns.js';
import { type CliResult, cliPath, createWorkspace, type Workspace } from '../helpers/workspace.js';

let ws: Workspace;
let store: Store;
let ctl: string;

const SHADOWED = ['ts-build-prep', 'ts-build', 'ts-install-dist', 'ts-run-tests', 'ts-logs-capture'];

beforeAll(async () => {
  ws = createWorkspace(['FlightHostWait 30']);
  ctl = join(ws.dir, 'ctl');
  mkdirSync(ctl);
  const standIn = `#!/bin/sh
# Stand-in for a step: what it does is told by files $CTL/<job>.<testcase>.{sleep,fail}.
base="${ctl}/$OSSTEST_JOB.$(basename "$0")"
echo "$(basename "$0") for $OSSTEST_JOB: pid $$"
echo $$ > "$base.pid"
if [ -f "$base.sleep" ]; then sleep "$(cat "$base.sleep")"; fi
if [ -f "$base.fail" ]; then echo "failing as told"; exit 1; fi
exit 0
`;
  for (const t of SHADOWED) ws.addTestcase(t, standIn);
  store = await ws.openStore();
});

afterAll(async () => {
  await store?.close();
  ws?.cleanup();
});

function tell(job: string, testcase: string, what: 'sleep' | 'fail', value = ''): void {
  writeFileSync(join(ctl, `${job}.${testcase}.${what}`), value);
}

interface JobDef {
  job: string;
  recipe: 'build' | 'test-demo';
  runvars?: Record<string, string>;
}

async function flight(name: string, jobs: JobDef[]): Promise<void> {
  await store.createFlight({ flight: name, branch: 'test', intended: 'play' });
  for (const j of jobs) await store.createJob(name, j.job, j.recipe, j.runvars ?? {});
}

async function hosts(names: string[], flag: string): Promise<void> {
  for (const n of names) {
    await store.upsertHost({ name: n, ip: '127.0.0.1' });
    await store.setHostFlags(n, [flag]);
  }
}

async function steps(f: string, job: string): Promise<Step[]> {
  return store.listSteps(f, job);
}

async function stepsOf(f: string, job: string): Promise<string[]> {
  return (await steps(f, job)).map((s) => `${s.testid}:${s.status}`);
}

async function status(f: string, job: string): Promise<string | undefined> {
  return (await store.getJob(f, job))?.status;
}

async function held(f: string): Promise<string[]> {
  return (await store.listAllocations()).filter((a) => a.flight === f).map((a) => `${a.job}:${a.host}`);
}

/** Every runner's log and step log of the flight, for a failing assertion's message. */
function diagnose(f: string, out: Outcome): string {
  const dir = join(ws.dir, 'logs', f);
  return out.jobs
    .flatMap((j) =>
      readdirSync(join(dir, j.job))
        .filter((n) => n.endsWith('.log'))
        .map((n) => `--- ${j.job}/${n}\n${readFileSync(join(dir, j.job, n), 'utf8')}`),
    )
    .join('\n');
}

function runLog(f: string, job: string): string {
  return readFileSync(join(ws.dir, 'logs', f, job, 'run-job.log'), 'utf8');
}

/** The CLI as a child whose pid the test knows (for signals). */
function startCli(
  args: string[],
  env: Record<string, string> = {},
): { child: ChildProcess; done: Promise<CliResult>; output: () => string } {
  const child = spawn(process.execPath, [cliPath, ...args], {
    cwd: ws.dir,
    env: { ...process.env, OSSTEST_CONFIG: ws.configFile, OSSTEST_FLIGHT: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const done = new Promise<CliResult>((res) =>
    child.on('close', (code, signal) => res({ code: code ?? (signal ? 128 : 1), stdout, stderr })),
  );
  return { child, done, output: () => `exit ${child.exitCode}\n${stdout}\n${stderr}` };
}

/** Polls until `probe` gives a value; `run`, if it has exited meanwhile, says why it never will. */
async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  run?: { child: ChildProcess; output: () => string },
  ms = 20_000,
): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until || (run && run.child.exitCode !== null))
      throw new Error(`gave up waiting for ${what}${run ? `: ${run.output()}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A zombie (dead, not yet reaped by whoever inherited it) counts as gone. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

interface Outcome {
  flight: string;
  blessing: string;
  jobs: { job: string; status: string }[];
  interrupted?: string;
}

describe('execute-flight', () => {
  it('runs builds in parallel, each test after its build, blocks the dependants of a failed build, blesses the flight', async () => {
    const f = 'ef-order';
    await hosts(['ob1', 'ob2'], 'order-build');
    await hosts(['ot1', 'ot2'], 'order-test');
    const build = { host_hostflags: 'order-build' };
    await flight(f, [
      { job: 'build-a', recipe: 'build', runvars: build },
      { job: 'build-b', recipe: 'build', runvars: build },
      { job: 'test-a', recipe: 'test-demo', runvars: { buildjob: 'build-a', all_hostflags: 'order-test' } },
      { job: 'test-b', recipe: 'test-demo', runvars: { buildjob: 'build-b', all_hostflags: 'order-test' } },
    ]);
    tell('build-a', 'ts-build', 'sleep', '1.5');
    tell('build-b', 'ts-build', 'sleep', '1.5');
    tell('build-b', 'ts-build', 'fail');

    const r = await ws.cli(['execute-flight', f, '--json']);
    expect(r.code, r.stderr).toBe(1);
    const out = JSON.parse(r.stdout) as Outcome;
    expect(out.blessing).toBe('play');
    expect(out.interrupted).toBeUndefined();
    expect(Object.fromEntries(out.jobs.map((j) => [j.job, j.status])), diagnose(f, out)).toEqual({
      'build-a': 'pass',
      'build-b': 'fail',
      'test-a': 'pass',
      'test-b': 'blocked',
    });
    expect((await store.getFlight(f))?.blessing).toBe('play');

    // Each test started only once its build had ended.
    for (const [b, t] of [
      ['build-a', 'test-a'],
      ['build-b', 'test-b'],
    ] as const) {
      const buildEnd = Math.max(...(await steps(f, b)).map((s) => s.finished!));
      const testStart = Math.min(...(await steps(f, t)).map((s) => s.started!));
      expect(testStart).toBeGreaterThanOrEqual(buildEnd);
    }
    // The two builds ran at the same time.
    const buildStep = async (j: string) => (await steps(f, j)).find((s) => s.testid === 'build')!;
    const [a, b] = [await buildStep('build-a'), await buildStep('build-b')];
    expect(a.started!).toBeLessThan(b.finished!);
    expect(b.started!).toBeLessThan(a.finished!);

    expect(await stepsOf(f, 'test-b')).toEqual(['build-check:blocked', 'capture-logs:pass']);
    expect(await stepsOf(f, 'test-a')).toEqual([
      'build-check:pass',
      'hosts-allocate:pass',
      'host-install:pass',
      'install-dist:pass',
      'run-tests:pass',
      'capture-logs:pass',
    ]);
    expect(await held(f)).toEqual([]);
    const log = runLog(f, 'test-a');
    expect(log).toMatch(/execute-flight \d+@.*run-job --quiet ef-order test-a/);
    expect(log).toMatch(/step 1 build-check \(ts-build-check\): running/);
    expect(log).toMatch(/the runner exited with status 0/);
    expect(r.stderr).toMatch(/build-b: started \(runner pid \d+\)/);
    expect(r.stderr).toMatch(/build-b: fail\b/);
  });

  it('refuses a flight that has finished, changing nothing', async () => {
    const before = await store.listSteps('ef-order');
    const r = await ws.cli(['execute-flight', 'ef-order']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/flight ef-order has finished: it is blessed play/);
    expect(await store.listSteps('ef-order')).toEqual(before);
    const none = await ws.cli(['sg-execute-flight', 'no-such-flight']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no flight 'no-such-flight'/);
  });

  it('jobs that want the same host take turns: never both at once, neither broken (in-process, with an observer)', async () => {
    const f = 'ef-share';
    await hosts(['lonely'], 'share');
    await flight(f, [
      { job: 'one', recipe: 'build', runvars: { host_hostflags: 'share' } },
      { job: 'two', recipe: 'build', runvars: { host_hostflags: 'share' } },
    ]);
    tell('one', 'ts-build', 'sleep', '1.5');
    tell('two', 'ts-build', 'sleep', '1.5');
    const seen: FlightJobView[][] = [];
    const started: string[] = [];
    const finished: string[] = [];
    const r = await executeFlight({
      store,
      config: ws.config(),
      flight: f,
      pollMs: 200,
      observer: {
        update: (v) => seen.push(v.map((x) => ({ ...x }))),
        jobStarted: (j) => started.push(j),
        jobFinished: (j, s) => finished.push(`${j}:${s}`),
      },
    });
    expect(r.jobs).toEqual([
      { job: 'one', status: 'pass' },
      { job: 'two', status: 'pass' },
    ]);
    expect(r.blessing).toBe('play');
    expect(started.sort()).toEqual(['one', 'two']);
    expect(finished.sort()).toEqual(['one:pass', 'two:pass']);
    // Both runners were up together (one of them waiting for the host)…
    expect(seen.some((v) => v.filter((x) => x.phase === 'running').length === 2)).toBe(true);
    // …but the host was held by one job at a time.
    const log = await store.allocationLog({ host: 'lonely' });
    const mine = log.filter((e) => e.flight === f).map((e) => `${e.event}:${e.job}`);
    expect(mine).toHaveLength(4);
    expect(mine[0]!.split(':')[1]).toBe(mine[1]!.split(':')[1]);
    expect(mine.map((e) => e.split(':')[0])).toEqual(['allocate', 'release', 'allocate', 'release']);
    const waited =
      (await steps(f, 'one'))[0]!.finished! > (await steps(f, 'two'))[0]!.finished! ? 'one' : 'two';
    const allocLog = readFileSync(join(ws.dir, 'logs', (await steps(f, waited))[0]!.logPath!), 'utf8');
    expect(allocLog).toMatch(
      /waiting \(up to 30 s in all\): host: every host with flags share is held \(lonely by ef-share\/(one|two)\)/,
    );
    expect(allocLog).toMatch(/host: allocated lonely/);
  });

  it('a job whose host stays taken ends starved when the wait runs out; a lone run-job refuses at once', async () => {
    const f = 'ef-starve';
    await hosts(['busy'], 'starve');
    await flight(f, [
      { job: 'hungry', recipe: 'build', runvars: { host_hostflags: 'starve' } },
      { job: 'fed', recipe: 'build', runvars: { host_hostflags: 'starve-other' } },
    ]);
    await hosts(['free'], 'starve-other');
    // Someone else holds the only host with the flag.
    await store.createFlight({ flight: 'ef-holder', branch: 'test', intended: 'play' });
    await store.createJob('ef-holder', 'holder', 'build');
    expect(await store.allocateHost('busy', { flight: 'ef-holder', job: 'holder', ident: 'host' })).toBe(
      true,
    );

    const lone = await ws.cli(['run-job', f, 'hungry']);
    expect(lone.code).toBe(1);
    expect(await status(f, 'hungry')).toBe('broken');
    expect(await stepsOf(f, 'hungry')).toEqual(['hosts-allocate:broken', 'capture-logs:pass']);
    await store.resetJob(f, 'hungry');

    const extra = join(ws.dir, 'short-wait.config');
    writeFileSync(extra, 'FlightHostWait 2\n');
    const t0 = Date.now();
    const r = await ws.cli(['execute-flight', f, '--json'], { OSSTEST_CONFIG: `${ws.configFile}:${extra}` });
    expect(r.code, r.stderr).toBe(1);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(await status(f, 'hungry')).toBe('starved');
    expect(await status(f, 'fed')).toBe('pass');
    expect(await stepsOf(f, 'hungry')).toEqual(['hosts-allocate:starved', 'capture-logs:pass']);
    const allocLog = readFileSync(join(ws.dir, 'logs', (await steps(f, 'hungry'))[0]!.logPath!), 'utf8');
    expect(allocLog).toMatch(
      /job starved: no hosts within 2 s: host: every host with flags starve is held \(busy by ef-holder\/holder\)/,
    );
    expect((await store.listAllocations()).map((a) => a.host)).toEqual(['busy']);
    await store.releaseHost('busy');
  });

  it('a runner killed with SIGKILL leaves its job broken with hosts released and nothing left running; the others finish', async () => {
    const f = 'ef-kill';
    await hosts(['kb1', 'kb2'], 'kill');
    await flight(f, [
      { job: 'victim', recipe: 'build', runvars: { host_hostflags: 'kill' } },
      { job: 'bystander', recipe: 'build', runvars: { host_hostflags: 'kill' } },
    ]);
    tell('victim', 'ts-build', 'sleep', '60');
    tell('bystander', 'ts-build', 'sleep', '2');
    const run = startCli(['execute-flight', f, '--json']);
    const runner = await waitFor(
      'the victim in its build step',
      async () => {
        if (!existsSync(join(ctl, 'victim.ts-build.pid'))) return undefined;
        const rv = await store.getRunvar(f, 'victim', 'runner');
        const building = (await steps(f, 'victim')).some(
          (s) => s.testid === 'build' && s.status === 'running',
        );
        return building && rv ? Number(rv.val.split('@')[0]) : undefined;
      },
      run,
    );
    expect((await store.getRunvar(f, 'victim', 'runner'))!.val).toBe(`${runner}@${hostname()}`);
    const sleeper = Number(readFileSync(join(ctl, 'victim.ts-build.pid'), 'utf8'));
    expect(alive(sleeper)).toBe(true);
    process.kill(runner, 'SIGKILL');
    const r = await run.done;
    expect(r.code, r.stderr).toBe(1);
    const out = JSON.parse(r.stdout) as Outcome;
    expect(out.blessing).toBe('play');
    expect(await status(f, 'victim')).toBe('broken');
    expect(await status(f, 'bystander')).toBe('pass');
    expect(await stepsOf(f, 'victim')).toEqual(['hosts-allocate:pass', 'build-prep:pass', 'build:broken']);
    expect(await held(f)).toEqual([]);
    // The step the runner was in was closed, and its testcase did not outlive it.
    expect(alive(sleeper)).toBe(false);
    const log = runLog(f, 'victim');
    expect(log).toMatch(/the runner was killed by SIGKILL/);
    expect(log).toMatch(/job broken: its runner was killed by SIGKILL while the job was unfinished/);
    const buildLog = readFileSync(join(ws.dir, 'logs', f, 'victim', '3.ts-build.log'), 'utf8');
    expect(buildLog).toMatch(/osstest: its runner was killed by SIGKILL: step broken/);
  });

  it('SIGTERM stops the running jobs (aborted, hosts released), leaves the rest queued, and does not bless', async () => {
    const f = 'ef-term';
    await hosts(['tb1'], 'term-build');
    await hosts(['tt1'], 'term-test');
    await flight(f, [
      { job: 'build-t', recipe: 'build', runvars: { host_hostflags: 'term-build' } },
      { job: 'test-t', recipe: 'test-demo', runvars: { buildjob: 'build-t', all_hostflags: 'term-test' } },
    ]);
    tell('build-t', 'ts-build', 'sleep', '60');
    const run = startCli(['execute-flight', f]);
    const pidFile = join(ctl, 'build-t.ts-build.pid');
    await waitFor(
      'the build step',
      async () =>
        existsSync(pidFile) &&
        (await steps(f, 'build-t')).some((s) => s.testid === 'build' && s.status === 'running'),
      run,
    );
    const sleeper = Number(readFileSync(pidFile, 'utf8'));
    const t0 = Date.now();
    run.child.kill('SIGTERM');
    const r = await run.done;
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(r.code, r.stderr).toBe(143);
    expect(r.stdout).toMatch(/interrupted \(SIGTERM\), not blessed/);
    expect(await status(f, 'build-t')).toBe('aborted');
    expect(await stepsOf(f, 'build-t')).toEqual(['hosts-allocate:pass', 'build-prep:pass', 'build:aborted']);
    expect(await status(f, 'test-t')).toBe('queued');
    expect(await store.getRunvar(f, 'test-t', 'executed_by')).toBeUndefined();
    expect(await held(f)).toEqual([]);
    expect(alive(sleeper)).toBe(false);
    expect((await store.getFlight(f))?.blessing).toBe('running');
    expect(runLog(f, 'build-t')).toMatch(/stopping the runner \(SIGTERM\): job aborted/);

    // A later execute-flight takes on what is left: the test, blocked by its aborted build.
    const again = await ws.cli(['execute-flight', f]);
    expect(again.code, again.stderr).toBe(1);
    expect(await status(f, 'test-t')).toBe('blocked');
    expect((await store.getFlight(f))?.blessing).toBe('play');
  });

  it('refuses a flight another execute-flight holds or with circular dependencies; takes over after a dead one', async () => {
    const f = 'ef-claim';
    await hosts(['cb1'], 'claim');
    await flight(f, [
      { job: 'first', recipe: 'build', runvars: { host_hostflags: 'claim' } },
      { job: 'second', recipe: 'build', runvars: { host_hostflags: 'claim' } },
      { job: 'third', recipe: 'build', runvars: { host_hostflags: 'claim' } },
    ]);
    await store.markFlightStarted(f);
    // This test process stands for a live execute-flight…
    await store.setRunvar(f, 'second', 'executed_by', `${process.pid}@${hostname()}`, { synth: true });
    let r = await ws.cli(['execute-flight', f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      new RegExp(`being executed by execute-flight pid ${process.pid} on ${hostname()}`),
    );
    expect(await status(f, 'first')).toBe('queued');

    // …and now for one that died: its claim is stale, and the job it left running is broken.
    const dead = spawn('true');
    await new Promise((res) => dead.on('close', res));
    await store.setRunvar(f, 'second', 'executed_by', `${dead.pid}@${hostname()}`, { synth: true });
    await store.setJobStatus(f, 'first', 'running');
    await store.setRunvar(f, 'first', 'runner', `${dead.pid}@${hostname()}`, { synth: true });
    expect(await store.allocateHost('cb1', { flight: f, job: 'first', ident: 'host' })).toBe(true);
    r = await ws.cli(['execute-flight', f, '--max-parallel', '1', '--json']);
    expect(r.code, r.stderr).toBe(1);
    expect(await status(f, 'first')).toBe('broken');
    expect(runLog(f, 'first')).toMatch(/job broken: its runner \(pid \d+\) is gone/);
    expect(await status(f, 'second')).toBe('pass');
    expect(await status(f, 'third')).toBe('pass');
    // One at a time, as asked.
    const span = async (j: string) => {
      const s = await steps(f, j);
      return [s[0]!.started!, s.at(-1)!.finished!] as const;
    };
    const [s2, s3] = [await span('second'), await span('third')];
    expect(s2[1] <= s3[0] || s3[1] <= s2[0]).toBe(true);

    const c = 'ef-circle';
    await flight(c, [
      { job: 'x', recipe: 'build', runvars: { buildjob: 'y' } },
      { job: 'y', recipe: 'build', runvars: { xbuildjob: 'x' } },
    ]);
    r = await ws.cli(['execute-flight', c]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/depend on each other in a circle \((x → y → x|y → x → y)/);
    expect((await store.getFlight(c))?.blessing).toBe('constructing');
  });

  it('has --help, and the OSSTest name', async () => {
    for (const name of ['execute-flight', 'sg-execute-flight']) {
      const r = await ws.cli([name, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/--max-parallel <n>/);
      expect(r.stdout).toMatch(/--json/);
    }
  });
});

const netnsOk = prerequisites('execute-flight on netns sshd hosts', {
  root: true,
  commands: ['ip', '/usr/sbin/sshd', 'git', 'make', 'cc'],
});

describe.skipIf(!netnsOk)('execute-flight on real hosts: the demo family', () => {
  it('standalone-reset, two sshd hosts, execute-flight: build then test, both pass, flight blessed', async () => {
    const w = createWorkspace();
    try {
      const project = await createSampleProject(join(w.dir, 'demo.git'));
      w.configure([
        `Tree_demo ${project.path}`,
        `HostProp_buildbox_Workdir ${join(w.dir, 'hosts', 'buildbox')}`,
        `HostProp_testbox_Workdir ${join(w.dir, 'hosts', 'testbox')}`,
        'HostProp_CaptureFiles /etc/hostname',
      ]);
      const cli = async (args: string[], code = 0) => {
        const r = await w.cli(args);
        if (r.code !== code)
          throw new Error(`osstest ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
        return r;
      };
      await cli(['standalone-reset', '--rev', `demo=${project.good}`]);
      const pub = readFileSync(join(w.dir, 'keys', 'id_ed25519.pub'), 'utf8');
      const [b, t] = await createTestHosts(2, { authorizedKeys: pub });
      await cli(['hosts', 'add', 'buildbox', '--ip', b.address, '--flags', 'purpose-build,arch-amd64']);
      await cli(['hosts', 'add', 'testbox', '--ip', t.address, '--flags', 'purpose-test,arch-amd64']);

      const r = await cli(['execute-flight', '--json']);
      const out = JSON.parse(r.stdout) as Outcome;
      expect(out).toEqual({
        flight: 'standalone',
        blessing: 'play',
        jobs: [
          { job: 'build-amd64', status: 'pass' },
          { job: 'test-amd64-amd64-demo', status: 'pass' },
        ],
      });
      const s = await w.openStore();
      try {
        const built = await s.listSteps('standalone', 'build-amd64');
        const tested = await s.listSteps('standalone', 'test-amd64-amd64-demo');
        expect(tested.map((x) => `${x.testid}:${x.status}`)).toEqual([
          'build-check:pass',
          'hosts-allocate:pass',
          'host-install:pass',
          'install-dist:pass',
          'run-tests:pass',
          'capture-logs:pass',
        ]);
        expect(tested[0]!.started!).toBeGreaterThanOrEqual(built.at(-1)!.finished!);
        expect((await s.getRunvar('standalone', 'test-amd64-amd64-demo', 'tests_passed'))?.val).toBe('3');
        expect(await s.listAllocations()).toEqual([]);
      } finally {
        await s.close();
      }
      // Refused once done.
      await cli(['execute-flight'], 2);
    } finally {
      w.cleanup();
    }
  });
});
