/**
 * The bisection engine over real git repositories (generated once for the file), driven by the
 * simulated executor. The truth a simulated test reports comes from git itself (which commits
 * descend from the culprit), not from the engine's graph.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decide } from '../../src/bisect/engine.js';
import {
  commitInfo,
  commitsBetween,
  GitError,
  isAncestor,
  resolveCommit,
  shortLog,
} from '../../src/bisect/git.js';
import {
  BisectionNotPossible,
  buildTupleGraph,
  loadTupleGraph,
  type TupleGraph,
} from '../../src/bisect/graph.js';
import { formatLog, headerOf, replay } from '../../src/bisect/log.js';
import { failsWithCulprit, prng, type SimulateResult, simulate } from '../../src/bisect/simulate.js';
import { prerequisites } from '../helpers/env.js';
import { type GeneratedRepo, generateRepo, generateTwoTrees, type TwoTrees } from '../helpers/gitrepos.js';

const ok = prerequisites('bisection over real git repositories', { commands: ['git'] });

function specs(t: TwoTrees) {
  return [
    { tree: 'xen', repo: t.xen.path, basis: t.xen.basis, failure: t.xen.failure },
    { tree: 'linux', repo: t.linux.path, basis: t.linux.basis, failure: t.linux.failure },
  ];
}

/** Which tuples fail when CULPRIT is the culprit, asked of git: the commits that descend from it. */
async function gitTruth(g: TupleGraph, repo: GeneratedRepo, tree: string, culprit: string) {
  const r = await execa('git', [
    '-C',
    repo.path,
    'rev-list',
    '--ancestry-path',
    `${culprit}..${repo.failure}`,
  ]);
  const containing = new Set([culprit, ...r.stdout.split('\n').filter(Boolean)]);
  return (node: number) => containing.has(g.node(node).tuple[tree]!);
}

function quantiles(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (f: number) => s[Math.min(s.length - 1, Math.floor(f * s.length))]!;
  return { min: s[0]!, median: q(0.5), p90: q(0.9), max: s.at(-1)! };
}

function histogram(xs: number[]): string {
  const m = new Map<number, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return [...m]
    .sort((a, b) => a[0] - b[0])
    .map(([k, n]) => `${k}:${n}`)
    .join(' ');
}

