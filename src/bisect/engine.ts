/**
 * The bisection engine: a pure function from the tuple graph and the results seen so far to the
 * next tuples to test, or to the verdict (OSSTEST-BEHAVIOUR §5). No clock, no I/O, no state of its
 * own: everything it knows is in the observations, so a bisection can be rebuilt from the database
 * (or from its log) at any point and gives the same answer.
 *
 * How it reasons. A test of a node says whether the culprit change is among the changes that node
 * contains (graph.ts). Each node's results are summed up as p passes and f fails, d = p − f: the
 * node votes, with weight |d|, that the culprit is outside it (d > 0) or inside it (d < 0). The
 * cost of a change is the weight of the votes it contradicts — the number of results that must
 * have been spurious were it the culprit — and the candidates are the changes of least cost
 * (the most likely culprits if every result is wrong with the same small probability). With
 * consistent results that is simply "in every failing node, in no passing one". Testing goes:
 *  1. Reproduction: basis pass and failure fail, each seen twice, alternating in time
 *     (pass < fail < pass < fail), and each settled (basis d ≥ 2, failure d ≤ −2).
 *  2. If even the best candidates contradict some votes, those nodes are retested, weakest vote
 *     first ("retest conflicted node"). The original stops at the first conflict; here retests go
 *     on until the votes agree, within maxTestsPerNode per node. A node that reaches the bound is
 *     reported as inconsistent and its vote stands as it is.
 *  3. Nodes with mixed results and no clear majority (|d| < 2) that would split the candidates are
 *     retested.
 *  4. With more than one candidate: bisect. The k free hosts get the k nodes that, greedily,
 *     minimise the expected number of candidates left (the sum of squares of the groups the
 *     results could leave, then the largest group). On a chain this is "split the longest
 *     untested chain into k+1 parts"; where merges or a second tree give nodes that do not
 *     contain one another, k tests can cut the candidates into more than k+1 groups, and the
 *     greedy takes that. Nodes that were blocked or broken are looked through: the next best
 *     node is taken instead.
 *  5. With one candidate change left: confirm it at a node that adds just that change. Three
 *     alternations in time (a pass at a parent, then a fail at the node, three times), every
 *     parent at d ≥ 3, and the node at d ≤ −5: four fails beyond the one that drew suspicion onto
 *     it, because that result was selected, not independent. A node that failed once by chance is
 *     then blamed only if it fails four more times without passing (10⁻⁴ at a 10% flake rate).
 *
 * Confidence. ε̂ = (m + 1) / (n + 10) estimates the rate of spurious results: n results in all,
 * m the minority results at nodes that showed both (each one a result that must have been wrong),
 * with a prior of one spurious result in ten. A node's verdict from margin d is wrong with odds
 * (ε̂ / (1 − ε̂))^|d|, so P(right) = 1 / (1 + (ε̂/(1−ε̂))^|d|). A verdict's confidence is the product
 * of P(right) over the nodes it rests on: for "found", the culprit node and its parents (their
 * results are what shows that this change turns pass into fail); for "not reproducible", the node
 * that contradicted; for "not pinned down", every node that voted.
 */
import {
  andCount,
  andInto,
  andNotInto,
  type Bits,
  bitsToIndices,
  emptyBits,
  isEmpty,
  popcount,
} from './bitset.js';
import { BisectInputError, type Tuple, type TupleGraph } from './graph.js';

export type TestResult = 'pass' | 'fail' | 'blocked' | 'broken';
export const TEST_RESULTS: readonly TestResult[] = ['pass', 'fail', 'blocked', 'broken'];

export interface Observation {
  /** The tuple tested, or its id (graph.tupleId). */
  tuple: Tuple | string;
  result: TestResult;
  /** Monotonic time or sequence number: when the result was produced. */
  at: number;
  /** The flight that produced it, when there is one. */
  flight?: string;
}

export type TestReason =
  | 'reproduce-basis'
  | 'reproduce-failure'
  | 'bisect'
  | 'retest-conflict'
  | 'confirm-culprit';
