/**
 * The executor against a real sqlite store and real child processes: failure semantics, always
 * steps, sticky statuses, parallel steps, timeouts, crashes, abort, pause, simulate, rerun.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/db/store.js';
import type { Recipe, RecipeItem } from '../../src/executor/recipe.js';
import { runJob } from '../../src/executor/run-job.js';
import { createWorkspace, nodeTestcase, type Workspace } from '../helpers/workspace.js';

let ws: Workspace;
let store: Store;
let n = 0;

function recipe(items: RecipeItem[]): Recipe {
  return { name: 'test', description: 'test recipe', hostIdents: () => [], steps: () => items };
}

async function newJob(runvars: Record<string, string> = {}): Promise<{ flight: string; job: string }> {
  n += 1;
  const f = await store.createFlight({ flight: `t${n}`, branch: 'test', intended: 'play' });
  await store.createJob(f.flight, 'job', 'test', runvars);
  return { flight: f.flight, job: 'job' };
}

async function run(items: RecipeItem[], runvars: Record<string, string> = {}) {
  const { flight, job } = await newJob(runvars);
  const r = await runJob({ store, config: ws.config(), flight, job, recipe: recipe(items), pausePollMs: 50 });
  const steps = await store.listSteps(flight, job);
  return { r, steps, flight, job, statuses: steps.map((s) => `${s.testid}:${s.status}`) };
}

function logOf(stepLog: string | null): string {
  return readFileSync(join(ws.dir, 'logs', stepLog!), 'utf8');
}

beforeAll(async () => {
  ws = createWorkspace();
  ws.addTestcase('ts-ok', '#!/bin/sh\necho "fine $*"\n');
  ws.addTestcase('ts-bad', '#!/bin/sh\necho "about to fail" >&2\nexit 3\n');
  ws.addTestcase('ts-crash', '#!/bin/sh\necho "crashing"\nkill -SEGV $$\n');
  ws.addTestcase('ts-hang', '#!/bin/sh\necho "hanging"\nsleep 31.7\necho "never"\n');
  ws.addTestcase('ts-nap', '#!/bin/sh\nsleep 0.6\n');
  ws.addTestcase('ts-touch-abort', '#!/bin/sh\ntouch abort\n');
  ws.addTestcase(
    'ts-declare',
    nodeTestcase('await tc.declare(tc.positional[0], "declared by the testcase");'),
  );
  ws.addTestcase('ts-setrv', nodeTestcase('await tc.setRunvar("made_here", "yes");'));
  store = await ws.openStore();
});

afterAll(async () => {
  await store?.close();
  ws?.cleanup();
});

describe('executor', () => {
  it('runs every step, records testids, statuses, timestamps and a final exit status line', async () => {
    const { r, steps, flight } = await run([
      { testcase: 'ts-ok', args: ['one', '+', 'extra'], onFailure: 'broken' },
      { testcase: 'ts-setrv', onFailure: 'fail' },
      { testcase: 'ts-ok', testid: '*', onFailure: 'fail' },
    ]);
    expect(r.status).toBe('pass');
    expect(steps.map((s) => [s.stepno, s.testid, s.status])).toEqual([
      [1, 'ok/one', 'pass'],
      [2, 'setrv', 'pass'],
      [3, 'ok(3)', 'pass'],
    ]);
    for (const s of steps) {
      expect(s.started).not.toBeNull();
      expect(s.finished!).toBeGreaterThanOrEqual(s.started!);
      expect(s.logPath).toBe(`${flight}/job/${s.stepno}.${s.testcase}.log`);
    }
    const log = logOf(steps[0]!.logPath);
    expect(log).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d Z .*step 1 ts-ok one extra/m);
    expect(log).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d Z fine one extra$/m);
    expect(log.trimEnd().split('\n').pop()).toMatch(/exit status 0: step pass$/);
    expect((await store.getRunvar(flight, 'job', 'made_here'))?.synth).toBe(true);
    expect((await store.getFlight(flight))?.blessing).toBe('running');
    expect((await store.harnessRevisions(flight)).length).toBe(1);
  });

  it('a failing test step fails the job, skips later steps, but always-steps still run', async () => {
    const { r, statuses, steps } = await run([
      { testcase: 'ts-ok', testid: 'prep', onFailure: 'broken' },
      { testcase: 'ts-bad', testid: 'test', onFailure: 'fail' },
      { testcase: 'ts-ok', testid: 'after', onFailure: 'fail' },
      { testcase: 'ts-ok', testid: 'capture-logs', onFailure: 'broken', always: true },
    ]);
    expect(r.status).toBe('fail');
    expect(statuses).toEqual(['prep:pass', 'test:fail', 'capture-logs:pass']);
    const log = logOf(steps[1]!.logPath);
    expect(log).toContain('about to fail');
    expect(log).toMatch(/exit status 3: step fail/);
  });

  it('host preparation failures make the job broken, and broken sticks', async () => {
    const { r, statuses } = await run([
      { testcase: 'ts-bad', testid: 'host-install', onFailure: 'broken' },
      { testcase: 'ts-bad', testid: 'capture-logs', onFailure: 'fail', always: true },
    ]);
    expect(statuses).toEqual(['host-install:broken', 'capture-logs:fail']);
    expect(r.status).toBe('broken');
  });

  it('a missing build makes the job blocked', async () => {
    const { r, statuses } = await run([
      { testcase: 'ts-bad', testid: 'build-check', onFailure: 'blocked' },
      { testcase: 'ts-ok', testid: 'test', onFailure: 'fail' },
    ]);
    expect(r.status).toBe('blocked');
    expect(statuses).toEqual(['build-check:blocked']);
  });

  it('a testcase can declare the job broken or blocked itself', async () => {
    const a = await run([{ testcase: 'ts-declare', args: ['broken'], testid: 'x', onFailure: 'fail' }]);
    expect(a.statuses).toEqual(['x:broken']);
    expect(a.r.status).toBe('broken');
    const b = await run([{ testcase: 'ts-declare', args: ['blocked'], testid: 'x', onFailure: 'fail' }]);
    expect(b.statuses).toEqual(['x:blocked']);
    expect(b.r.status).toBe('blocked');
  });

  it('a crashing testcase is recorded with the signal, its log kept', async () => {
    const { r, steps } = await run([{ testcase: 'ts-crash', testid: 'crash', onFailure: 'fail' }]);
    expect(r.status).toBe('fail');
    const log = logOf(steps[0]!.logPath);
    expect(log).toContain('crashing');
    expect(log).toMatch(/killed by signal SIGSEGV: step fail/);
  });

  it('a testcase killed by its timeout is recorded as such, with its log and no process left', async () => {
    const { r, steps } = await run([
      { testcase: 'ts-hang', testid: 'hang', onFailure: 'fail', timeoutSeconds: 1 },
    ]);
    expect(r.status).toBe('fail');
    expect(steps[0]!.status).toBe('fail');
    const log = logOf(steps[0]!.logPath);
    expect(log).toContain('hanging');
    expect(log).not.toContain('never');
    expect(log).toMatch(/timed out after 1 s/);
    const left = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
    expect(left).not.toContain('sleep 31.7');
  });

  it('a testcase that does not exist is recorded as a failed step with the reason in its log', async () => {
    const { r, steps } = await run([{ testcase: 'ts-no-such-thing', onFailure: 'broken' }]);
    expect(r.status).toBe('broken');
    expect(logOf(steps[0]!.logPath)).toMatch(/could not start: no testcase ts-no-such-thing/);
  });

  it('per-host steps run in parallel', async () => {
    const { r, steps } = await run([
      {
        parallel: [
          { testcase: 'ts-nap', args: ['a'], onFailure: 'broken' },
          { testcase: 'ts-nap', args: ['b'], onFailure: 'broken' },
        ],
      },
    ]);
    expect(r.status).toBe('pass');
    const [s1, s2] = steps;
    // Each started before the other finished: they overlapped.
    expect(s1!.started!).toBeLessThan(s2!.finished!);
    expect(s2!.started!).toBeLessThan(s1!.finished!);
    expect(steps.map((s) => s.testid).sort()).toEqual(['nap/a', 'nap/b']);
  });

  it('an abort file stops new steps and marks the job aborted', async () => {
    const abortFile = join(ws.dir, 'abort');
    try {
      const { r, statuses } = await run([
        { testcase: 'ts-touch-abort', testid: 'first', onFailure: 'fail' },
        { testcase: 'ts-ok', testid: 'second', onFailure: 'fail' },
      ]);
      expect(statuses).toEqual(['first:pass']);
      expect(r.status).toBe('aborted');
    } finally {
      if (existsSync(abortFile)) rmSync(abortFile);
    }
  });

  it('a job that has run is run again only when asked, with the previous logs kept aside', async () => {
    const { flight, job } = await newJob();
    const r1 = recipe([{ testcase: 'ts-ok', testid: 'only', onFailure: 'fail' }]);
    await runJob({ store, config: ws.config(), flight, job, recipe: r1 });
    await expect(runJob({ store, config: ws.config(), flight, job, recipe: r1 })).rejects.toThrow(
      /already run \(pass\); use --rerun/,
    );
    const again = await runJob({ store, config: ws.config(), flight, job, recipe: r1, rerun: true });
    expect(again.status).toBe('pass');
    expect((await store.listSteps(flight, job)).map((s) => s.stepno)).toEqual([1]);
    const log = readFileSync(join(ws.dir, 'logs', flight, job, '1.ts-ok.log'), 'utf8');
    expect(log.match(/step 1 ts-ok/g)).toHaveLength(1);
    expect(readdirSync(join(ws.dir, 'logs', flight, 'previous-runs'))).toHaveLength(1);
  });

  it('pause_on_fail pauses the job until told to continue', async () => {
    const { flight, job } = await newJob({ pause_on_fail: 'ts-bad' });
    const cont = join(ws.dir, 'logs', flight, job, 'continue');
    let finished = false;
    const p = runJob({
      store,
      config: ws.config(),
      flight,
      job,
      pausePollMs: 50,
      recipe: recipe([
        { testcase: 'ts-bad', testid: 'test', onFailure: 'fail' },
        { testcase: 'ts-ok', testid: 'capture-logs', onFailure: 'broken', always: true },
      ]),
    }).then((r) => {
      finished = true;
      return r;
    });
    await new Promise((res) => setTimeout(res, 1500));
    expect(finished).toBe(false);
    expect((await store.listSteps(flight, job)).map((s) => s.testid)).toEqual(['test']);
    writeFileSync(cont, '');
    const r = await p;
    expect(r.status).toBe('fail');
    expect((await store.listSteps(flight, job)).map((s) => s.testid)).toEqual(['test', 'capture-logs']);
  });
});
