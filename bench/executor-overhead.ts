/**
 * bench/executor-overhead: the controller's cost per step. A 100-step job of a trivial testcase
 * (a shell script that exits 0) is run by the real executor against a real sqlite store; the
 * controller's overhead per step is the job's wall time minus the testcases' own time (each child
 * process from spawn to exit), divided by the steps. As a floor, the same 100 processes are also
 * spawned back to back with nothing around them. Rounds alternate; medians are reported.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Config } from '../src/config/config.js';
import { openStore } from '../src/db/open.js';
import type { Recipe } from '../src/executor/recipe.js';
import { runJob } from '../src/executor/run-job.js';

const STEPS = 100;
const ROUNDS = Number(process.env.ROUNDS ?? 5);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const dir = mkdtempSync(join(tmpdir(), 'osstest-bench-exec-'));
try {
  const tcDir = join(dir, 'testcases');
  spawnSync('mkdir', ['-p', tcDir]);
  const noop = join(tcDir, 'ts-noop');
  writeFileSync(noop, '#!/bin/sh\nexit 0\n');
  chmodSync(noop, 0o755);
  const cfgFile = join(dir, 'config');
  writeFileSync(
    cfgFile,
    [`StandaloneDb ${join(dir, 'db.sqlite')}`, `Logs ${join(dir, 'logs')}`, `TestcasePath ${tcDir}`, ''].join(
      '\n',
    ),
  );
  const config = Config.fromFiles([cfgFile], { cwd: dir });
  const store = await openStore({ kind: 'sqlite', path: config.path('StandaloneDb') });
  const recipe: Recipe = {
    name: 'bench',
    description: `${STEPS} trivial steps`,
    hostIdents: () => [],
    steps: () =>
      Array.from({ length: STEPS }, () => ({ testcase: 'ts-noop', testid: '*', onFailure: 'fail' as const })),
  };

  const ours: number[] = [];
  const floor: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const flight = await store.createFlight({ flight: `bench${round}`, branch: 'bench', intended: 'play' });
    await store.createJob(flight.flight, 'steps', 'bench');
    const t0 = performance.now();
    const r = await runJob({ store, config, flight: flight.flight, job: 'steps', recipe });
    const wall = performance.now() - t0;
    if (r.status !== 'pass' || r.steps.length !== STEPS) throw new Error(`bench job ended ${r.status}`);
    const own = r.steps.reduce((a, s) => a + s.outcome.durationMs, 0);
    const perStep = (wall - own) / STEPS;
    ours.push(perStep);

    const f0 = performance.now();
    for (let i = 0; i < STEPS; i++) spawnSync(noop, [], { stdio: 'ignore' });
    const bare = (performance.now() - f0) / STEPS;
    floor.push(bare);
    console.log(
      `round ${round}: job wall ${wall.toFixed(0)} ms, testcases' own ${own.toFixed(0)} ms, overhead ${perStep.toFixed(2)} ms/step; bare spawn ${bare.toFixed(2)} ms/process`,
    );
  }
  await store.close();
  console.log(`median controller overhead: ${median(ours).toFixed(2)} ms/step (target < 30)`);
  console.log(`median bare spawn of the same testcase: ${median(floor).toFixed(2)} ms/process`);
  console.log(`result: ms_per_step=${median(ours).toFixed(2)}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