export type Phase = 'reproduce' | 'bisect' | 'confirm';

export interface PlannedTest {
  node: number;
  id: string;
  tuple: Tuple;
  reason: TestReason;
  /** One line saying why this node, for logs. */
  why: string;
}

export type OutcomeCode = 4 | 8 | 12 | 16 | 32;

export const OUTCOME_WORDING: Readonly<Record<0 | OutcomeCode, string>> = {
  0: 'Testing a revision',
  4: 'Found and reproduced problem changeset',
  8: 'Bisection failed to pin down the problem changeset',
  12: 'Found problem changeset, but results elsewhere are inconsistent',
  16: 'Failure is not reproducible',
  32: 'Bisection is not possible',
};

export interface Culprit {
  tree: string;
  /** The commit that introduced the failure. */
  rev: string;
  /** The revision of TREE in the (first) passing parent tuple: "not present at". */
  parentRev: string;
  /** The revisions of TREE in all the parent tuples (more than one when the culprit is a merge). */
  parentRevs: string[];
  /** The culprit commit's own parents as git has them (parentRevs may show the basis instead). */
  gitParents: readonly string[];
  /** The tuple at which it was confirmed, and its parents. */
  node: string;
  parentNodes: string[];
}

export interface Outcome {
  code: OutcomeCode;
  wording: string;
  /** What led to it, in a sentence. */
  detail: string;
  /** 0..1, see the file comment. */
  confidence: number;
  culprit?: Culprit;
  /** For "not pinned down": the changes the culprit may still be. */
  candidates?: Array<{ tree: string; rev: string }>;
  /** Nodes set aside because their results stayed mixed at the retest bound. */
  inconsistent: string[];
  /** Nodes with mixed results that did not matter to the verdict. */
  conflicted: string[];
  /** The spurious-result rate estimated from the observations. */
  flakeEstimate: number;
  /** Observations the verdict was computed from (all flights, including the original ones). */
  flights: number;
}

export type Decision =
  | { kind: 'test'; code: 0; phase: Phase; tests: PlannedTest[]; candidates: number; summary: string }
  | { kind: 'wait'; code: 0; phase: Phase; candidates: number; summary: string }
  | { kind: 'done'; code: OutcomeCode; outcome: Outcome };

export interface DecideOptions {
  /**
   * Equivalent hosts the bisection may use at once (default 1); tests under way occupy some of
   * them, so at most hosts − pending.length tests are planned.
   */
  hosts?: number;
  /** Tuples whose tests are under way: planned around, never planned twice. */
  pending?: ReadonlyArray<Tuple | string>;
  /** Attempts at one node before its mixed results are declared inconsistent (default 16). */
  maxTestsPerNode?: number;
  /** Give up ("not pinned down") after this many observations in all (default 150). */
  maxFlights?: number;
  /** What to do with an observation of a tuple not in the graph: 'error' (default) or 'ignore'. */
  unknownTuples?: 'error' | 'ignore';
}

const CONFIRM_ALTERNATIONS = 3;
const CULPRIT_MARGIN = 5;
const PARENT_MARGIN = 3;
const REPRO_ALTERNATIONS = 2;

interface Stats {
  p: number;
  f: number;
  blocked: number;
  broken: number;
  /** pass/fail results in time order: true = pass. */
  seq: Array<{ at: number; order: number; pass: boolean }>;
}

const attempts = (s: Stats | undefined): number => (s ? s.p + s.f + s.blocked + s.broken : 0);
const margin = (s: Stats | undefined): number => (s ? s.p - s.f : 0);

/** The engine's view of one call: observations indexed by node, and the helpers every phase uses. */
class View {
  readonly stats = new Map<number, Stats>();
  readonly pending: Set<number>;
  readonly hosts: number;
  readonly maxPerNode: number;
  readonly maxFlights: number;
  readonly flights: number;
  readonly epsilon: number;
  readonly set: (i: number) => Bits;

