import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type Decision,
  decide,
  notPossible,
  type Observation,
  OUTCOME_WORDING,
  type TestResult,
} from '../../src/bisect/engine.js';
import { BisectInputError, BisectionNotPossible, buildTupleGraph } from '../../src/bisect/graph.js';
import { failsWithCulprit, simulate } from '../../src/bisect/simulate.js';

const h = (label: string) => createHash('sha1').update(label).digest('hex');

/** One tree, c0 (basis) - c1 - … - c8 (failure): nodes c0..c8 are graph nodes 0..8. */
const chain = buildTupleGraph([
  {
    tree: 'xen',
    basis: h('c0'),
    failure: h('c8'),
    commits: Array.from({ length: 8 }, (_, i) => ({
      sha: h(`c${i + 1}`),
      parents: [h(`c${i}`)],
      time: 100 + i,
    })),
  },
]);
const id = (i: number) => `xen=${h(`c${i}`)}`;

/** Observations from a compact script: [node, result] pairs, timed in order after `from`. */
function obs(list: Array<[number, TestResult]>, from = 0): Observation[] {
  return list.map(([n, result], k) => ({ tuple: id(n), result, at: from + k }));
}
/** Reproduced: basis pass, failure fail, twice, alternating. */
const reproduced = obs([
  [0, 'pass'],
  [8, 'fail'],
  [0, 'pass'],
  [8, 'fail'],
]);

function tested(d: Decision): Array<[number, string]> {
  if (d.kind !== 'test') throw new Error(`expected tests, got ${JSON.stringify(d)}`);
  return d.tests.map((t) => [t.node, t.reason]);
}

describe('bisection engine: reproduction', () => {
  it('starts by retesting the basis, then the failure, alternating', () => {
    const first = obs([
      [0, 'pass'],
      [8, 'fail'],
    ]);
    expect(tested(decide(chain, first))).toEqual([[0, 'reproduce-basis']]);
    expect(tested(decide(chain, [...first, ...obs([[0, 'pass']], 2)]))).toEqual([[8, 'reproduce-failure']]);
    // Alternation is in time: a failure before the first basis pass does not count.
    const early = obs([
      [8, 'fail'],
      [0, 'pass'],
      [8, 'fail'],
      [0, 'pass'],
    ]);
    expect(tested(decide(chain, early))).toEqual([[8, 'reproduce-failure']]);
    expect(decide(chain, early).code).toBe(0);
  });

  it('retests a basis that failed once, and gives up (16) when it fails again and again', () => {
    const once = obs([
      [0, 'pass'],
      [8, 'fail'],
      [0, 'fail'],
    ]);
    expect(tested(decide(chain, once))).toEqual([[0, 'reproduce-basis']]);
    const d = decide(chain, [
      ...once,
      ...obs(
        [
          [0, 'fail'],
          [0, 'fail'],
        ],
        3,
      ),
    ]);
    expect(d.kind).toBe('done');
    if (d.kind !== 'done') return;
    expect(d.code).toBe(16);
    expect(d.outcome.wording).toBe(OUTCOME_WORDING[16]);
    expect(d.outcome.detail).toMatch(/basis .* fails \(1 pass \/ 3 fail\)/);
    expect(d.outcome.confidence).toBeGreaterThan(0.9);
  });

  it('16 when the failure passes', () => {
    const d = decide(
      chain,
      obs([
        [0, 'pass'],
        [8, 'fail'],
        [8, 'pass'],
        [8, 'pass'],
        [8, 'pass'],
      ]),
    );
    expect(d.code).toBe(16);
  });
});

