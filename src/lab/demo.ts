/**
 * The demo the README's first command runs (`npm run demo`, as root): the push gate on the virtual lab.
 *
 *  1. Two sample trees with history (sample-project.ts): `hello`, a program, and `libadd`, the library
 *     it is built with; each has an "upstream" bare repository with `master` and `staging`.
 *  2. `osstest lab up`: a network namespace of its own (ot-demo, 10.218.0.0/24) with our DHCP, TFTP and
 *     HTTP boot services, a QEMU test host and a netns build host.
 *  3. `osstest daily-branch demo-libadd` three times. First a baseline test of master. Then clean
 *     commits on libadd's staging: tested and pushed (master == staging afterwards). Then several more,
 *     one of which breaks hello's add tests: the regression is reported and nothing is pushed.
 *     Every flight builds on the build host and tests on the QEMU host, which each test job installs
 *     from power-off by network boot (ts-host-install, ramdisk).
 *  4. `osstest bisect demo-libadd test-amd64-amd64-demo run-tests --run` names the breaking commit.
 *  5. HTML reports of the gate's flights; where they and the bisection page are, and what to run next.
 *
 * The lab is taken down at the end, also after a failure or an interrupt; the workspace (database,
 * logs, reports, repositories) is kept in OSSTEST_DEMO_DIR (default /tmp/osstest-demo).
 * OSSTEST_DEMO_COMMITS (default 8) is how many commits the regression batch has; OSSTEST_DEMO_ACCEL=kvm
 * runs the VM under KVM (default TCG, software emulation); OSSTEST_DEMO_IMAGES is where the kernel is
 * kept between runs (default /var/tmp/osstest-images).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { harnessRoot } from '../executor/paths.js';
import { commitLibaddChanges, createSampleTrees } from './sample-project.js';

const dir = resolve(process.env.OSSTEST_DEMO_DIR ?? '/tmp/osstest-demo');
const images = resolve(process.env.OSSTEST_DEMO_IMAGES ?? '/var/tmp/osstest-images');
const batch = Number(process.env.OSSTEST_DEMO_COMMITS ?? '8');
const cli = join(harnessRoot, 'bin', 'osstest.js');
const configFile = join(dir, 'osstest.config');
const BRANCH = 'demo-libadd';
const JOB = 'test-amd64-amd64-demo';
const t0 = Date.now();

function elapsed(): string {
  const s = Math.round((Date.now() - t0) / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

function say(text: string): void {
  process.stdout.write(`\n\x1b[1m== [${elapsed()}] ${text}\x1b[0m\n`);
}

let child: ChildProcess | undefined;
let interrupted: NodeJS.Signals | undefined;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    interrupted = sig;
    // The CLI stops its flights cleanly on SIGINT/SIGTERM; the lab comes down in `finally` below.
    child?.kill(sig === 'SIGHUP' ? 'SIGTERM' : sig);
  });
}

/** Runs `osstest ARGS` in the demo directory, its output shown as it comes; resolves to the exit status. */
function osstest(args: string[], opts: { quiet?: boolean } = {}): Promise<{ code: number; stdout: string }> {
  if (interrupted) throw new Error(`interrupted (${interrupted})`);
  if (!opts.quiet) process.stdout.write(`$ osstest ${args.join(' ')}\n`);
  return new Promise((res, rej) => {
    const c = spawn(process.execPath, [cli, ...args], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, OSSTEST_CONFIG: configFile, OSSTEST_FLIGHT: '' },
    });
    child = c;
    let out = '';
    c.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (!opts.quiet) process.stdout.write(d);
    });
    c.on('error', rej);
    c.on('close', (code, signal) => {
      child = undefined;
      res({ code: code ?? (signal ? 128 : 1), stdout: out });
    });
  });
}

async function must(args: string[], ok: number[] = [0]): Promise<string> {
  const r = await osstest(args);
  if (!ok.includes(r.code)) throw new Error(`osstest ${args.join(' ')} exited ${r.code}`);
  return r.stdout;
}

async function git(repo: string, ...args: string[]): Promise<string> {
  return (await execa('git', ['-C', repo, ...args])).stdout.trim();
}

function kvmUsable(): boolean {
  try {
    closeSync(openSync('/dev/kvm', 'r+'));
    return true;
  } catch {
    return false;
  }
}

interface GateOutcome {
  kind: string;
  outcome: string;
  flight: string | null;
  old: string | null;
  new: string | null;
  judgement?: { overall: string; failures?: unknown[] } | null;
}