  constructor(
    readonly g: TupleGraph,
    observations: readonly Observation[],
    opts: DecideOptions,
  ) {
    this.hosts = Math.max(1, Math.floor(opts.hosts ?? 1));
    this.maxPerNode = Math.max(2, opts.maxTestsPerNode ?? 16);
    this.maxFlights = opts.maxFlights ?? 150;
    this.set = (i) => g.setOf(i);
    const sorted = observations
      .map((o, order) => ({ o, order }))
      .sort((a, b) => a.o.at - b.o.at || a.order - b.order);
    let counted = 0;
    for (const { o, order } of sorted) {
      if (!(TEST_RESULTS as readonly string[]).includes(o.result)) {
        throw new BisectInputError(
          `observation ${order}: result ${JSON.stringify(o.result)} is not one of ${TEST_RESULTS.join(', ')}`,
        );
      }
      if (typeof o.at !== 'number' || !Number.isFinite(o.at)) {
        throw new BisectInputError(
          `observation ${order}: time ${JSON.stringify(o.at)} is not a finite number`,
        );
      }
      const i = g.find(o.tuple);
      if (i === undefined) {
        if (opts.unknownTuples === 'ignore') continue;
        const id = typeof o.tuple === 'string' ? o.tuple : JSON.stringify(o.tuple);
        throw new BisectInputError(
          `observation ${order} (${o.flight ? `flight ${o.flight}` : `at ${o.at}`}): tuple ${id} is not between the basis and the failure`,
        );
      }
      counted++;
      let s = this.stats.get(i);
      if (!s) {
        s = { p: 0, f: 0, blocked: 0, broken: 0, seq: [] };
        this.stats.set(i, s);
      }
      if (o.result === 'pass' || o.result === 'fail') {
        const pass = o.result === 'pass';
        if (pass) s.p++;
        else s.f++;
        s.seq.push({ at: o.at, order, pass });
      } else if (o.result === 'blocked') s.blocked++;
      else s.broken++;
    }
    this.flights = counted;
    this.pending = new Set(
      (opts.pending ?? []).map((t) => {
        const i = g.find(t);
        if (i === undefined)
          throw new BisectInputError(
            `pending tuple ${typeof t === 'string' ? t : JSON.stringify(t)} is not in the graph`,
          );
        return i;
      }),
    );
    let n = 0;
    let m = 0;
    for (const s of this.stats.values()) {
      n += s.p + s.f;
      m += Math.min(s.p, s.f);
    }
    this.epsilon = (m + 1) / (n + 10);
  }

  st(i: number): Stats | undefined {
    return this.stats.get(i);
  }
  atBound(i: number): boolean {
    return attempts(this.stats.get(i)) >= this.maxPerNode;
  }
  /** Could not be tested (blocked, or broken twice) and nothing else is known. */
  untestable(i: number): boolean {
    const s = this.stats.get(i);
    return !!s && s.p + s.f === 0 && (s.blocked > 0 || s.broken >= 2 || attempts(s) >= this.maxPerNode);
  }
  /** P(the node's majority verdict is right) from its margin. */
  rightness(i: number): number {
    const r = this.epsilon / (1 - this.epsilon);
    return 1 / (1 + r ** Math.abs(margin(this.stats.get(i))));
  }
  id(i: number): string {
    return this.g.node(i).id;
  }
  short(i: number): string {
    const t = this.g.node(i).tuple;
    return this.g.trees.map((tr) => `${tr}=${(t[tr] ?? '').slice(0, 12)}`).join(',');
  }
  counts(i: number): string {
    const s = this.stats.get(i);
    if (!s) return 'untested';
    const parts = [`${s.p} pass`, `${s.f} fail`];
    if (s.blocked) parts.push(`${s.blocked} blocked`);
    if (s.broken) parts.push(`${s.broken} broken`);
    return parts.join(' / ');
  }
  test(i: number, reason: TestReason, why: string): PlannedTest {
    const n = this.g.node(i);
    return { node: i, id: n.id, tuple: n.tuple, reason, why };
  }
}