describe('bisection engine: bisecting', () => {
  it('tests the middle of the candidates', () => {
    const d = decide(chain, reproduced);
    expect(tested(d)).toEqual([[4, 'bisect']]);
    expect(d.kind === 'test' && d.candidates).toBe(8);
    expect(tested(decide(chain, [...reproduced, ...obs([[4, 'pass']], 4)]))).toEqual([[6, 'bisect']]);
    expect(tested(decide(chain, [...reproduced, ...obs([[4, 'fail']], 4)]))).toEqual([[2, 'bisect']]);
  });

  it('with k hosts, splits the chain into k+1 parts; planned around tests under way', () => {
    expect(
      tested(decide(chain, reproduced, { hosts: 3 }))
        .map(([n]) => n)
        .sort(),
    ).toEqual([2, 4, 6]);
    const d = decide(chain, reproduced, { hosts: 3, pending: [id(4)] });
    expect(
      tested(d)
        .map(([n]) => n)
        .sort(),
    ).toEqual([2, 6]);
    expect(decide(chain, reproduced, { hosts: 1, pending: [id(4)] }).kind).toBe('wait');
  });

  it('looks through blocked and broken nodes to a neighbour', () => {
    const d = decide(chain, [...reproduced, ...obs([[4, 'blocked']], 4)]);
    const [[n]] = tested(d) as [[number, string]];
    expect([3, 5]).toContain(n);
  });

  it('8 (not pinned down) when every node that would tell the candidates apart is blocked or broken', () => {
    const d = decide(chain, [
      ...reproduced,
      ...obs(
        [1, 2, 3, 4, 5, 6, 7].map((n) => [n, n % 2 ? 'blocked' : 'broken'] as [number, TestResult]),
        4,
      ),
    ]);
    expect(d.code).toBe(8);
    if (d.kind !== 'done') return;
    expect(d.outcome.candidates).toHaveLength(8);
    expect(d.outcome.wording).toBe(OUTCOME_WORDING[8]);
  });

  it('8 when the flight budget runs out', () => {
    const d = decide(chain, reproduced, { maxFlights: 4 });
    expect(d.code).toBe(8);
    if (d.kind === 'done') expect(d.outcome.detail).toMatch(/budget/);
  });

  it('retests a node with mixed results before going on', () => {
    const d = decide(chain, [
      ...reproduced,
      ...obs(
        [
          [4, 'pass'],
          [4, 'fail'],
        ],
        4,
      ),
    ]);
    expect(tested(d)).toEqual([[4, 'retest-conflict']]);
  });

  it('retests the weakest of results that contradict each other', () => {
    // c3 failed once and c6 passed once: no change can be the culprit; doubt the single failure.
    const d = decide(chain, [
      ...reproduced,
      ...obs(
        [
          [6, 'pass'],
          [3, 'fail'],
        ],
        4,
      ),
    ]);
    expect(tested(d)).toEqual([[3, 'retest-conflict']]);
    // Once c3 passes twice more, its single failure no longer stands: the bisection goes on above c6.
    const d2 = decide(chain, [
      ...reproduced,
      ...obs(
        [
          [6, 'pass'],
          [3, 'fail'],
          [3, 'pass'],
          [3, 'pass'],
        ],
        4,
      ),
    ]);
    expect(tested(d2)).toEqual([[7, 'bisect']]);
  });
});

