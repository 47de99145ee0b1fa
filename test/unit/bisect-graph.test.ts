import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { andCount, bitsToIndices } from '../../src/bisect/bitset.js';
import type { CommitInfo } from '../../src/bisect/git.js';
import {
  BisectInputError,
  BisectionNotPossible,
  buildTupleGraph,
  parseTupleId,
  type TupleGraph,
  tupleId,
} from '../../src/bisect/graph.js';

/** A stable fake hash for a label, so tests can talk about commits by name. */
const h = (label: string) => createHash('sha1').update(label).digest('hex');
const c = (label: string, time: number, ...parents: string[]): CommitInfo => ({
  sha: h(label),
  time,
  parents: parents.map(h),
});

/** The labels of a node's tuple, tree by tree, for readable assertions. */
function labels(g: TupleGraph, names: string[]): Map<string, string> {
  const byHash = new Map(names.map((n) => [h(n), n]));
  return new Map(
    g.nodes.map((n) => [n.id, g.trees.map((t) => `${t}:${byHash.get(n.tuple[t]!) ?? '?'}`).join(' ')]),
  );
}

describe('tuple graph (OSSTEST-BEHAVIOUR §5)', () => {
  it('interleaves two linear trees by commit time into one chain', () => {
    const g = buildTupleGraph([
      {
        tree: 'xen',
        basis: h('a0'),
        failure: h('a3'),
        commits: [c('a1', 10, 'a0'), c('a2', 30, 'a1'), c('a3', 50, 'a2')],
      },
      { tree: 'linux', basis: h('b0'), failure: h('b2'), commits: [c('b1', 20, 'b0'), c('b2', 40, 'b1')] },
    ]);
    expect(g.trees).toEqual(['linux', 'xen']);
    expect(g.nodes).toHaveLength(6);
    expect(g.edgeCount).toBe(5);
    const names = labels(g, ['a0', 'a1', 'a2', 'a3', 'b0', 'b1', 'b2']);
    // Topological order, basis first: each step adds the next change by date.
    expect(g.nodes.map((n) => names.get(n.id))).toEqual([
      'linux:b0 xen:a0',
      'linux:b0 xen:a1',
      'linux:b1 xen:a1',
      'linux:b1 xen:a2',
      'linux:b2 xen:a2',
      'linux:b2 xen:a3',
    ]);
    expect(g.basis).toBe(0);
    expect(g.failure).toBe(5);
    expect(g.node(5).tree).toBe('xen');
    expect(g.changes[g.node(5).change!]!.sha).toBe(h('a3'));
    expect(bitsToIndices(g.setOf(g.failure))).toHaveLength(5);
    expect(bitsToIndices(g.setOf(g.basis))).toHaveLength(0);
  });

  it('expands merges into both parents and keeps the other tree beside each', () => {
    // xen: a0 (basis) - a1 - a2 - m, with side s1 off a1 merged at m; linux: b0 (basis) - b1.
    const g = buildTupleGraph([
      {
        tree: 'xen',
        basis: h('a0'),
        failure: h('m'),
        commits: [c('m', 30, 'a2', 's1'), c('a2', 20, 'a1'), c('s1', 15, 'a1'), c('a1', 10, 'a0')],
      },
      { tree: 'linux', basis: h('b0'), failure: h('b1'), commits: [c('b1', 17, 'b0')] },
    ]);
    const names = labels(g, ['a0', 'a1', 'a2', 's1', 'm', 'b0', 'b1']);
    expect(g.nodes).toHaveLength(7);
    expect(g.edgeCount).toBe(7);
    expect(new Set(g.nodes.map((n) => names.get(n.id)))).toEqual(
      new Set([
        'linux:b1 xen:m',
        'linux:b1 xen:a2',
        'linux:b1 xen:s1',
        'linux:b1 xen:a1',
        'linux:b0 xen:s1',
        'linux:b0 xen:a1',
        'linux:b0 xen:a0',
      ]),
    );
    const top = g.node(g.failure);
    expect(top.parents.map((p) => names.get(g.node(p).id)).sort()).toEqual([
      'linux:b1 xen:a2',
      'linux:b1 xen:s1',
    ]);
    // b1 is added at two places: beside a1 and beside s1.
    const b1 = g.changes.find((x) => x.sha === h('b1'))!;
    expect(
      g
        .introducing(b1.index)
        .map((i) => names.get(g.node(i).id))
        .sort(),
    ).toEqual(['linux:b1 xen:a1', 'linux:b1 xen:s1']);
    // The merge contains every change; s1's node does not contain a2.
    const s1node = g.find({ xen: h('s1'), linux: h('b1') })!;
    const inS1 = bitsToIndices(g.setOf(s1node)).map((i) => g.changes[i]!.sha);
    expect(new Set(inS1)).toEqual(new Set([h('a1'), h('s1'), h('b1')]));
    // Every node but the basis is in topological order after its parents.
    for (const n of g.nodes) for (const p of n.parents) expect(p).toBeLessThan(n.index);
  });

  it('treats parents outside the range (a branch forked before the basis) as the basis', () => {
    // r0 - a0 (basis) - a1 - m; o1 forked from r0, merged at m.
    const g = buildTupleGraph([
      {
        tree: 'xen',
        basis: h('a0'),
        failure: h('m'),
        commits: [c('m', 20, 'a1', 'o1'), c('a1', 10, 'a0'), c('o1', 5, 'r0')],
      },
    ]);
    expect(g.nodes).toHaveLength(4);
    expect(g.edgeCount).toBe(4);
    const o1 = g.find({ xen: h('o1') })!;
    expect(g.node(o1).parents).toEqual([g.basis]);
    expect(g.changes[g.node(o1).change!]!.gitParents).toEqual([h('r0')]);
  });

  it('counts the candidates inside every node through merges as a full scan would', () => {
    // Two merges (one of a branch forked before the basis) in xen, a linear linux beside it.
    const g = buildTupleGraph([
      {
        tree: 'xen',
        basis: h('a0'),
        failure: h('m2'),
        commits: [
          c('o1', 3, 'r0'),
          c('a1', 10, 'a0'),
          c('s1', 12, 'a1'),
          c('s2', 14, 's1'),
          c('a2', 16, 'a1'),
          c('m1', 20, 'a2', 's2'),
          c('a3', 24, 'm1'),
          c('m2', 30, 'a3', 'o1'),
        ],
      },
      {
        tree: 'linux',
        basis: h('b0'),
        failure: h('b3'),
        commits: [c('b1', 11, 'b0'), c('b2', 17, 'b1'), c('b3', 27, 'b2')],
      },
    ]);
    for (let mask = 1; mask < 1 << g.changes.length; mask += 37) {
      const K = new Uint32Array(g.words);
      K[0] = mask;
      const fast = g.countInside(K);
      for (const n of g.nodes) expect(fast[n.index]).toBe(andCount(g.setOf(n.index), K));
    }
  });

  it('keeps a tree that did not change fixed', () => {
    const g = buildTupleGraph([
      { tree: 'xen', basis: h('a0'), failure: h('a2'), commits: [c('a1', 10, 'a0'), c('a2', 20, 'a1')] },
      { tree: 'linux', basis: h('b0'), failure: h('b0'), commits: [] },
    ]);
    expect(g.nodes).toHaveLength(3);
    for (const n of g.nodes) expect(n.tuple.linux).toBe(h('b0'));
  });

  it('tuple ids are stable and parse back', () => {
    const t = { xen: h('a1'), linux: h('b1') };
    const id = tupleId(t);
    expect(id).toBe(`linux=${h('b1')},xen=${h('a1')}`);
    expect(parseTupleId(id)).toEqual(t);
    expect(() => parseTupleId('xen')).toThrow(/not a revision tuple/);
    expect(() => parseTupleId('xen=a,xen=b')).toThrow(/twice/);
  });

  it('says why a bisection is not possible, and rejects inconsistent input', () => {
    expect(() => buildTupleGraph([{ tree: 'xen', basis: h('a0'), failure: h('a0'), commits: [] }])).toThrow(
      BisectionNotPossible,
    );
    expect(() => buildTupleGraph([{ tree: 'xen', basis: h('a0'), failure: h('a1'), commits: [] }])).toThrow(
      /contained in the basis/,
    );
    expect(() =>
      buildTupleGraph([{ tree: 'xen', basis: h('a0'), failure: h('a9'), commits: [c('a1', 1, 'a0')] }]),
    ).toThrow(BisectInputError);
    expect(() =>
      buildTupleGraph([
        { tree: 'xen', basis: h('a0'), failure: h('a1'), commits: [c('a1', 1, 'a0')] },
        { tree: 'xen', basis: h('a0'), failure: h('a1'), commits: [c('a1', 1, 'a0')] },
      ]),
    ).toThrow(/given twice/);
    expect(() =>
      buildTupleGraph([{ tree: 'x,y', basis: h('a0'), failure: h('a1'), commits: [c('a1', 1, 'a0')] }]),
    ).toThrow(/tree name/);
    expect(() =>
      buildTupleGraph([
        { tree: 'xen', basis: h('a0'), failure: h('a1'), commits: [c('a1', 1, 'a0'), c('zz', 1, 'a0')] },
      ]),
    ).toThrow(/not ancestors of the failure/);
    expect(() =>
      buildTupleGraph([
        { tree: 'xen', basis: h('a0'), failure: h('a2'), commits: [c('a2', 1, 'a1'), c('a1', 1, 'a2')] },
      ]),
    ).toThrow(/cycle/);
  });
});