/** How many times PATTERN (cycled) is matched greedily as a subsequence of EVENTS, up to LIMIT steps. */
function matchAlternation<T>(
  events: readonly T[],
  isStep: ReadonlyArray<(e: T) => boolean>,
  limit: number,
): number {
  let k = 0;
  for (const e of events) {
    if (k >= limit) break;
    if (isStep[k % isStep.length]!(e)) k++;
  }
  return k;
}

function done(
  v: View,
  code: OutcomeCode,
  detail: string,
  confidence: number,
  extra: Partial<Outcome> = {},
): Decision {
  const conflicted: string[] = [];
  for (const [i, s] of v.stats) if (s.p > 0 && s.f > 0 && Math.abs(s.p - s.f) < 2) conflicted.push(v.id(i));
  const outcome: Outcome = {
    code,
    wording: OUTCOME_WORDING[code],
    detail,
    confidence: Math.max(0, Math.min(1, confidence)),
    inconsistent: [],
    conflicted,
    flakeEstimate: v.epsilon,
    flights: v.flights,
    ...extra,
  };
  return { kind: 'done', code, outcome };
}

function wait(phase: Phase, candidates: number, summary: string): Decision {
  return { kind: 'wait', code: 0, phase, candidates, summary };
}

function tests(phase: Phase, list: PlannedTest[], candidates: number, summary: string): Decision {
  return { kind: 'test', code: 0, phase, tests: list, candidates, summary };
}

/** Step 1: reproduction. Returns a decision while it is not yet complete, undefined once it is. */
function reproduce(v: View): Decision | undefined {
  const { basis, failure } = v.g;
  const bs = v.st(basis);
  const fs = v.st(failure);
  const total = v.g.changes.length;
  if (margin(bs) <= -2) {
    return done(v, 16, `the basis ${v.short(basis)} fails (${v.counts(basis)})`, v.rightness(basis));
  }
  if (margin(fs) >= 2) {
    return done(v, 16, `the failure ${v.short(failure)} passes (${v.counts(failure)})`, v.rightness(failure));
  }
  for (const [i, what] of [
    [basis, 'basis'],
    [failure, 'failure'],
  ] as const) {
    const s = v.st(i);
    const settled = i === basis ? margin(s) >= 2 : margin(s) <= -2;
    if (!settled && (v.atBound(i) || v.untestable(i))) {
      // Evidence leaning towards reproduction makes "not reproducible" less sure, and the reverse.
      const leansRight = i === basis ? margin(s) > 0 : margin(s) < 0;
      const conf = leansRight ? 1 - v.rightness(i) : v.rightness(i);
      return done(v, 16, `the ${what} ${v.short(i)} gave no clear result (${v.counts(i)})`, conf);
    }
  }
  const seqOf = (i: number) => (v.st(i)?.seq ?? []).map((e) => ({ ...e, node: i }));
  const merged = [...seqOf(basis), ...seqOf(failure)].sort((a, b) => a.at - b.at || a.order - b.order);
  const steps = [
    (e: { node: number; pass: boolean }) => e.node === basis && e.pass,
    (e: { node: number; pass: boolean }) => e.node === failure && !e.pass,
  ];
  const k = matchAlternation(merged, steps, 2 * REPRO_ALTERNATIONS);
  let next: number | undefined;
  let why = '';
  if (k < 2 * REPRO_ALTERNATIONS) {
    next = k % 2 === 0 ? basis : failure;
    why = `${k % 2 === 0 ? 'basis pass' : 'failure fail'} needed (${k} of ${2 * REPRO_ALTERNATIONS} alternations seen)`;
  } else if (margin(bs) < 2) {
    next = basis;
    why = `basis results mixed (${v.counts(basis)})`;
  } else if (margin(fs) > -2) {
    next = failure;
    why = `failure results mixed (${v.counts(failure)})`;
  }
  if (next === undefined) return undefined;
  if (v.pending.size > 0) return wait('reproduce', total, 'waiting for tests under way');
  if (v.flights >= v.maxFlights) {
    return done(v, 16, `the flight budget (${v.maxFlights}) ran out before the failure was reproduced`, 0.5);
  }
  const reason: TestReason = next === basis ? 'reproduce-basis' : 'reproduce-failure';
  return tests('reproduce', [v.test(next, reason, why)], total, why);
}

