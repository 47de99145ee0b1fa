/**
 * A simulated executor for the bisection engine: it answers each planned test from a known
 * culprit and a flake rate, and drives the real engine to its verdict, round by round (a round is
 * one batch of tests started together on the free hosts). For tests and the bench; a rehearsal
 * of a bisection without a lab.
 *
 * The flake model: a test of a tuple fails if the tuple contains the culprit, and otherwise fails
 * anyway with probability `flake` (one draw of a seeded PRNG per test, in the order the tests are
 * started, so the same seed gives the same stream of draws to any bisector).
 */
import {
  type DecideOptions,
  type Decision,
  decide,
  type Observation,
  type Outcome,
  type Phase,
  type TestReason,
} from './engine.js';
import type { TupleGraph } from './graph.js';
import type { LogEvent } from './log.js';

/** mulberry32: small, fast, and good enough to draw flakes from; same seed, same stream. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SimulateOptions extends Omit<DecideOptions, 'pending'> {
  graph: TupleGraph;
  /** Whether the tuple at a node really contains the culprit. */
  fails: (node: number) => boolean;
  /** Probability that any test fails spuriously. */
  flake: number;
  seed: number;
  /** Where the bisection starts; default: the basis passed at 0 and the failure failed at 1. */
  initial?: Observation[];
  /** Stop after this many rounds even without a verdict (a guard; default 1000). */
  maxRounds?: number;
}

export interface SimulateResult {
  outcome: Outcome;
  /** Tests the bisection started (the initial observations are not counted). */
  flights: number;
  byReason: Record<TestReason, number>;
  rounds: Record<Phase | 'total', number>;
  observations: Observation[];
  events: LogEvent[];
}

export function simulate(opts: SimulateOptions): SimulateResult {
  const { graph, fails, flake } = opts;
  const draw = prng(opts.seed);
  const observations: Observation[] = opts.initial
    ? [...opts.initial]
    : [
        { tuple: graph.node(graph.basis).id, result: 'pass', at: 0, flight: 'basis' },
        { tuple: graph.node(graph.failure).id, result: 'fail', at: 1, flight: 'failure' },
      ];
  const events: LogEvent[] = observations.map((obs) => ({ type: 'observe', obs }));
  let clock = Math.max(...observations.map((o) => o.at), 0);
  const byReason: Record<TestReason, number> = {
    'reproduce-basis': 0,
    'reproduce-failure': 0,
    bisect: 0,
    'retest-conflict': 0,
    'confirm-culprit': 0,
  };
  const rounds: Record<Phase | 'total', number> = { reproduce: 0, bisect: 0, confirm: 0, total: 0 };
  const maxRounds = opts.maxRounds ?? 1000;
  let flights = 0;
  for (;;) {
    const d: Decision = decide(graph, observations, opts);
    events.push({ type: 'decide', decision: d });
    if (d.kind === 'done') return { outcome: d.outcome, flights, byReason, rounds, observations, events };
    if (d.kind === 'wait') throw new Error('simulate: the engine waits with nothing under way');
    if (rounds.total >= maxRounds) throw new Error(`simulate: no verdict after ${maxRounds} rounds`);
    rounds.total++;
    rounds[d.phase]++;
    for (const t of d.tests) {
      const spurious = draw() < flake;
      const obs: Observation = {
        tuple: t.id,
        result: fails(t.node) || spurious ? 'fail' : 'pass',
        at: ++clock,
        flight: `sim-${++flights}`,
      };
      byReason[t.reason]++;
      observations.push(obs);
      events.push({ type: 'observe', obs });
    }
  }
}

/** The failing nodes when CULPRIT (a tree's commit) is the culprit, from the graph's own change sets. */
export function failsWithCulprit(graph: TupleGraph, tree: string, rev: string): (node: number) => boolean {
  const change = graph.changes.find((c) => c.tree === tree && c.sha === rev);
  if (!change) throw new Error(`simulate: ${tree} ${rev} is not a change between the basis and the failure`);
  const word = change.index >>> 5;
  const bit = 1 << (change.index & 31);
  return (node) => (graph.setOf(node)[word]! & bit) !== 0;
}
