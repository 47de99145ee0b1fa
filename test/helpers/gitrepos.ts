/**
 * Real git repositories for bisection tests, generated with `git fast-import` (thousands of
 * commits in well under a second). Each repository has a short history before its basis, then
 * exactly N commits reachable from the failure and not from the basis: a main line, side branches
 * merged back, and optionally one side branch forked before the basis (so the range holds
 * commits that do not contain the basis, as real merged histories do). Everything is derived
 * from the seed (times included), so the same seed gives the same hashes.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { prng } from '../../src/bisect/simulate.js';

export interface RepoShape {
  /** Commits reachable from the failure and not from the basis (merges included). */
  commits: number;
  seed: number;
  /** Chance, at each step, of opening a side branch (default 0.04). */
  branchChance?: number;
  /** Side branches run 1..maxSide commits before their merge (default 12). */
  maxSide?: number;
  /** Open a side branch before the basis and merge it after (default true). */
  preBasisSide?: boolean;
  /** First commit time (epoch seconds) and mean gap between commits (defaults 1.7e9, 600). */
  start?: number;
  meanGap?: number;
  /**
   * Plant a culprit: the first non-merge range commit at or after this index (creation order)
   * adds a file CULPRIT (instead of changing f<N>) that no other commit touches, so a test can
   * fail exactly in the trees that contain it and a revert of it applies cleanly anywhere above it.
   */
  culprit?: number;
}

export interface GeneratedCommit {
  sha: string;
  parents: string[];
  time: number;
  label: string;
  /** After the basis (in the range), or part of the history before it. */
  inRange: boolean;
  merge: boolean;
}

export interface GeneratedRepo {
  path: string;
  basis: string;
  failure: string;
  commits: GeneratedCommit[];
  /** The range's commits, oldest first. */
  range: string[];
  /** The planted culprit (RepoShape.culprit), if any. */
  culprit?: string;
}

interface Planned {
  mark: number;
  parents: number[];
  time: number;
  label: string;
  inRange: boolean;
  ref: string;
}

function plan(shape: RepoShape): { commits: Planned[]; basisMark: number; failureMark: number } {
  const rnd = prng(shape.seed);
  const gap = shape.meanGap ?? 600;
  let time = shape.start ?? 1_700_000_000;
  const tick = () => {
    time += 1 + Math.floor(rnd() * 2 * gap);
    return time;
  };
  const commits: Planned[] = [];
  const add = (parents: number[], label: string, inRange: boolean, ref: string): number => {
    const mark = commits.length + 1;
    commits.push({ mark, parents, time: tick(), label, inRange, ref });
    return mark;
  };
  let main = add([], 'root', false, 'refs/heads/main');
  main = add([main], 'pre-1', false, 'refs/heads/main');
  interface Side {
    ref: string;
    tip: number;
    length: number;
    target: number;
  }
  const open: Side[] = [];
  const maxSide = shape.maxSide ?? 12;
  let sides = 0;
  let count = 0;
  const N = shape.commits;
  if (N < 1) throw new Error('generateRepo: at least one commit after the basis');
  if ((shape.preBasisSide ?? true) && N >= 4) {
    const ref = `refs/heads/side-${++sides}`;
    const tip = add([main], `side-${sides}.1`, true, ref);
    open.push({ ref, tip, length: 1, target: 1 + Math.floor(rnd() * maxSide) });
    count++;
  }
  main = add([main], 'basis', false, 'refs/heads/main');
  const basisMark = main;
  const chance = shape.branchChance ?? 0.04;
  while (count < N) {
    const remaining = N - count;
    const ready = open.findIndex((s) => s.length >= s.target);
    if (remaining <= open.length || (ready >= 0 && rnd() < 0.5)) {
      const s = open.splice(Math.max(ready, 0), 1)[0]!;
      main = add([main, s.tip], `merge ${s.ref.slice(11)}`, true, 'refs/heads/main');
    } else if (remaining >= open.length + 2 && rnd() < chance) {
      const ref = `refs/heads/side-${++sides}`;
      const tip = add([main], `side-${sides}.1`, true, ref);
      open.push({ ref, tip, length: 1, target: 1 + Math.floor(rnd() * maxSide) });
    } else if (open.length > 0 && rnd() < 0.5) {
      const s = open[Math.floor(rnd() * open.length)]!;
      s.tip = add([s.tip], `${s.ref.slice(11)}.${++s.length}`, true, s.ref);
    } else {
      main = add([main], `main-${count}`, true, 'refs/heads/main');
    }
    count++;
  }
  return { commits, basisMark, failureMark: main };
}

