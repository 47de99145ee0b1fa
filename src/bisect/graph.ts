/**
 * The graph of revision tuples between a basis (passing) and a failure, across all trees
 * (OSSTEST-BEHAVIOUR §5).
 *
 * Starting from the failure tuple and walking towards the basis, each node is expanded in the one
 * tree whose commit there is the newest (by committer time; ties go to the first tree by name):
 * its parents are the tuples with that tree's commit replaced by each of the commit's parents.
 * Trees whose commit is already the basis's stay fixed. Parents outside the range (reachable from
 * the basis) stand for the basis: a passing basis is taken to vouch for its ancestors, as
 * `git bisect` does. So every path from the failure down to the basis adds one change at a time
 * (a merge adds itself), interleaving the trees' histories by date.
 *
 * Each node also carries the set of range commits ("changes") it contains: for each tree, the
 * commits of the range that are ancestors of (or equal to) its commit there. A test of a node
 * tells whether the culprit change is in that set, which is what the engine reasons with.
 */
import { andCount, andNotInto, type Bits, emptyBits, isEmpty, orInto, setBit, wordsFor } from './bitset.js';
import { type CommitInfo, commitsBetween, type RangeOptions, resolveCommit } from './git.js';

export type Tuple = Readonly<Record<string, string>>;

/** Bisection cannot even start (§5 outcome 32); `reason` says why in words for the report. */
export class BisectionNotPossible extends Error {
  constructor(readonly reason: string) {
    super(`bisection not possible: ${reason}`);
    this.name = 'BisectionNotPossible';
  }
}

/** Inputs that contradict themselves (a caller's mistake, not a property of the history). */
export class BisectInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BisectInputError';
  }
}

export interface TreeRange {
  tree: string;
  /** Full hash of the basis's commit in this tree. */
  basis: string;
  /** Full hash of the failure's commit in this tree. */
  failure: string;
  /** The commits reachable from the failure and not from the basis, in any order (see git.commitsBetween). */
  commits: readonly CommitInfo[];
}

export interface Change {
  /** Index into TupleGraph.changes (and bit number in the nodes' change sets). */
  index: number;
  tree: string;
  sha: string;
  time: number;
  /** The commit's parents as git has them (some may lie outside the range). */
  gitParents: readonly string[];
}

export interface TupleNode {
  /** Position in TupleGraph.nodes; nodes are in topological order, basis first, failure last. */
  index: number;
  /** Stable key: `tree=sha` for every tree, trees sorted by name, joined with commas. */
  id: string;
  tuple: Tuple;
  /** Nodes one change below (towards the basis). */
  parents: number[];
  children: number[];
  /** The change this node adds over each of its parents; undefined only at the basis. */
  change?: number;
  /** The tree expanded at this node (where its parents differ from it). */
  tree?: string;
}

const TREE_NAME = /^[A-Za-z0-9_.+-]+$/;
const SHA = /^[0-9a-f]{4,64}$/;

export function tupleId(tuple: Tuple, trees?: readonly string[]): string {
  const names = trees ?? Object.keys(tuple).sort();
  return names
    .map((t) => {
      const rev = tuple[t];
      if (rev === undefined)
        throw new BisectInputError(`tuple ${JSON.stringify(tuple)} has no revision for tree ${t}`);
      return `${t}=${rev}`;
    })
    .join(',');
}

/** The inverse of tupleId; throws naming the text when it is not `tree=rev,…`. */
export function parseTupleId(id: string): Record<string, string> {
  const tuple: Record<string, string> = {};
  for (const part of id.split(',')) {
    const eq = part.indexOf('=');
    const tree = part.slice(0, eq);
    const rev = part.slice(eq + 1);
    if (eq <= 0 || !TREE_NAME.test(tree) || rev === '' || /[\s,=]/.test(rev)) {
      throw new BisectInputError(`not a revision tuple: ${JSON.stringify(id)} (expected tree=rev,tree=rev…)`);
    }
    if (tree in tuple)
      throw new BisectInputError(`revision tuple ${JSON.stringify(id)} names tree ${tree} twice`);
    tuple[tree] = rev;
  }
  return tuple;
}

export interface BuildOptions {
  /** Refuse graphs with more nodes than this (default 250,000). */
  maxNodes?: number;
}

export class TupleGraph {
  readonly trees: readonly string[];
  readonly nodes: readonly TupleNode[];
  readonly changes: readonly Change[];
  readonly basis: number;
  readonly failure: number;
  /** Words per change set. */
  readonly words: number;
  private readonly views: Bits[];
  /** Per node and tree (nodes × trees): the change at that tree's commit, -1 at the basis. */
  private readonly nodeChanges: Int32Array;
  /** Per change: its first parent's change, -1 when that is the basis or outside the range. */
  private readonly firstParent: Int32Array;
  /** Per merge: the changes it contains beyond its first parent's and itself. */
  private readonly extra: ReadonlyArray<Bits | undefined>;
  private readonly byId: Map<string, number>;
  private readonly introducers: number[][];