async function dailyBranch(expectCodes: number[]): Promise<GateOutcome> {
  process.stdout.write(`$ osstest daily-branch ${BRANCH}\n`);
  const r = await osstest(['daily-branch', BRANCH, '--json'], { quiet: true });
  if (!expectCodes.includes(r.code)) throw new Error(`osstest daily-branch ${BRANCH} exited ${r.code}`);
  const g = JSON.parse(r.stdout) as GateOutcome;
  process.stdout.write(
    `daily-branch: ${g.outcome} (flight ${g.flight}; ${g.kind === 'baseline' ? `baseline ${g.old?.slice(0, 12)}` : `${g.old?.slice(0, 12)} → ${g.new?.slice(0, 12)}`})\n`,
  );
  return g;
}

if (typeof process.getuid === 'function' && process.getuid() !== 0) {
  process.stderr.write('demo: run as root: the virtual lab makes a network namespace, taps and VMs\n');
  process.exit(2);
}
if (!Number.isInteger(batch) || batch < 2 || batch > 64) {
  process.stderr.write(
    `demo: OSSTEST_DEMO_COMMITS ${process.env.OSSTEST_DEMO_COMMITS}: a number from 2 to 64\n`,
  );
  process.exit(2);
}

// A lab left up by an earlier demo that was killed hard comes down before its directory goes.
if (existsSync(join(dir, 'lab', 'state.json')) && existsSync(configFile)) await osstest(['lab', 'down']);
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });

