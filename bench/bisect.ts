/**
 * bench/bisect: the bisection engine against `git bisect run`, on the same generated repositories
 * (two trees, 640 + 384 = 1,024 commits in range, side branches and merges) and the same simulated
 * verdicts. A test fails when its revision contains the culprit; at 10% flake it also fails
 * spuriously with probability 0.1, drawn from the same seeded stream for both bisectors (draw i
 * for the i-th test run).
 *
 *  - ours, deterministic, every one of the 1,024 culprits: bisection flights (k = 1) and rounds
 *    (k = 3), beside the reproduction and confirmation flights it adds;
 *  - ours, 10% flake, 200 seeded runs (culprit drawn from the seed): how often a culprit is named
 *    and how often it is the right one; the distribution of flights;
 *  - git bisect run in the culprit's own tree (it is told which tree, an advantage), the same 200
 *    seeds and a sample of deterministic culprits: accuracy and test runs.
 *
 * Prints `result: found_pct=… found_correct_pct=… flights_1024=… rounds_k3=…` lines at the end.
 * GIT_RUNS (default 200) and GIT_DETERMINISTIC (default 64) bound the slower git bisect part.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { loadTupleGraph, type TupleGraph } from '../src/bisect/graph.js';
import { failsWithCulprit, prng, type SimulateResult, simulate } from '../src/bisect/simulate.js';
import { type GeneratedRepo, generateTwoTrees } from '../test/helpers/gitrepos.js';

const FLAKE = 0.1;
const SEEDS = 200;
const GIT_RUNS = Number(process.env.GIT_RUNS ?? SEEDS);
const GIT_DETERMINISTIC = Number(process.env.GIT_DETERMINISTIC ?? 64);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
function histogram(xs: number[]): string {
  const m = new Map<number, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return [...m]
    .sort((a, b) => a[0] - b[0])
    .map(([k, n]) => `${k}:${n}`)
    .join(' ');
}
const pct = (a: number, b: number) => (b === 0 ? 0 : (100 * a) / b);

const root = mkdtempSync(join(tmpdir(), 'osstest-bench-bisect-'));
try {
  const t0 = performance.now();
  const trees = await generateTwoTrees(root, 640, 384, 1);
  const repoOf = (tree: string): GeneratedRepo => (tree === 'xen' ? trees.xen : trees.linux);
  const t1 = performance.now();
  const g: TupleGraph = await loadTupleGraph(
    (['xen', 'linux'] as const).map((tree) => ({
      tree,
      repo: repoOf(tree).path,
      basis: repoOf(tree).basis,
      failure: repoOf(tree).failure,
    })),
  );
  const t2 = performance.now();
  const merges = [...trees.xen.commits, ...trees.linux.commits].filter((c) => c.inRange && c.merge).length;
  console.log(
    `repositories: xen ${trees.xen.range.length} + linux ${trees.linux.range.length} commits in range (${merges} merges), ` +
      `generated in ${(t1 - t0).toFixed(0)} ms; tuple graph ${g.nodes.length} nodes, ${g.edgeCount} edges, read and built in ${(t2 - t1).toFixed(0)} ms`,
  );

  // Ours, deterministic, every culprit.
  const bis1: number[] = [];
  const all1: number[] = [];
  const conf1: number[] = [];
  const rounds3: number[] = [];
  const allRounds3: number[] = [];
  let wrongDet = 0;
  const t3 = performance.now();
  for (const c of g.changes) {
    const fails = failsWithCulprit(g, c.tree, c.sha);
    const r1 = simulate({ graph: g, fails, flake: 0, seed: c.index });
    if (r1.outcome.culprit?.rev !== c.sha) wrongDet++;
    bis1.push(r1.byReason.bisect);
    all1.push(r1.flights);
    conf1.push(r1.byReason['confirm-culprit']);
    const r3 = simulate({ graph: g, fails, flake: 0, seed: c.index, hosts: 3 });
    if (r3.outcome.culprit?.rev !== c.sha) wrongDet++;
    rounds3.push(r3.rounds.bisect);
    allRounds3.push(r3.rounds.total);
  }
  const t4 = performance.now();
  console.log(
    `\nours, deterministic failure, all ${g.changes.length} culprits (${((t4 - t3) / g.changes.length / 2).toFixed(1)} ms per bisection, wrong ${wrongDet}):`,
  );
  console.log(
    `  k=1 bisection flights: ${histogram(bis1)} (median ${median(bis1)}; ≤ 10 in ${pct(bis1.filter((x) => x <= 10).length, bis1.length).toFixed(1)}%)`,
  );
  console.log(
    `      + reproduction 2 + confirmation ${histogram(conf1)}; all flights median ${median(all1)}`,
  );
  console.log(
    `  k=3 bisection rounds:  ${histogram(rounds3)} (median ${median(rounds3)}; ≤ 5 in ${pct(rounds3.filter((x) => x <= 5).length, rounds3.length).toFixed(1)}%); all rounds median ${median(allRounds3)}`,
  );

  // Ours, 10% flake.
  const culpritOf = (seed: number) => g.changes[Math.floor(prng(seed * 7 + 3)() * g.changes.length)]!;
  const flaky = (hosts: number) => {
    const runs: Array<{ r: SimulateResult; ok: boolean }> = [];
    for (let seed = 1; seed <= SEEDS; seed++) {
      const c = culpritOf(seed);
      const r = simulate({ graph: g, fails: failsWithCulprit(g, c.tree, c.sha), flake: FLAKE, seed, hosts });
      runs.push({ r, ok: r.outcome.culprit?.tree === c.tree && r.outcome.culprit.rev === c.sha });
    }
    const found = runs.filter(({ r }) => r.outcome.code === 4 || r.outcome.code === 12);
    return { runs, found, correct: found.filter((x) => x.ok) };
  };
  const f1 = flaky(1);
  const f3 = flaky(3);
  const flights1 = f1.runs.map(({ r }) => r.flights);
  console.log(`\nours, ${FLAKE * 100}% flake, ${SEEDS} seeded runs:`);
  for (const [k, f] of [
    [1, f1],
    [3, f3],
  ] as const) {
    console.log(
      `  k=${k}: verdicts ${histogram(f.runs.map(({ r }) => r.outcome.code))}; found ${pct(f.found.length, SEEDS).toFixed(1)}%, ` +
        `correct among found ${pct(f.correct.length, f.found.length).toFixed(1)}%; flights median ${median(f.runs.map(({ r }) => r.flights))}` +
        (k === 3 ? `, rounds median ${median(f.runs.map(({ r }) => r.rounds.total))}` : ''),
    );
  }
  console.log(`  k=1 flights used: ${histogram(flights1)}`);
  console.log(
    `  k=1 confidence of found verdicts: min ${Math.min(...f1.found.map(({ r }) => r.outcome.confidence)).toFixed(4)}`,
  );

  // git bisect run, same culprits, same draws.
  const script = join(root, 'verdict');
  writeFileSync(
    script,
    [
      '#!/bin/bash',
      '# The simulated verdict for git bisect run: fail if BISECT_HEAD contains the culprit, or on a drawn flake.',
      'n=$(( $(cat "$COUNTER") + 1 )); echo "$n" > "$COUNTER"',
      'if git merge-base --is-ancestor "$CULPRIT" BISECT_HEAD; then exit 1; fi',
      '[ "$(sed -n "$n"p "$DRAWS")" = 1 ] && exit 1',
      'exit 0',
      '',
    ].join('\n'),
  );
  chmodSync(script, 0o755);
  const counter = join(root, 'counter');
  const draws = join(root, 'draws');
  const gitBisect = async (tree: string, culprit: string, seed: number, flake: number) => {
    const repo = repoOf(tree);
    const draw = prng(seed);
    writeFileSync(draws, `${Array.from({ length: 400 }, () => (draw() < flake ? '1' : '0')).join('\n')}\n`);
    writeFileSync(counter, '0\n');
    const env = { COUNTER: counter, DRAWS: draws, CULPRIT: culprit };
    const git = (...args: string[]) => execa('git', ['-C', repo.path, ...args], { env });
    await git('bisect', 'start', '--no-checkout', repo.failure, repo.basis);
    await git('bisect', 'run', script);
    const bad = (await git('rev-parse', 'refs/bisect/bad')).stdout.trim();
    await git('bisect', 'reset');
    return { ok: bad === culprit, runs: Number(readFileSync(counter, 'utf8')) };
  };
  const t5 = performance.now();
  const gitFlaky: Array<{ ok: boolean; runs: number }> = [];
  for (let seed = 1; seed <= GIT_RUNS; seed++) {
    const c = culpritOf(seed);
    gitFlaky.push(await gitBisect(c.tree, c.sha, seed, FLAKE));
  }
  const gitDet: Array<{ ok: boolean; runs: number }> = [];
  const step = Math.max(1, Math.floor(g.changes.length / GIT_DETERMINISTIC));
  for (let i = 0; i < g.changes.length && gitDet.length < GIT_DETERMINISTIC; i += step) {
    const c = g.changes[i]!;
    gitDet.push(await gitBisect(c.tree, c.sha, 1, 0));
  }
  const t6 = performance.now();
  const gitOk = gitFlaky.filter((x) => x.ok).length;
  console.log(`\ngit bisect run in the culprit's tree (${((t6 - t5) / 1000).toFixed(0)} s):`);
  console.log(
    `  ${FLAKE * 100}% flake, ${gitFlaky.length} runs (same seeds): names a culprit 100%, correct ${pct(gitOk, gitFlaky.length).toFixed(1)}%; ` +
      `test runs median ${median(gitFlaky.map((x) => x.runs))}: ${histogram(gitFlaky.map((x) => x.runs))}`,
  );
  console.log(
    `  deterministic, ${gitDet.length} culprits: correct ${pct(gitDet.filter((x) => x.ok).length, gitDet.length).toFixed(1)}%, ` +
      `test runs median ${median(gitDet.map((x) => x.runs))}: ${histogram(gitDet.map((x) => x.runs))}`,
  );
  const oursFlakyCorrect = pct(f1.correct.length, SEEDS);
  console.log(
    `\nside by side at ${FLAKE * 100}% flake: ours names the right culprit in ${oursFlakyCorrect.toFixed(1)}% of runs ` +
      `(median ${median(flights1)} flights), git bisect in ${pct(gitOk, gitFlaky.length).toFixed(1)}% (median ${median(gitFlaky.map((x) => x.runs))} runs)`,
  );

  console.log(`result: found_pct=${pct(f1.found.length, SEEDS).toFixed(1)}`);
  console.log(`result: found_correct_pct=${pct(f1.correct.length, f1.found.length).toFixed(1)}`);
  console.log(`result: flights_1024=${median(bis1)}`);
  console.log(`result: rounds_k3=${median(rounds3)}`);
} finally {
  rmSync(root, { recursive: true, force: true });
}