  constructor(args: {
    trees: string[];
    nodes: TupleNode[];
    changes: Change[];
    basis: number;
    failure: number;
    words: number;
    sets: Uint32Array;
    nodeChanges: Int32Array;
    firstParent: Int32Array;
    extra: Array<Bits | undefined>;
  }) {
    this.trees = args.trees;
    this.nodes = args.nodes;
    this.changes = args.changes;
    this.basis = args.basis;
    this.failure = args.failure;
    this.words = args.words;
    this.views = args.nodes.map((n) => args.sets.subarray(n.index * args.words, (n.index + 1) * args.words));
    this.nodeChanges = args.nodeChanges;
    this.firstParent = args.firstParent;
    this.extra = args.extra;
    this.byId = new Map(args.nodes.map((n) => [n.id, n.index]));
    this.introducers = args.changes.map(() => []);
    for (const n of args.nodes) if (n.change !== undefined) this.introducers[n.change]!.push(n.index);
  }

  /** The changes contained in node I (a view; do not modify). */
  setOf(i: number): Bits {
    const b = this.views[i];
    if (!b) throw new RangeError(`no node ${i} in a graph of ${this.nodes.length}`);
    return b;
  }

  /** The node of a tuple (or tuple id), or undefined when the tuple is not in the graph. */
  find(ref: Tuple | string): number | undefined {
    const id = typeof ref === 'string' ? ref : tupleId(ref, this.trees);
    return this.byId.get(id);
  }

  /**
   * |setOf(n) ∩ K| for every node n, in time linear in the graph (walking first parents and
   * adding what each merge brings) rather than a scan of every node's set.
   */
  countInside(K: Bits): Int32Array {
    const n = this.changes.length;
    const perChange = new Int32Array(n);
    for (let c = 0; c < n; c++) {
      const fp = this.firstParent[c]!;
      let w = fp >= 0 ? perChange[fp]! : 0;
      if ((K[c >>> 5]! & (1 << (c & 31))) !== 0) w++;
      const x = this.extra[c];
      if (x) w += andCount(x, K);
      perChange[c] = w;
    }
    const T = this.trees.length;
    const out = new Int32Array(this.nodes.length);
    for (let i = 0; i < this.nodes.length; i++) {
      let w = 0;
      for (let t = 0; t < T; t++) {
        const c = this.nodeChanges[i * T + t]!;
        if (c >= 0) w += perChange[c]!;
      }
      out[i] = w;
    }
    return out;
  }

  /** The nodes that add CHANGE over their parents (one per way the other trees can stand beside it). */
  introducing(change: number): readonly number[] {
    return this.introducers[change] ?? [];
  }

  node(i: number): TupleNode {
    const n = this.nodes[i];
    if (!n) throw new RangeError(`no node ${i} in a graph of ${this.nodes.length}`);
    return n;
  }

  /** Number of edges (for reports and tests). */
  get edgeCount(): number {
    let e = 0;
    for (const n of this.nodes) e += n.parents.length;
    return e;
  }
}

interface TreeWork {
  tree: string;
  basis: string;
  failure: string;
  /** Local commits in topological order (parents first). */
  commits: CommitInfo[];
  local: Map<string, number>;
  /** Per local commit: local indices of range parents; -1 = the basis. */
  parents: number[][];
  /** Per local commit: its global change index. */
  change: number[];
}