/** Nodes with results, with their vote d = p − f. */
function voters(v: View): Array<{ node: number; d: number }> {
  const out: Array<{ node: number; d: number }> = [];
  for (const [node, s] of v.stats) if (s.p !== s.f) out.push({ node, d: s.p - s.f });
  return out;
}

/** The changes of least cost (see the file comment), and that cost. */
function likeliest(v: View, votes: ReadonlyArray<{ node: number; d: number }>): { K: Bits; cost: number } {
  const n = v.g.changes.length;
  const cost = new Float64Array(n);
  for (const { node, d } of votes) {
    const s = v.set(node);
    for (let c = 0; c < n; c++) {
      const inside = (s[c >>> 5]! & (1 << (c & 31))) !== 0;
      if (d > 0 ? inside : !inside) cost[c]! += Math.abs(d);
    }
  }
  let min = Infinity;
  for (let c = 0; c < n; c++) if (cost[c]! < min) min = cost[c]!;
  const K = emptyBits(v.g.words);
  for (let c = 0; c < n; c++) if (cost[c] === min) K[c >>> 5]! |= 1 << (c & 31);
  return { K, cost: min };
}

/** Whether the vote of NODE contradicts some candidate in K. */
function disagrees(v: View, node: number, d: number, K: Bits, size: number): boolean {
  const inside = andCount(v.set(node), K);
  return d > 0 ? inside > 0 : inside < size;
}

function weakestFirst(v: View, nodes: number[]): number[] {
  return [...nodes].sort(
    (x, y) =>
      Math.abs(margin(v.st(x))) - Math.abs(margin(v.st(y))) ||
      attempts(v.st(x)) - attempts(v.st(y)) ||
      // A spurious failure is the usual flake in a test lab; between equals, doubt the failure.
      margin(v.st(x)) - margin(v.st(y)) ||
      x - y,
  );
}

const mixed = (s: Stats | undefined): boolean => !!s && s.p > 0 && s.f > 0 && Math.abs(s.p - s.f) < 2;

function splitCells(cells: readonly Bits[], s: Bits): Bits[] {
  const out: Bits[] = [];
  for (const c of cells) {
    const inside = c.slice();
    andInto(inside, s);
    const outside = c.slice();
    andNotInto(outside, s);
    if (!isEmpty(inside)) out.push(inside);
    if (!isEmpty(outside)) out.push(outside);
  }
  return out;
}

/**
 * Choice of up to SLOTS nodes that split the candidate set K most evenly (see step 4): greedy,
 * then improved one node at a time while that lowers the expected number of candidates left.
 */
