/**
 * The CLI as a user runs it (the compiled bin/osstest.js, real sqlite, a real git tree): flights made
 * from a family, the options and environment that shape them, and clear errors that change nothing.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSampleProject, type SampleProject } from '../../src/lab/sample-project.js';
import { snapshotSqlite } from '../helpers/dbsnapshot.js';
import { createWorkspace, type Workspace } from '../helpers/workspace.js';

let ws: Workspace;
let project: SampleProject;
let db: string;

beforeAll(async () => {
  ws = createWorkspace();
  project = await createSampleProject(join(ws.dir, 'demo.git'));
  ws.configure([`Tree_demo ${project.path}`]);
  db = join(ws.dir, 'standalone.db');
});

afterAll(() => ws?.cleanup());

async function ok(args: string[], env?: Record<string, string>) {
  const r = await ws.cli(args, env);
  if (r.code !== 0) throw new Error(`osstest ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r;
}

describe('osstest CLI', () => {
  it('has --help for every command', async () => {
    const top = await ok(['--help']);
    const commands = [
      'standalone-reset',
      'make-flight',
      'run-job',
      'ts',
      'flight',
      'runvar',
      'hosts',
      'abort',
      'config',
      'cs-flight-create',
      'cs-job-create',
      'mg-show-flight-runvars',
    ];
    for (const c of commands) expect(top.stdout).toContain(c);
    for (const c of [
      ...commands,
      'flight show',
      'flight list',
      'runvar set',
      'hosts flags',
      'config show',
      'sg-run-job',
    ]) {
      const r = await ok([...c.split(' '), '--help']);
      expect(r.stdout).toMatch(/Usage:/);
    }
  });

  it('standalone-reset makes the key pair, the database and the standalone flight', async () => {
    const r = await ok(['standalone-reset', '--json']);
    const out = JSON.parse(r.stdout) as {
      flight: string;
      jobs: { job: string }[];
      publicKey: string;
      revisions: Record<string, string>;
    };
    expect(out.flight).toBe('standalone');
    expect(out.jobs.map((j) => j.job)).toEqual(['build-amd64', 'test-amd64-amd64-demo']);
    expect(out.publicKey).toMatch(/^ssh-ed25519 /);
    expect(out.revisions.demo).toBe(project.good);
    const rv = JSON.parse((await ok(['runvar', 'show', 'standalone', '--json'])).stdout) as {
      job: string;
      name: string;
      val: string;
      synth: boolean;
    }[];
    const get = (job: string, name: string) => rv.find((x) => x.job === job && x.name === name)?.val;
    expect(get('build-amd64', 'tree_demo')).toBe(project.path);
    expect(get('build-amd64', 'revision_demo')).toBe(project.good);
    expect(get('test-amd64-amd64-demo', 'buildjob')).toBe('build-amd64');
    expect(rv.every((x) => !x.synth)).toBe(true);
    // A second reset keeps the key and makes the flight afresh.
    const again = JSON.parse((await ok(['standalone-reset', '--json'])).stdout) as { keyCreated: boolean };
    expect(again.keyCreated).toBe(false);
  });

  it('make-flight numbers flights and honours --rev, OSSTEST_JOBS_ONLY, RUNVARS and --build-flight', async () => {
    const first = (await ok(['make-flight', 'demo'])).stdout.trim();
    expect(first).toMatch(/^\d+$/);
    const made = JSON.parse(
      (
        await ok(['make-flight', 'demo', '--json', '--rev', `demo=${project.good.slice(0, 10)}`], {
          OSSTEST_JOBS_ONLY: 'build-*',
          RUNVARS: 'extra=1',
        })
      ).stdout,
    ) as { flight: string; jobs: { job: string; runvars: Record<string, string> }[] };
    expect(Number(made.flight)).toBe(Number(first) + 1);
    expect(made.jobs.map((j) => j.job)).toEqual(['build-amd64']);
    expect(made.jobs[0]!.runvars.extra).toBe('1');
    expect(made.jobs[0]!.runvars.revision_demo).toBe(project.good.slice(0, 10));
    const tests = JSON.parse(
      (await ok(['make-flight', 'demo', '--json', '--build-flight', made.flight])).stdout,
    ) as {
      jobs: { job: string; runvars: Record<string, string> }[];
    };
    expect(tests.jobs.map((j) => j.job)).toEqual(['test-amd64-amd64-demo']);
    expect(tests.jobs[0]!.runvars.buildjob).toBe(`${made.flight}.build-amd64`);
  });

  it('OSSTEST_SIMULATE prints the steps and runs nothing', async () => {
    await ok(['standalone-reset']);
    const before = snapshotSqlite(db);
    const r = await ok(['run-job', 'test-amd64-amd64-demo'], { OSSTEST_SIMULATE: '1' });
    expect(r.stdout).toMatch(/ts-build-check .*\[build-check\]/);
    expect(r.stdout).toMatch(/ts-install-dist host .*\[install-dist\].*on failure: broken/);
    expect(r.stdout).toMatch(/ts-logs-capture host .*\[capture-logs\].*always/);
    expect(snapshotSqlite(db)).toBe(before);
  });

  it('refuses bad flight names, unknown branches, jobs and trees clearly, changing nothing', async () => {
    const before = snapshotSqlite(db);
    const cases: [string[], RegExp][] = [
      [['make-flight', 'demo', '--flight', '../evil'], /flight name/i],
      [['make-flight', 'no-such-branch'], /no flight family for branch 'no-such-branch'/],
      [['make-flight', 'demo', '--rev', 'nosuchtree=abc1234'], /has no tree 'nosuchtree'/],
      [['make-flight', 'demo', '--rev', 'demo=no-such-ref'], /has no ref 'no-such-ref'/],
      [['run-job', 'standalone', 'no-such-job'], /has no job 'no-such-job'.*build-amd64/],
      [['run-job', 'no-such-flight', 'build-amd64'], /no flight 'no-such-flight'/],
      [['flight', 'show', 'no-such-flight'], /no flight 'no-such-flight'/],
      [['runvar', 'set', 'standalone', 'build-amd64', 'bad name=1'], /not a runvar name/],
      [['hosts', 'show', 'nobody'], /no host 'nobody'/],
    ];
    for (const [args, re] of cases) {
      const r = await ws.cli(args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toMatch(re);
      expect(snapshotSqlite(db), args.join(' ')).toBe(before);
    }
  });

  it('refuses definition changes once the flight runs, keeping the database as it was', async () => {
    await ok(['standalone-reset']);
    await ok(['runvar', 'set', 'standalone', 'build-amd64', 'build_command=make', 'note=before']);
    await ok(['runvar', 'del', 'standalone', 'build-amd64', 'note']);
    // A job that stops at once (abort) still starts the flight.
    await ok(['abort', 'standalone', 'test-amd64-amd64-demo']);
    const store = await ws.openStore();
    await store.markFlightStarted('standalone');
    await store.close();
    const before = snapshotSqlite(db);
    for (const args of [
      ['runvar', 'set', 'standalone', 'build-amd64', 'build_command=rm -rf /'],
      ['runvar', 'del', 'standalone', 'build-amd64', 'build_command'],
      ['cs-job-create', 'standalone', 'late-job', 'build'],
    ]) {
      const r = await ws.cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(/frozen/);
      expect(snapshotSqlite(db)).toBe(before);
    }
    const shown = JSON.parse((await ok(['flight', 'show', '--json'])).stdout) as {
      jobs: { job: string; status: string }[];
    };
    expect(shown.jobs.find((j) => j.job === 'test-amd64-amd64-demo')?.status).toBe('aborted');
  });

  it('a config error names the file and line, and nothing is touched', async () => {
    const before = snapshotSqlite(db);
    ws.configure(['this line is fine', '9bad name']);
    try {
      const r = await ws.cli(['flight', 'list']);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`${ws.configFile}:`);
      expect(snapshotSqlite(db)).toBe(before);
    } finally {
      const text = readFileSync(ws.configFile, 'utf8').replace('this line is fine\n9bad name\n', '');
      writeFileSync(ws.configFile, text);
    }
  });

  it('osstest abort stops a running job after its current step', async () => {
    await ok(['standalone-reset']);
    // Local testcases shadow the shipped ones (TestcasePath is searched first).
    const marker = join(ws.dir, 'first-step-running');
    ws.addTestcase('ts-build-check', `#!/bin/sh\ntouch ${marker}\nsleep 3\n`);
    try {
      const running = ws.cli(['run-job', 'test-amd64-amd64-demo']);
      for (let i = 0; i < 100 && !existsSync(marker); i++) await new Promise((r) => setTimeout(r, 100));
      expect(existsSync(marker)).toBe(true);
      const a = await ok(['abort', 'standalone', 'test-amd64-amd64-demo']);
      expect(a.stdout).toMatch(/aborted/);
      const r = await running;
      expect(r.code).toBe(1);
      const shown = JSON.parse((await ok(['flight', 'show', '--json'])).stdout) as {
        jobs: { job: string; status: string; steps: { testid: string; status: string }[] }[];
      };
      const j = shown.jobs.find((x) => x.job === 'test-amd64-amd64-demo')!;
      expect(j.status).toBe('aborted');
      expect(j.steps.map((x) => `${x.testid}:${x.status}`)).toEqual(['build-check:pass']);
    } finally {
      rmSync(join(ws.testcaseDir, 'ts-build-check'), { force: true });
    }
  });

  it('hosts add, flags, props and show', async () => {
    await ok(['hosts', 'add', 'box1', '--ip', '192.0.2.1', '--flags', 'purpose-test,arch-amd64']);
    await ok(['hosts', 'flags', 'box1', '+equiv-1', '-arch-amd64']);
    await ok(['hosts', 'props', 'box1', 'Workdir=/srv/osstest', 'Junk=x']);
    await ok(['hosts', 'props', 'box1', 'Junk=']);
    const h = JSON.parse((await ok(['hosts', 'show', 'box1', '--json'])).stdout) as {
      address: string;
      flags: string[];
      props: Record<string, string>;
    };
    expect(h.address).toBe('192.0.2.1');
    expect(h.flags).toEqual(['equiv-1', 'purpose-test']);
    expect(h.props.Workdir).toBe('/srv/osstest');
    expect(h.props.Junk).toBeUndefined();
    const list = JSON.parse((await ok(['hosts', 'list', '--json'])).stdout) as { name: string }[];
    expect(list.map((x) => x.name)).toContain('box1');
  });

  it('OSSTest aliases work', async () => {
    const f = (await ok(['cs-flight-create', 'play', 'demo'])).stdout.trim();
    await ok(['cs-job-create', f, 'build-x', 'build', 'a=1', 'b=2', '!b']);
    const r = await ok(['mg-show-flight-runvars', f]);
    expect(r.stdout).toMatch(/build-x\s+a\s+1\s+definition/);
    expect(r.stdout).not.toMatch(/\bb\s+2/);
  });
});