function prepareTree(r: TreeRange): TreeWork {
  if (!TREE_NAME.test(r.tree)) {
    throw new BisectInputError(`tree name ${JSON.stringify(r.tree)} must be letters, digits, _ . + or -`);
  }
  for (const [what, rev] of [
    ['basis', r.basis],
    ['failure', r.failure],
  ] as const) {
    if (!SHA.test(rev))
      throw new BisectInputError(`tree ${r.tree}: ${what} ${JSON.stringify(rev)} is not a full hash`);
  }
  const byHash = new Map<string, CommitInfo>();
  for (const c of r.commits) {
    if (!SHA.test(c.sha))
      throw new BisectInputError(`tree ${r.tree}: commit ${JSON.stringify(c.sha)} is not a hash`);
    if (byHash.has(c.sha)) throw new BisectInputError(`tree ${r.tree}: commit ${c.sha} listed twice`);
    byHash.set(c.sha, c);
  }
  if (r.basis === r.failure) {
    if (byHash.size > 0)
      throw new BisectInputError(`tree ${r.tree}: basis equals failure but ${byHash.size} commits given`);
  } else if (byHash.size === 0) {
    throw new BisectionNotPossible(
      `in tree ${r.tree} the failure's revision ${r.failure.slice(0, 12)} is contained in the basis ${r.basis.slice(0, 12)}`,
    );
  } else if (!byHash.has(r.failure)) {
    throw new BisectInputError(
      `tree ${r.tree}: the failure ${r.failure} is not among the commits of the range`,
    );
  }
  if (byHash.has(r.basis))
    throw new BisectInputError(`tree ${r.tree}: the basis ${r.basis} is inside its own range`);

  // Topological order, parents first, by an explicit-stack DFS from the failure (long histories
  // would overflow a recursive one).
  const order: CommitInfo[] = [];
  const state = new Map<string, 1 | 2>();
  if (byHash.size > 0) {
    const stack: Array<{ c: CommitInfo; next: number }> = [{ c: byHash.get(r.failure)!, next: 0 }];
    state.set(r.failure, 1);
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (top.next < top.c.parents.length) {
        const p = byHash.get(top.c.parents[top.next++]!);
        if (p && !state.has(p.sha)) {
          state.set(p.sha, 1);
          stack.push({ c: p, next: 0 });
        } else if (p && state.get(p.sha) === 1) {
          throw new BisectInputError(`tree ${r.tree}: the commits given form a cycle at ${p.sha}`);
        }
      } else {
        state.set(top.c.sha, 2);
        order.push(top.c);
        stack.pop();
      }
    }
    if (order.length !== byHash.size) {
      throw new BisectInputError(
        `tree ${r.tree}: ${byHash.size - order.length} of the commits given are not ancestors of the failure`,
      );
    }
  }
  const local = new Map(order.map((c, i) => [c.sha, i]));
  const parents = order.map((c) => {
    const ps: number[] = [];
    for (const p of c.parents) {
      const i = local.get(p) ?? -1;
      if (!ps.includes(i)) ps.push(i);
    }
    if (ps.length === 0) ps.push(-1); // a root commit inside the range: its "parent" is the basis
    return ps;
  });
  return { tree: r.tree, basis: r.basis, failure: r.failure, commits: order, local, parents, change: [] };
}

