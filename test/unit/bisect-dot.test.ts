/** The bisection graph as DOT and SVG (src/bisect/dot.ts), on small graphs built in memory. */
import { createHash } from 'node:crypto';
import { SaxesParser } from 'saxes';
import { describe, expect, it } from 'vitest';
import { bisectionDot, dotString, nodeColour, renderSvg } from '../../src/bisect/dot.js';
import type { Observation } from '../../src/bisect/engine.js';
import type { CommitInfo } from '../../src/bisect/git.js';
import { buildTupleGraph } from '../../src/bisect/graph.js';

const h = (label: string) => createHash('sha1').update(label).digest('hex');
const c = (label: string, time: number, ...parents: string[]): CommitInfo => ({
  sha: h(label),
  time,
  parents: parents.map(h),
});

/** One tree, a0 (basis) … a6 (failure), linear. */
function chain() {
  const commits = [1, 2, 3, 4, 5, 6].map((i) => c(`a${i}`, i * 10, `a${i - 1}`));
  return buildTupleGraph([{ tree: 'xen', basis: h('a0'), failure: h('a6'), commits }]);
}

const id = (label: string) => `xen=${h(label)}`;
const obs = (label: string, result: Observation['result'], at: number, flight: string): Observation => ({
  tuple: id(label),
  result,
  at,
  flight,
});

function lineOf(dot: string, label: string): string {
  const line = dot.split('\n').find((l) => l.includes(`xen ${h(label).slice(0, 12)}`));
  if (!line) throw new Error(`no node for ${label} in\n${dot}`);
  return line;
}

describe('bisection DOT', () => {
  it('colours nodes as the original: fail red, pass green, other blue, conflicted yellow', () => {
    expect(nodeColour([])).toBe('untested');
    expect(nodeColour(['pass', 'pass'])).toBe('pass');
    expect(nodeColour(['fail'])).toBe('fail');
    expect(nodeColour(['blocked', 'broken'])).toBe('other');
    expect(nodeColour(['pass', 'broken', 'fail'])).toBe('conflicted');
    const g = chain();
    const dot = bisectionDot(
      g,
      [
        obs('a0', 'pass', 1, '10'),
        obs('a6', 'fail', 2, '11'),
        obs('a2', 'pass', 3, '12'),
        obs('a4', 'blocked', 4, '13'),
        obs('a3', 'pass', 5, '14'),
        obs('a3', 'fail', 6, '15'),
      ],
      { targets: [id('a5')] },
    );
    expect(dot).toMatch(/^digraph bisection \{\n {2}rankdir=BT;/);
    expect(lineOf(dot, 'a0')).toMatch(/shape=hexagon.*fillcolor=green/);
    expect(lineOf(dot, 'a6')).toMatch(/shape=oval.*fillcolor=red/);
    expect(lineOf(dot, 'a2')).toContain('fillcolor=green');
    expect(lineOf(dot, 'a4')).toContain('fillcolor=blue');
    expect(lineOf(dot, 'a3')).toContain('fillcolor=yellow');
    expect(lineOf(dot, 'a3')).toContain('14: pass\\n15: fail');
    // The target is drawn (untested, so unfilled) and bold; untested nodes that are not targets are left out.
    expect(lineOf(dot, 'a5')).toContain('style="filled,bold"');
    expect(lineOf(dot, 'a5')).not.toContain('fillcolor=');
    expect(dot).not.toContain(`xen ${h('a1').slice(0, 12)}`);
    // Everything else is a box (the default).
    expect(dot).toContain(
      'node [fontname="Courier", fontsize=10, style=filled, fillcolor=white, shape=box];',
    );
    expect(lineOf(dot, 'a2')).not.toContain('shape=');
  });

  it('joins each drawn node to the nearest drawn ones below it, labelled with the changes between', () => {
    const g = chain();
    const dot = bisectionDot(g, [
      obs('a0', 'pass', 1, 'b'),
      obs('a6', 'fail', 2, 'f'),
      obs('a3', 'pass', 3, 'x'),
    ]);
    const n = (label: string) => `n${g.find(id(label))}`;
    const edges = dot.split('\n').filter((l) => l.includes('->'));
    expect(edges).toEqual([
      `  ${n('a0')} -> ${n('a3')} [label="3 changes"];`,
      `  ${n('a3')} -> ${n('a6')} [label="3 changes"];`,
    ]);
  });

  it('escapes labels so no text can end a DOT string', () => {
    expect(dotString('a"b\\c\nd\u0001')).toBe('"a\\"b\\\\c\\nd"');
  });

  it('renders well-formed SVG in-process, with the labels', async () => {
    const g = chain();
    const dot = bisectionDot(g, [obs('a0', 'pass', 1, '7'), obs('a6', 'fail', 2, '9 <&>')], {
      title: 'x & <y>',
    });
    const svg = await renderSvg(dot);
    const p = new SaxesParser();
    let texts = '';
    p.on('text', (t) => {
      texts += t;
    });
    p.on('error', (e) => {
      throw e;
    });
    p.write(svg).close();
    expect(texts).toContain(`xen ${h('a6').slice(0, 12)}`);
    expect(texts).toContain('9 <&>: fail');
    expect(texts).toContain('x & <y>');
  });
});