describe.skipIf(!ok)('bisection over real repositories', () => {
  let root: string;
  let merged: TwoTrees; // 640 + 384 = 1,024 commits, side branches and merges
  let linear: TwoTrees; // 640 + 384, no merges
  let small: TwoTrees; // 300 + 200, merges: the flake runs
  let gMerged: TupleGraph;
  let gLinear: TupleGraph;
  let gSmall: TupleGraph;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'osstest-bisect-'));
    [merged, small] = await Promise.all([
      generateTwoTrees(join(root, 'merged'), 640, 384, 1),
      generateTwoTrees(join(root, 'small'), 300, 200, 2),
    ]);
    const [lx, ll] = await Promise.all([
      generateRepo(join(root, 'linear', 'xen'), {
        commits: 640,
        seed: 11,
        branchChance: 0,
        preBasisSide: false,
        meanGap: 300,
      }),
      generateRepo(join(root, 'linear', 'linux'), {
        commits: 384,
        seed: 12,
        branchChance: 0,
        preBasisSide: false,
        meanGap: 500,
      }),
    ]);
    linear = { xen: lx, linux: ll };
    [gMerged, gLinear, gSmall] = await Promise.all([
      loadTupleGraph(specs(merged)),
      loadTupleGraph(specs(linear)),
      loadTupleGraph(specs(small)),
    ]);
  });
  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('builds the graph of 1,024 commits across two trees, merges included, well under a second', async () => {
    const changes = new Set(gMerged.changes.map((c) => `${c.tree}:${c.sha}`));
    expect(changes.size).toBe(1024);
    for (const sha of merged.xen.range) expect(changes.has(`xen:${sha}`)).toBe(true);
    for (const sha of merged.linux.range) expect(changes.has(`linux:${sha}`)).toBe(true);
    expect(merged.xen.commits.some((c) => c.merge && c.inRange)).toBe(true);
    expect(gMerged.node(gMerged.failure).tuple).toEqual({
      xen: merged.xen.failure,
      linux: merged.linux.failure,
    });
    expect(gMerged.node(gMerged.basis).tuple).toEqual({ xen: merged.xen.basis, linux: merged.linux.basis });
    // Merges give more nodes than changes; a linear history gives a chain.
    expect(gMerged.nodes.length).toBeGreaterThan(1025);
    expect(gLinear.nodes.length).toBe(1025);
    // Reading with git and building, then the pure construction on its own.
    let t0 = performance.now();
    const again = await loadTupleGraph(specs(merged));
    const withGit = performance.now() - t0;
    expect(again.nodes.length).toBe(gMerged.nodes.length);
    const ranges = await Promise.all(
      specs(merged).map(async (s) => ({ ...s, commits: await commitsBetween(s.repo, s.basis, s.failure) })),
    );
    t0 = performance.now();
    buildTupleGraph(ranges);
    const pure = performance.now() - t0;
    process.stdout.write(
      `tuple graph: ${gMerged.nodes.length} nodes, ${gMerged.edgeCount} edges, ${gMerged.changes.length} changes; ` +
        `built in ${pure.toFixed(0)} ms, ${withGit.toFixed(0)} ms with git\n`,
    );
    expect(pure).toBeLessThan(500);
    expect(withGit).toBeLessThan(1000);
  });

  it('deterministic failure over 1,024 commits of a linear history: ≤ 10 bisection flights, k=3 in ≤ 5 rounds', () => {
    for (const c of gLinear.changes) {
      const fails = failsWithCulprit(gLinear, c.tree, c.sha);
      const one = simulate({ graph: gLinear, fails, flake: 0, seed: c.index });
      expect(one.outcome.code).toBe(4);
      expect(one.outcome.culprit?.rev).toBe(c.sha);
      expect(one.byReason.bisect).toBeLessThanOrEqual(10);
      expect(one.byReason['reproduce-basis'] + one.byReason['reproduce-failure']).toBe(2);
      if (c.index % 8 === 0) {
        const three = simulate({ graph: gLinear, fails, flake: 0, seed: c.index, hosts: 3 });
        expect(three.outcome.culprit?.rev).toBe(c.sha);
        expect(three.rounds.bisect).toBeLessThanOrEqual(5);
        expect(three.rounds.reproduce).toBe(2);
      }
    }
  });

  it('deterministic failure over 1,024 commits with merges: exact culprit, flights and rounds near log2 and log4', async () => {
    const flights: number[] = [];
    const rounds: number[] = [];
    const confirm: number[] = [];
    for (const c of gMerged.changes) {
      const fails = failsWithCulprit(gMerged, c.tree, c.sha);
      const one = simulate({ graph: gMerged, fails, flake: 0, seed: c.index });
      expect(one.outcome.code).toBe(4);
      expect(one.outcome.culprit?.tree).toBe(c.tree);
      expect(one.outcome.culprit?.rev).toBe(c.sha);
      flights.push(one.byReason.bisect);
      confirm.push(one.byReason['confirm-culprit']);
      if (c.index % 4 === 0)
        rounds.push(simulate({ graph: gMerged, fails, flake: 0, seed: c.index, hosts: 3 }).rounds.bisect);
    }
    process.stdout.write(
      `1,024 commits with merges, every culprit: bisection flights ${histogram(flights)}; ` +
        `confirmation flights ${histogram(confirm)}; k=3 bisection rounds ${histogram(rounds)}\n`,
    );
    // 1,024 = 2^10: ten flights need an exact halving every time, which merges do not always allow.
    expect(quantiles(flights).median).toBe(10);
    expect(quantiles(flights).max).toBeLessThanOrEqual(11);
    expect(flights.filter((f) => f <= 10).length / flights.length).toBeGreaterThanOrEqual(0.95);
    expect(quantiles(rounds).median).toBeLessThanOrEqual(5);
    expect(quantiles(rounds).max).toBeLessThanOrEqual(6);
    expect(rounds.filter((r) => r <= 5).length / rounds.length).toBeGreaterThanOrEqual(0.9);

    // A sample checked against git's own idea of which tuples contain the culprit.
    for (const c of gMerged.changes.filter((x) => x.index % 97 === 0)) {
      const repo = c.tree === 'xen' ? merged.xen : merged.linux;
      const r = simulate({
        graph: gMerged,
        fails: await gitTruth(gMerged, repo, c.tree, c.sha),
        flake: 0,
        seed: 1,
      });
      expect(r.outcome.culprit?.rev).toBe(c.sha);
    }
  });

  it('10% flaky test over 200 seeded runs: ≥ 90% found, ≥ 99% of those correct', async () => {
    const all = [
      ...small.xen.range.map((sha) => ['xen', sha] as const),
      ...small.linux.range.map((sha) => ['linux', sha] as const),
    ];
    const runs: Array<{ r: SimulateResult; tree: string; sha: string }> = [];
    for (let seed = 1; seed <= 200; seed++) {
      const [tree, sha] = all[Math.floor(prng(seed * 7 + 3)() * all.length)]!;
      const repo = tree === 'xen' ? small.xen : small.linux;
      const fails = await gitTruth(gSmall, repo, tree, sha);
      runs.push({ r: simulate({ graph: gSmall, fails, flake: 0.1, seed }), tree, sha });
    }
    const found = runs.filter(({ r }) => r.outcome.code === 4 || r.outcome.code === 12);
    const correct = found.filter(
      ({ r, tree, sha }) => r.outcome.culprit?.tree === tree && r.outcome.culprit.rev === sha,
    );
    const codes = histogram(runs.map(({ r }) => r.outcome.code));
    const flights = runs.map(({ r }) => r.flights);
    const q = quantiles(flights);
    process.stdout.write(
      `10% flake, 200 runs over ${gSmall.changes.length} commits: verdicts ${codes}; found ${found.length}, ` +
        `correct ${correct.length}; flights min ${q.min} median ${q.median} p90 ${q.p90} max ${q.max}; ` +
        `distribution ${histogram(flights)}\n`,
    );
    expect(found.length / runs.length).toBeGreaterThanOrEqual(0.9);
    expect(correct.length / found.length).toBeGreaterThanOrEqual(0.99);
    for (const { r } of found) expect(r.outcome.confidence).toBeGreaterThan(0.9);

    // One run's log round-trips and gives the same verdict again.
    const { r } = runs[0]!;
    const back = replay(formatLog(headerOf(gSmall), r.events));
    const again = decide(gSmall, back.observations);
    expect(again.kind === 'done' && again.outcome).toEqual(r.outcome);
  });

  it('a culprit reads back from git as the report needs it', async () => {
    const c = gSmall.changes.find((x) => x.tree === 'linux' && x.gitParents.length === 1)!;
    const r = simulate({ graph: gSmall, fails: failsWithCulprit(gSmall, c.tree, c.sha), flake: 0, seed: 3 });
    const culprit = r.outcome.culprit!;
    const repo = small.linux.path;
    expect(await isAncestor(repo, culprit.rev, small.linux.failure)).toBe(true);
    expect(await isAncestor(repo, culprit.rev, culprit.parentRev)).toBe(false);
    expect((await commitInfo(repo, culprit.rev)).parents).toEqual(culprit.gitParents);
    const between = await shortLog(repo, culprit.parentRev, culprit.rev);
    expect(between.map((e) => e.sha)).toContain(culprit.rev);
  });

  it('with --ancestry-path, a change on a branch forked before the basis is blamed on its merge', async () => {
    const side = merged.xen.commits.find((c) => c.inRange && c.label.startsWith('side-1.'))!;
    const merge = merged.xen.commits.find((c) => c.label === 'merge side-1')!;
    const g = await loadTupleGraph(specs(merged), { ancestryPath: true });
    expect(g.changes.some((c) => c.sha === side.sha)).toBe(false);
    const fails = await gitTruth(g, merged.xen, 'xen', side.sha);
    const r = simulate({ graph: g, fails, flake: 0, seed: 5 });
    expect(r.outcome.code).toBe(4);
    expect(r.outcome.culprit?.rev).toBe(merge.sha);
    // Without it (the default), the side commit itself is found.
    const r2 = simulate({
      graph: gMerged,
      fails: await gitTruth(gMerged, merged.xen, 'xen', side.sha),
      flake: 0,
      seed: 5,
    });
    expect(r2.outcome.culprit?.rev).toBe(side.sha);
  });

  it('says clearly when git cannot help', async () => {
    await expect(resolveCommit(small.xen.path, 'no-such-branch')).rejects.toThrow(
      new RegExp(`in ${small.xen.path}: no such commit: no-such-branch`),
    );
    await expect(resolveCommit(join(root, 'nowhere'), 'HEAD')).rejects.toThrow(GitError);
    const backwards = specs(small).map((s) => ({ ...s, basis: s.failure, failure: s.basis }));
    await expect(loadTupleGraph(backwards)).rejects.toThrow(BisectionNotPossible);
    expect(() => buildTupleGraph([])).toThrow(/no trees/);
  });
});