/** Builds the tuple graph from the trees' ranges. Pure: no git, no I/O. */
export function buildTupleGraph(ranges: readonly TreeRange[], opts: BuildOptions = {}): TupleGraph {
  const maxNodes = opts.maxNodes ?? 250_000;
  if (ranges.length === 0) throw new BisectInputError('no trees given');
  const seen = new Set<string>();
  for (const r of ranges) {
    if (seen.has(r.tree)) throw new BisectInputError(`tree ${r.tree} given twice`);
    seen.add(r.tree);
  }
  const works = [...ranges].sort((a, b) => (a.tree < b.tree ? -1 : a.tree > b.tree ? 1 : 0)).map(prepareTree);
  const trees = works.map((w) => w.tree);
  const T = works.length;

  const changes: Change[] = [];
  for (const w of works) {
    for (const c of w.commits) {
      w.change.push(changes.length);
      changes.push({ index: changes.length, tree: w.tree, sha: c.sha, time: c.time, gitParents: c.parents });
    }
  }
  if (changes.length === 0)
    throw new BisectionNotPossible('the basis and the failure test the same revisions');
  const words = wordsFor(changes.length);

  // Per tree and local commit: the range commits it contains.
  const anc: Bits[][] = works.map((w) => {
    const sets: Bits[] = [];
    w.commits.forEach((_, i) => {
      const s = emptyBits(words);
      setBit(s, w.change[i]!);
      for (const p of w.parents[i]!) if (p >= 0) orInto(s, sets[p]!);
      sets.push(s);
    });
    return sets;
  });

  // For countInside: each change's first parent, and what a merge adds beyond it.
  const firstParent = new Int32Array(changes.length).fill(-1);
  const extra: Array<Bits | undefined> = new Array(changes.length).fill(undefined);
  works.forEach((w, t) => {
    w.commits.forEach((_, i) => {
      const c = w.change[i]!;
      const fp = w.parents[i]![0]!;
      if (fp >= 0) firstParent[c] = w.change[fp]!;
      const x = anc[t]![i]!.slice();
      x[c >>> 5]! &= ~(1 << (c & 31));
      if (fp >= 0) andNotInto(x, anc[t]![fp]!);
      if (!isEmpty(x)) extra[c] = x;
    });
  });

  // Walk down from the failure. A state is one local commit index per tree (-1 = the basis).
  const states: Int32Array[] = [];
  const stateParents: number[][] = [];
  const stateTree: number[] = [];
  const index = new Map<string, number>();
  const add = (s: Int32Array): number => {
    const key = s.join(',');
    let i = index.get(key);
    if (i === undefined) {
      i = states.length;
      if (i >= maxNodes) {
        throw new BisectionNotPossible(`the graph of revision tuples has more than ${maxNodes} nodes`);
      }
      index.set(key, i);
      states.push(s);
      stateParents.push([]);
      stateTree.push(-1);
    }
    return i;
  };
  const top = Int32Array.from(works, (w) => (w.commits.length > 0 ? w.local.get(w.failure)! : -1));
  add(top);
  for (let i = 0; i < states.length; i++) {
    const s = states[i]!;
    let best = -1;
    let bestTime = -Infinity;
    for (let t = 0; t < T; t++) {
      const c = s[t]!;
      if (c < 0) continue;
      const time = works[t]!.commits[c]!.time;
      if (time > bestTime) {
        best = t;
        bestTime = time;
      }
    }
    if (best < 0) continue; // the basis
    stateTree[i] = best;
    for (const p of works[best]!.parents[s[best]!]!) {
      const ps = s.slice();
      ps[best] = p;
      stateParents[i]!.push(add(ps));
    }
  }
  if (states.length * words > 100_000_000) {
    throw new BisectionNotPossible(
      `the graph (${states.length} nodes × ${changes.length} changes) is too large`,
    );
  }

  // Topological order, basis first: Kahn's algorithm over "parent before child".
  const n = states.length;
  const children: number[][] = states.map(() => []);
  for (let i = 0; i < n; i++) for (const p of stateParents[i]!) children[p]!.push(i);
  const pending = Int32Array.from(stateParents, (ps) => ps.length);
  const queue: number[] = [];
  for (let i = 0; i < n; i++) if (pending[i] === 0) queue.push(i);
  const order: number[] = [];
  for (let q = 0; q < queue.length; q++) {
    const i = queue[q]!;
    order.push(i);
    for (const c of children[i]!) if (--pending[c]! === 0) queue.push(c);
  }
  const basisKey = works.map(() => -1).join(',');
  const basisState = index.get(basisKey);
  if (order.length !== n || basisState === undefined || order[0] !== basisState) {
    throw new BisectInputError('internal: the tuple graph is not a DAG rooted at the basis');
  }
  const newIndex = new Int32Array(n);
  order.forEach((old, pos) => {
    newIndex[old] = pos;
  });

  const sets = new Uint32Array(n * words);
  const nodeChanges = new Int32Array(n * T).fill(-1);
  const nodes: TupleNode[] = order.map((old, pos) => {
    const s = states[old]!;
    const tuple: Record<string, string> = {};
    for (let t = 0; t < T; t++) {
      const w = works[t]!;
      const c = s[t]!;
      tuple[w.tree] = c < 0 ? w.basis : w.commits[c]!.sha;
      if (c >= 0) {
        orInto(sets.subarray(pos * words, (pos + 1) * words), anc[t]![c]!);
        nodeChanges[pos * T + t] = w.change[c]!;
      }
    }
    const et = stateTree[old]!;
    const node: TupleNode = {
      index: pos,
      id: tupleId(tuple, trees),
      tuple: Object.freeze(tuple),
      parents: stateParents[old]!.map((p) => newIndex[p]!),
      children: [],
    };
    if (et >= 0) {
      node.tree = trees[et]!;
      node.change = works[et]!.change[s[et]!]!;
    }
    return node;
  });
  for (const nd of nodes) for (const p of nd.parents) nodes[p]!.children.push(nd.index);
  return new TupleGraph({
    trees,
    nodes,
    changes,
    basis: 0,
    failure: newIndex[0]!,
    words,
    sets,
    nodeChanges,
    firstParent,
    extra,
  });
}

export interface TreeSpec {
  tree: string;
  /** Path of a local clone. */
  repo: string;
  basis: string;
  failure: string;
}

/** Reads every tree's range with git (in parallel) and builds the graph. */
export async function loadTupleGraph(
  specs: readonly TreeSpec[],
  opts: BuildOptions & RangeOptions = {},
): Promise<TupleGraph> {
  const ranges = await Promise.all(
    specs.map(async (s): Promise<TreeRange> => {
      const [basis, failure] = await Promise.all([
        resolveCommit(s.repo, s.basis),
        resolveCommit(s.repo, s.failure),
      ]);
      const commits = basis === failure ? [] : await commitsBetween(s.repo, basis, failure, opts);
      if (basis !== failure && commits.length === 0 && opts.ancestryPath) {
        throw new BisectionNotPossible(
          `in tree ${s.tree} the failure ${failure.slice(0, 12)} does not descend from the basis ${basis.slice(0, 12)}`,
        );
      }
      return { tree: s.tree, basis, failure, commits };
    }),
  );
  return buildTupleGraph(ranges, opts);
}