function chooseSplits(v: View, K: Bits, slots: number): number[] {
  const g = v.g;
  let base: Bits[] = [K.slice()];
  for (const p of v.pending) base = splitCells(base, v.set(p));
  const size = popcount(K);
  // Nodes with the same candidates inside them are the same test; keep the first of each (only
  // worth the hashing when several nodes are to be chosen).
  const candidates: number[] = [];
  const seen = new Map<number, number[]>();
  const inside = g.countInside(K);
  const dedupe = slots > 1;
  const sameInK = (a: Bits, b: Bits) => {
    for (let j = 0; j < K.length; j++) if (((a[j]! ^ b[j]!) & K[j]!) !== 0) return false;
    return true;
  };
  for (const n of g.nodes) {
    const i = n.index;
    const w = inside[i]!;
    if (w === 0 || w === size || v.pending.has(i) || v.atBound(i)) continue;
    const s = v.st(i);
    if (s && s.p + s.f === 0 && s.blocked + s.broken > 0) continue; // looked through
    if (dedupe) {
      const set = v.set(i);
      let key = 0x811c9dc5;
      for (let j = 0; j < K.length; j++) key = Math.imul(key ^ (set[j]! & K[j]!), 0x01000193);
      const same = seen.get(key);
      if (same?.some((o) => sameInK(v.set(o), set))) continue;
      if (same) same.push(i);
      else seen.set(key, [i]);
    }
    candidates.push(i);
  }
  const cellsOf = (nodes: readonly number[]) => nodes.reduce((cs, i) => splitCells(cs, v.set(i)), base);
  const sqOf = (cs: readonly Bits[]) => cs.reduce((a, c) => a + popcount(c) ** 2, 0);
  /** The candidate that, added to CELLS, gives the lowest (sum of squares, largest group). */
  const bestAgainst = (cells: readonly Bits[], avoid: readonly number[]) => {
    const sizes = cells.map(popcount);
    const whole = cells.length === 1 && sizes[0] === size; // the one cell is K itself
    const counts = whole ? [inside] : cells.map((c) => g.countInside(c));
    let best = -1;
    let bestSq = Infinity;
    let bestMax = Infinity;
    for (const i of candidates) {
      if (avoid.includes(i)) continue;
      let max = 0;
      let sq = 0;
      for (let c = 0; c < cells.length; c++) {
        const a = counts[c]![i]!;
        const rest = sizes[c]! - a;
        if (a > max) max = a;
        if (rest > max) max = rest;
        sq += a * a + rest * rest;
      }
      if (sq < bestSq || (sq === bestSq && max < bestMax)) {
        best = i;
        bestSq = sq;
        bestMax = max;
      }
    }
    return { node: best, sq: bestSq };
  };
  const chosen: number[] = [];
  let cells = base;
  let sq = sqOf(cells);
  for (let slot = 0; slot < slots; slot++) {
    const pick = bestAgainst(cells, chosen);
    if (pick.node < 0 || pick.sq >= sq) break;
    chosen.push(pick.node);
    cells = splitCells(cells, v.set(pick.node));
    sq = pick.sq;
  }
  for (let pass = 0; pass < 3 && chosen.length > 1; pass++) {
    let improved = false;
    for (let j = 0; j < chosen.length; j++) {
      const others = chosen.filter((_, x) => x !== j);
      const pick = bestAgainst(cellsOf(others), chosen);
      if (pick.node >= 0 && pick.sq < sq) {
        chosen[j] = pick.node;
        sq = pick.sq;
        improved = true;
      }
    }
    if (!improved) break;
  }
  return chosen;
}