/** The file a planted culprit adds. */
export const CULPRIT_FILE = 'CULPRIT';

function culpritMark(commits: readonly Planned[], at: number | undefined): number | undefined {
  if (at === undefined) return undefined;
  const range = commits.filter((c) => c.inRange);
  const c = range.slice(at).find((x) => x.parents.length === 1);
  if (!c) throw new Error(`generateRepo: no non-merge range commit at or after index ${at}`);
  return c.mark;
}

function fastImportStream(commits: Planned[], culprit?: number): string {
  const out: string[] = [];
  const data = (s: string) => `data ${Buffer.byteLength(s)}\n${s}\n`;
  for (const c of commits) {
    const who = `Generated Developer <dev@example.invalid> ${c.time} +0000`;
    out.push(`commit ${c.ref}\nmark :${c.mark}\nauthor ${who}\ncommitter ${who}\n${data(c.label)}`);
    if (c.parents[0] !== undefined) out.push(`from :${c.parents[0]}\n`);
    for (const p of c.parents.slice(1)) out.push(`merge :${p}\n`);
    // The culprit touches its own file only, so that reverting it never conflicts.
    if (c.mark === culprit) out.push(`M 100644 inline ${CULPRIT_FILE}\n${data('the bug\n')}\n`);
    else out.push(`M 100644 inline f${c.mark % 8}\n${data(`${c.label}\n`)}\n`);
  }
  return out.join('');
}

export async function generateRepo(path: string, shape: RepoShape): Promise<GeneratedRepo> {
  mkdirSync(path, { recursive: true });
  const { commits, basisMark, failureMark } = plan(shape);
  const culprit = culpritMark(commits, shape.culprit);
  await execa('git', ['init', '-q', '-b', 'main', path]);
  const marks = join(path, '.git', 'generated-marks');
  await execa('git', ['-C', path, 'fast-import', '--quiet', `--export-marks=${marks}`], {
    input: fastImportStream(commits, culprit),
  });
  const sha = new Map<number, string>();
  for (const line of readFileSync(marks, 'utf8').split('\n')) {
    const m = /^:(\d+) ([0-9a-f]{40})$/.exec(line);
    if (m) sha.set(Number(m[1]), m[2]!);
  }
  const get = (mark: number) => {
    const s = sha.get(mark);
    if (!s) throw new Error(`generateRepo: fast-import gave no hash for mark ${mark}`);
    return s;
  };
  const out: GeneratedCommit[] = commits.map((c) => ({
    sha: get(c.mark),
    parents: c.parents.map(get),
    time: c.time,
    label: c.label,
    inRange: c.inRange,
    merge: c.parents.length > 1,
  }));
  const repo: GeneratedRepo = {
    path,
    basis: get(basisMark),
    failure: get(failureMark),
    commits: out,
    range: out.filter((c) => c.inRange).map((c) => c.sha),
  };
  if (culprit !== undefined) repo.culprit = get(culprit);
  return repo;
}

export interface TwoTrees {
  xen: GeneratedRepo;
  linux: GeneratedRepo;
}

/** Two trees whose commit times interleave: xen with XEN commits in its range, linux with LINUX. */
export async function generateTwoTrees(
  root: string,
  xen: number,
  linux: number,
  seed: number,
): Promise<TwoTrees> {
  // Both trees span about the same period, so that the tuple graph interleaves them.
  const span = 600 * Math.max(xen, linux);
  const [x, l] = await Promise.all([
    generateRepo(join(root, 'xen'), {
      commits: xen,
      seed: seed * 2 + 1,
      meanGap: Math.max(1, Math.round(span / xen / 2)),
    }),
    generateRepo(join(root, 'linux'), {
      commits: linux,
      seed: seed * 2 + 2,
      meanGap: Math.max(1, Math.round(span / linux / 2)),
    }),
  ]);
  return { xen: x, linux: l };
}