let code = 1;
let labUp = false;
try {
  say('two sample trees with history: hello (a program) and libadd (the library it is built with)');
  const trees = await createSampleTrees(join(dir, 'work'));
  const up = { hello: join(dir, 'upstream', 'hello.git'), libadd: join(dir, 'upstream', 'libadd.git') };
  for (const t of ['hello', 'libadd'] as const) {
    await execa('git', ['clone', '--bare', '--quiet', trees[t], up[t]]);
    await git(up[t], 'branch', 'staging', 'master');
    await git(trees[t], 'remote', 'add', 'origin', up[t]);
    process.stdout.write(`${t}: ${up[t]} (master == staging, ${trees.history[t].length} commits)\n`);
  }
  // TCG unless asked: KVM inside a VM (nested) is not always dependable (iPXE hung under it here).
  const accel = process.env.OSSTEST_DEMO_ACCEL === 'kvm' && kvmUsable() ? 'kvm' : 'tcg';
  writeFileSync(
    configFile,
    [
      '# made by the demo (src/lab/demo.ts); see standalone.config.example for every setting',
      `Images ${images}`,
      'LabNamespace ot-demo',
      'LabSubnet 10.218.0.0/24',
      'LabLinkNet 10.218.255.0/30',
      `LabDir ${join(dir, 'lab')}`,
      `TftpPath ${join(dir, 'tftp')}`,
      `WebspaceDir ${join(dir, 'webspace')}`,
      'LabHostPrefix demo',
      'LabQemuHosts 1',
      'LabBuildHosts 1',
      `LabQemuAccel ${accel}`,
      '# The gate: branch demo-libadd tests libadd staging with hello at its master.',
      `BranchTrees_${BRANCH.replace(/-/g, '_')} hello libadd`,
      `TreeUnderTest_${BRANCH.replace(/-/g, '_')} libadd`,
      `Tree_hello ${up.hello}`,
      `Tree_libadd ${up.libadd}`,
      '# One QEMU host: no other host to rerun a failure on.',
      'GateRetries 0',
      'DemoArchs amd64',
      'DemoBuildCommand make && make install DESTDIR="$OSSTEST_DIST"',
      'DemoTestCommand ./run-tests',
      '',
    ].join('\n'),
  );
  process.stdout.write(`config: ${configFile} (QEMU accelerator ${accel})\n`);

  say("the kernel the test host boots (Debian's, downloaded once with apt-get, then cached)");
  await must(['images', 'update']);

  say(
    'the virtual lab: namespace ot-demo, DHCP/TFTP/HTTP boot services, a QEMU test host, a netns build host',
  );
  labUp = true;
  await must(['lab', 'up']);

  say(`gate run 1: nothing has tested libadd's master yet, so it is tested first (a baseline, never pushed)`);
  const base = await dailyBranch([0]);
  if (base.kind !== 'baseline') throw new Error(`expected a baseline test, got ${base.outcome}`);

  say("gate run 2: three clean commits on libadd's staging");
  const clean = await commitLibaddChanges(trees, 3, { label: 'clean' });
  await git(trees.libadd, 'push', '--quiet', 'origin', 'HEAD:staging');
  process.stdout.write(`${(await git(trees.libadd, 'log', '--oneline', `-${clean.length}`)).trim()}\n`);
  const pushed = await dailyBranch([0]);
  const master = await git(up.libadd, 'rev-parse', 'master');
  const staging = await git(up.libadd, 'rev-parse', 'staging');
  process.stdout.write(`libadd upstream: master ${master.slice(0, 12)}, staging ${staging.slice(0, 12)}\n`);
  if (pushed.outcome !== 'pushed' || master !== staging) throw new Error('the clean staging was not pushed');
  process.stdout.write('clean staging pushed: master == staging\n');

  const breakAt = Math.ceil((batch * 2) / 3);
  say(`gate run 3: ${batch} more commits on staging; commit ${breakAt} of them breaks hello's add tests`);
  const more = await commitLibaddChanges(trees, batch, { breakAt });
  const culprit = more[breakAt - 1]!;
  await git(trees.libadd, 'push', '--quiet', 'origin', 'HEAD:staging');
  process.stdout.write(`${(await git(trees.libadd, 'log', '--oneline', `-${batch}`)).trim()}\n`);
  const caught = await dailyBranch([1]);
  const after = await git(up.libadd, 'rev-parse', 'master');
  if (caught.outcome !== 'not pushed' || after !== master) throw new Error('the regression was pushed');
  process.stdout.write(`regression caught: not pushed, master stays ${after.slice(0, 12)}\n`);

  say('bisection: which commit broke run-tests?');
  process.stdout.write(`$ osstest bisect ${BRANCH} ${JOB} run-tests --run\n`);
  const b = await osstest(['bisect', BRANCH, JOB, 'run-tests', '--run', '--json'], { quiet: true });
  const verdict = JSON.parse(b.stdout || '{}') as {
    id?: number;
    wording?: string;
    summary?: string;
    culprit?: { tree: string; rev: string } | null;
  };
  process.stdout.write(`${verdict.summary ?? verdict.wording ?? `exit ${b.code}`}\n`);
  const exact = b.code === 4 && verdict.culprit?.tree === 'libadd' && verdict.culprit.rev === culprit;
  process.stdout.write(
    exact
      ? `the bisector names ${culprit.slice(0, 12)}: the commit that broke it ("${await git(trees.libadd, 'log', '-1', '--format=%s', culprit)}")\n`
      : `the bisector did not name ${culprit.slice(0, 12)} (exit ${b.code})\n`,
  );

  say('reports');
  for (const f of [pushed.flight, caught.flight]) {
    if (f) await osstest(['report-flight', f, '--html', join(dir, 'results', 'html')], { quiet: true });
  }
  await osstest(['flight', 'show', caught.flight!]);
  const results = join(dir, 'results');
  process.stdout.write(
    [
      '',
      `flight reports (HTML): ${join(results, 'html', String(pushed.flight), 'index.html')} (pushed)`,
      `                       ${join(results, 'html', String(caught.flight), 'index.html')} (regression)`,
      `gate report emails:    ${join(results, '<flight>', 'daily-branch.eml')}`,
      verdict.id ? `bisection page:        ${join(results, 'bisect', String(verdict.id), 'index.html')}` : '',
      `logs (serial consoles, host events, steps): ${join(dir, 'logs', String(caught.flight))}`,
      '',
      'look further (from anywhere):',
      `  cd ${dir} && export OSSTEST_CONFIG=${configFile}`,
      `  osstest flight show ${caught.flight}     # the steps of each job`,
      `  osstest branch status ${BRANCH}       # the gate's runs and pushes`,
      verdict.id ? `  osstest bisect log ${verdict.id}` : '',
      '  osstest serve                      # the web UI on http://127.0.0.1:<port>/',
      '',
    ]
      .filter((l, i, a) => l !== '' || a[i - 1] !== '')
      .join('\n'),
  );
  code = exact ? 0 : 1;
} catch (err) {
  process.stderr.write(`demo: ${(err as Error).message}\n`);
} finally {
  if (labUp) {
    interrupted = undefined;
    say('the lab comes down (the workspace stays)');
    await osstest(['lab', 'down']);
  }
  process.stdout.write(`\ndemo ${code === 0 ? 'done' : 'FAILED'} in ${elapsed()} (m:ss); workspace ${dir}\n`);
}
process.exit(code);