/** Step 5: confirm the one remaining candidate change. */
function confirm(v: View, change: number, inconsistent: string[]): Decision {
  const g = v.g;
  const ch = g.changes[change]!;
  const label = `${ch.tree} ${ch.sha.slice(0, 12)}`;
  const candidates = [{ tree: ch.tree, rev: ch.sha }];
  // A node that adds just this change, whose parents and itself can still be tested (or need not be).
  const testable = (i: number) => !v.untestable(i);
  const fresh = (i: number) => !v.atBound(i);
  const options = g.introducing(change).filter((i) => testable(i) && g.node(i).parents.every(testable));
  if (options.length === 0) {
    return done(
      v,
      8,
      `only change ${label} is left, but no tuple that adds it alone could be tested`,
      votedConfidence(v),
      {
        candidates,
        inconsistent,
      },
    );
  }
  const evidence = (i: number) =>
    (v.st(i)?.f ?? 0) + g.node(i).parents.reduce((a, p) => a + (v.st(p)?.p ?? 0), 0);
  const rank = (i: number) => (fresh(i) && g.node(i).parents.every(fresh) ? 1_000_000 : 0) + evidence(i);
  const node = options.reduce((best, i) => (rank(i) > rank(best) ? i : best), options[0]!);
  const parents = g.node(node).parents;
  const summary = (why: string) => `confirm ${label}: ${why}`;
  const pick = (i: number, reason: TestReason, why: string): Decision => {
    if (v.pending.size > 0) return wait('confirm', 1, summary('waiting for tests under way'));
    if (v.atBound(i)) {
      return done(
        v,
        8,
        `change ${label} is the only candidate, but ${v.short(i)} reached the retest bound (${v.counts(i)})`,
        votedConfidence(v),
        { candidates, inconsistent },
      );
    }
    if (v.flights >= v.maxFlights) {
      return done(
        v,
        8,
        `the flight budget (${v.maxFlights}) ran out while confirming ${label}`,
        votedConfidence(v),
        {
          candidates,
          inconsistent,
        },
      );
    }
    return tests('confirm', [v.test(i, reason, why)], 1, summary(why));
  };
  for (const p of parents) {
    if (mixed(v.st(p)))
      return pick(p, 'retest-conflict', `parent ${v.short(p)} has mixed results (${v.counts(p)})`);
  }
  if (mixed(v.st(node)))
    return pick(node, 'retest-conflict', `culprit node has mixed results (${v.counts(node)})`);
  const parentSet = new Set(parents);
  const merged: Array<{ node: number; pass: boolean; at: number; order: number }> = [];
  for (const i of [node, ...parents]) for (const e of v.st(i)?.seq ?? []) merged.push({ ...e, node: i });
  merged.sort((x, y) => x.at - y.at || x.order - y.order);
  const k = matchAlternation(
    merged,
    [(e) => parentSet.has(e.node) && e.pass, (e) => e.node === node && !e.pass],
    2 * CONFIRM_ALTERNATIONS,
  );
  const weakestParent = () =>
    [...parents].sort(
      (x, y) => (v.st(x)?.p ?? 0) - (v.st(y)?.p ?? 0) || margin(v.st(x)) - margin(v.st(y)) || x - y,
    )[0]!;
  const seen = `${Math.floor(k / 2)} of ${CONFIRM_ALTERNATIONS} alternations`;
  if (k < 2 * CONFIRM_ALTERNATIONS) {
    if (k % 2 === 0) return pick(weakestParent(), 'confirm-culprit', `parent pass needed (${seen})`);
    return pick(node, 'confirm-culprit', `culprit fail needed (${seen})`);
  }
  if (margin(v.st(node)) > -CULPRIT_MARGIN) {
    return pick(
      node,
      'confirm-culprit',
      `culprit needs fails ahead by ${CULPRIT_MARGIN} (${v.counts(node)})`,
    );
  }
  const lowParent = parents
    .filter((p) => margin(v.st(p)) < PARENT_MARGIN)
    .sort((x, y) => margin(v.st(x)) - margin(v.st(y)) || x - y)[0];
  if (lowParent !== undefined) {
    return pick(
      lowParent,
      'confirm-culprit',
      `parent needs passes ahead by ${PARENT_MARGIN} (${v.counts(lowParent)})`,
    );
  }
  const gn = g.node(node);
  const parentRevs = parents.map((p) => g.node(p).tuple[ch.tree]!);
  const confidence = [node, ...parents].reduce((a, i) => a * v.rightness(i), 1);
  const culprit: Culprit = {
    tree: ch.tree,
    rev: ch.sha,
    parentRev: parentRevs[0]!,
    parentRevs,
    gitParents: ch.gitParents,
    node: gn.id,
    parentNodes: parents.map((p) => v.id(p)),
  };
  const detail =
    `bug introduced in ${ch.tree} at ${ch.sha.slice(0, 12)}, not present at ${parentRevs.map((r) => r.slice(0, 12)).join(' / ')}` +
    ` (culprit ${v.counts(node)}; parent ${parents.map((p) => v.counts(p)).join('; ')})`;
  if (inconsistent.length > 0) {
    return done(v, 12, `${detail}; ${inconsistent.length} node(s) stayed inconsistent`, confidence, {
      culprit,
      inconsistent,
    });
  }
  return done(v, 4, detail, confidence, { culprit });
}

/** The chance that every vote is right. */
function votedConfidence(v: View): number {
  return voters(v).reduce((a, { node }) => a * v.rightness(node), 1);
}

/**
 * The next step of a bisection: the tuples to test now, a wait (tests under way must finish
 * first), or the verdict. Observations may come in any order; `at` orders them.
 */