describe('bisection engine: confirming and verdicts', () => {
  // Culprit c5: c4 passes, c5 fails, three alternations, then a fourth fail at c5.
  const alternations = obs(
    [
      [4, 'pass'],
      [5, 'fail'],
      [4, 'pass'],
      [5, 'fail'],
      [4, 'pass'],
      [5, 'fail'],
    ],
    4,
  );

  it('asks for alternations, then for a culprit margin of five', () => {
    const partial = alternations.slice(0, 3);
    expect(tested(decide(chain, [...reproduced, ...partial]))).toEqual([[5, 'confirm-culprit']]);
    expect(tested(decide(chain, [...reproduced, ...alternations.slice(0, 2)]))).toEqual([
      [4, 'confirm-culprit'],
    ]);
    const d = decide(chain, [...reproduced, ...alternations]);
    expect(tested(d)).toEqual([[5, 'confirm-culprit']]);
    if (d.kind === 'test') expect(d.tests[0]!.why).toMatch(/ahead by 5/);
    expect(decide(chain, [...reproduced, ...alternations], { pending: [id(5)] }).kind).toBe('wait');
  });

  it('4: found and reproduced, with the confidence of its formula', () => {
    expect(decide(chain, [...reproduced, ...alternations, ...obs([[5, 'fail']], 10)]).kind).toBe('test');
    const d = decide(chain, [
      ...reproduced,
      ...alternations,
      ...obs(
        [
          [5, 'fail'],
          [5, 'fail'],
        ],
        10,
      ),
    ]);
    expect(d.kind).toBe('done');
    if (d.kind !== 'done') return;
    expect(d.code).toBe(4);
    expect(d.outcome.wording).toBe('Found and reproduced problem changeset');
    expect(d.outcome.culprit).toMatchObject({
      tree: 'xen',
      rev: h('c5'),
      parentRev: h('c4'),
      gitParents: [h('c4')],
    });
    // n = 12 results, no mixed node: ε̂ = 1/22, odds 1/21; culprit margin 5, parent margin 3.
    const r = 1 / 21;
    expect(d.outcome.flakeEstimate).toBeCloseTo(1 / 22, 12);
    expect(d.outcome.confidence).toBeCloseTo((1 / (1 + r ** 5)) * (1 / (1 + r ** 3)), 12);
  });

  it('12: found, but a node elsewhere stayed inconsistent at the retest bound', () => {
    const mixed = obs(
      Array.from({ length: 16 }, (_, k) => [2, k % 2 ? 'fail' : 'pass'] as [number, TestResult]),
      100,
    );
    const d = decide(chain, [
      ...reproduced,
      ...alternations,
      ...obs(
        [
          [5, 'fail'],
          [5, 'fail'],
        ],
        10,
      ),
      ...mixed,
    ]);
    expect(d.code).toBe(12);
    if (d.kind === 'done') {
      expect(d.outcome.inconsistent).toEqual([id(2)]);
      expect(d.outcome.culprit?.rev).toBe(h('c5'));
    }
  });

  it('a culprit that passes on retest is not blamed', () => {
    const d = decide(chain, [
      ...reproduced,
      ...alternations,
      ...obs(
        [
          [5, 'pass'],
          [5, 'pass'],
          [5, 'pass'],
          [5, 'pass'],
        ],
        10,
      ),
    ]);
    expect(d.kind).not.toBe('done');
  });

  it('32: not possible, from the graph', () => {
    let reason = '';
    try {
      buildTupleGraph([{ tree: 'xen', basis: h('c0'), failure: h('c0'), commits: [] }]);
    } catch (e) {
      if (e instanceof BisectionNotPossible) reason = e.reason;
    }
    const o = notPossible(reason);
    expect(o.code).toBe(32);
    expect(o.wording).toBe('Bisection is not possible');
    expect(o.detail).toMatch(/same revisions/);
  });

  it('rejects observations it cannot place, naming them', () => {
    expect(() => decide(chain, [{ tuple: 'xen=deadbeef', result: 'pass', at: 0, flight: '77' }])).toThrow(
      /flight 77.*not between the basis and the failure/,
    );
    expect(() => decide(chain, [{ tuple: id(0), result: 'maybe' as TestResult, at: 0 }])).toThrow(
      BisectInputError,
    );
    expect(
      decide(chain, [{ tuple: 'xen=deadbeef', result: 'pass', at: 0 }], { unknownTuples: 'ignore' }).kind,
    ).toBe('test');
  });
});

describe('bisection engine driven by the simulator', () => {
  it('finds every culprit of the chain, deterministically, in log2 bisection flights', () => {
    for (let c = 1; c <= 8; c++) {
      const r = simulate({
        graph: chain,
        fails: failsWithCulprit(chain, 'xen', h(`c${c}`)),
        flake: 0,
        seed: c,
      });
      expect(r.outcome.code).toBe(4);
      expect(r.outcome.culprit?.rev).toBe(h(`c${c}`));
      expect(r.byReason.bisect).toBe(3);
      expect(r.byReason['reproduce-basis'] + r.byReason['reproduce-failure']).toBe(2);
    }
  });

  it('the same seed gives the same bisection', () => {
    const run = () =>
      simulate({ graph: chain, fails: failsWithCulprit(chain, 'xen', h('c3')), flake: 0.3, seed: 42 })
        .observations;
    expect(run()).toEqual(run());
  });
});