export function decide(
  graph: TupleGraph,
  observations: readonly Observation[],
  opts: DecideOptions = {},
): Decision {
  const v = new View(graph, observations, opts);
  const repro = reproduce(v);
  if (repro) return repro;

  const slots = v.hosts - v.pending.size;
  const total = graph.changes.length;
  const votes = voters(v);
  const { K, cost } = likeliest(v, votes);
  const size = popcount(K);
  const inconsistent = new Set<string>();
  for (const [i, s] of v.stats) if (mixed(s) && v.atBound(i)) inconsistent.add(v.id(i));
  const candidates = () =>
    bitsToIndices(K).map((c) => ({ tree: graph.changes[c]!.tree, rev: graph.changes[c]!.sha }));
  const budget = (what: string): Decision | undefined =>
    v.flights >= v.maxFlights
      ? done(v, 8, `the flight budget (${v.maxFlights}) ran out ${what}`, votedConfidence(v), {
          inconsistent: [...inconsistent],
          candidates: candidates(),
        })
      : undefined;

  // Step 2: votes that even the likeliest candidates contradict.
  if (cost > 0) {
    const against = votes.filter(({ node, d }) => disagrees(v, node, d, K, size)).map(({ node }) => node);
    const retestable = weakestFirst(
      v,
      against.filter((i) => !v.atBound(i)),
    );
    if (retestable.length > 0) {
      const free = retestable.filter((i) => !v.pending.has(i));
      if (slots <= 0 || free.length === 0)
        return wait('bisect', size, 'contradicting results: waiting for retests under way');
      const out = budget('with contradicting results');
      if (out) return out;
      const list = free
        .slice(0, slots)
        .map((i) =>
          v.test(i, 'retest-conflict', `result contradicts the likeliest culprits (${v.counts(i)})`),
        );
      return tests(
        'bisect',
        list,
        size,
        `${size} likeliest candidate(s) contradict ${cost} result(s): retesting ${list.length}`,
      );
    }
    for (const i of against) inconsistent.add(v.id(i));
  }

  // Step 3: nodes with mixed results and no majority that would split the candidates.
  const relevant: number[] = [];
  for (const [i, s] of v.stats) {
    if (!mixed(s) || v.atBound(i)) continue;
    const w = andCount(v.set(i), K);
    if (w > 0 && w < size) relevant.push(i);
  }
  if (relevant.length > 0) {
    const free = weakestFirst(v, relevant).filter((i) => !v.pending.has(i));
    if (slots <= 0 || free.length === 0)
      return wait('bisect', size, 'waiting for retests of conflicted nodes');
    const out = budget(`with ${size} candidate changes left`);
    if (out) return out;
    const list = free
      .slice(0, slots)
      .map((i) => v.test(i, 'retest-conflict', `mixed results (${v.counts(i)})`));
    return tests(
      'bisect',
      list,
      size,
      `${size} candidate changes; retesting ${list.length} conflicted node(s)`,
    );
  }

  // Step 5 (one candidate left).
  if (size === 1) return confirm(v, bitsToIndices(K)[0]!, [...inconsistent]);

  // Step 4: bisect.
  const out = budget(`with ${size} candidate changes left`);
  if (out) return out;
  const chosen = slots > 0 ? chooseSplits(v, K, slots) : [];
  if (chosen.length === 0) {
    if (v.pending.size > 0)
      return wait('bisect', size, `${size} candidate changes: waiting for tests under way`);
    return done(
      v,
      8,
      `${size} candidate changes are left and every tuple that would tell them apart was blocked, broken or inconsistent`,
      votedConfidence(v),
      { inconsistent: [...inconsistent], candidates: candidates() },
    );
  }
  const list = chosen.map((i) =>
    v.test(i, 'bisect', `contains ${andCount(v.set(i), K)} of ${size} candidate changes`),
  );
  return tests('bisect', list, size, `${size} of ${total} changes are candidates; testing ${list.length}`);
}

/** The verdict for a graph that could not be built (BisectionNotPossible). */
export function notPossible(reason: string): Outcome {
  return {
    code: 32,
    wording: OUTCOME_WORDING[32],
    detail: reason,
    confidence: 1,
    inconsistent: [],
    conflicted: [],
    flakeEstimate: 0,
    flights: 0,
  };
}
