/**
 * The bisection's revision-tuple graph as DOT, drawn as the original drew it (OSSTEST-BEHAVIOUR
 * §5): bottom to top (the basis at the bottom), each node labelled with its trees' short revisions
 * and a `flight: result` line per test of it; filled red where it failed, green where it passed,
 * blue for anything else (blocked, broken), yellow where results conflict; the target node bold;
 * the failure an oval, the basis a hexagon, the rest boxes.
 *
 * Only the nodes that matter are drawn — the two ends, every node tested, the targets and the
 * culprit's parents — with an edge where one contains the other and nothing drawn lies between
 * (labelled with the number of changes it spans): a bisection of a thousand commits draws a few
 * dozen nodes, not a thousand.
 *
 * SVG comes from Graphviz compiled to WebAssembly (@hpcc-js/wasm-graphviz), in-process: no `dot`
 * program is needed on the machine.
 */
import { Graphviz } from '@hpcc-js/wasm-graphviz';
import { andNotInto, isEmpty, popcount } from './bitset.js';
import type { Observation } from './engine.js';
import type { TupleGraph } from './graph.js';

export const COLOURS = { fail: 'red', pass: 'green', other: 'blue', conflicted: 'yellow' } as const;

export interface DotOptions {
  /** Tuple ids drawn bold: the culprit when found, else the tuples about to be tested. */
  targets?: readonly string[];
  /** Extra tuple ids to draw (e.g. the culprit's parents). */
  extra?: readonly string[];
  /** Characters of each revision shown (default 12). */
  revLength?: number;
  title?: string;
}

/** A DOT double-quoted string: backslash and quote escaped, newlines as `\n`, other controls dropped. */
export function dotString(s: string): string {
  const body = s
    .replace(/\\/g, '\\\\')
    .replace(/"/g, '\\"')
    .replace(/\r?\n/g, '\\n')
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
    .replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '');
  return `"${body}"`;
}

export type NodeColour = keyof typeof COLOURS | 'untested';

export function nodeColour(results: readonly string[]): NodeColour {
  if (results.length === 0) return 'untested';
  const pass = results.includes('pass');
  const fail = results.includes('fail');
  if (pass && fail) return 'conflicted';
  if (fail) return 'fail';
  if (pass) return 'pass';
  return 'other';
}

export function bisectionDot(
  graph: TupleGraph,
  observations: readonly Observation[],
  o: DotOptions = {},
): string {
  const len = o.revLength ?? 12;
  const byNode = new Map<number, Observation[]>();
  const idOf = (t: Observation['tuple']) => (typeof t === 'string' ? t : undefined);
  for (const ob of [...observations].sort((a, b) => a.at - b.at)) {
    const i = graph.find(idOf(ob.tuple) ?? (ob.tuple as Record<string, string>));
    if (i === undefined) continue;
    const list = byNode.get(i) ?? [];
    list.push(ob);
    byNode.set(i, list);
  }
  const targets = new Set<number>();
  for (const t of o.targets ?? []) {
    const i = graph.find(t);
    if (i !== undefined) targets.add(i);
  }
  const drawn = new Set<number>([graph.basis, graph.failure, ...byNode.keys(), ...targets]);
  for (const t of o.extra ?? []) {
    const i = graph.find(t);
    if (i !== undefined) drawn.add(i);
  }
  const nodes = [...drawn].sort((a, b) => a - b);
  const size = new Map(nodes.map((i) => [i, popcount(graph.setOf(i))]));
  /** a ⊂ b: every change in a is in b (distinct nodes have distinct change sets). */
  const below = (a: number, b: number) => {
    if (a === b || size.get(a)! >= size.get(b)!) return false;
    const rest = graph.setOf(a).slice();
    andNotInto(rest, graph.setOf(b));
    return isEmpty(rest);
  };
  const lines = [
    'digraph bisection {',
    '  rankdir=BT;',
    '  node [fontname="Courier", fontsize=10, style=filled, fillcolor=white, shape=box];',
    '  edge [fontname="sans-serif", fontsize=9, color="#555555"];',
  ];
  if (o.title) lines.push(`  label=${dotString(o.title)}; labelloc=t;`);
  for (const i of nodes) {
    const n = graph.node(i);
    const obs = byNode.get(i) ?? [];
    const revs = graph.trees.map((t) => `${t} ${(n.tuple[t] ?? '').slice(0, len)}`);
    const results = obs.map((x) => `${x.flight ?? `@${x.at}`}: ${x.result}`);
    const colour = nodeColour(obs.map((x) => x.result));
    const attrs = [
      `label=${dotString([...revs, ...results].join('\n'))}`,
      `tooltip=${dotString(n.id)}`,
      `id=${dotString(`n${i}`)}`,
    ];
    if (i === graph.failure) attrs.push('shape=oval');
    else if (i === graph.basis) attrs.push('shape=hexagon');
    if (colour !== 'untested') attrs.push(`fillcolor=${COLOURS[colour]}`);
    if (colour === 'fail' || colour === 'other') attrs.push('fontcolor=white');
    if (targets.has(i)) attrs.push('style="filled,bold"', 'penwidth=3');
    lines.push(`  n${i} [${attrs.join(', ')}];`);
  }
  for (const b of nodes) {
    const under = nodes.filter((a) => below(a, b));
    for (const a of under) {
      if (under.some((c) => c !== a && below(a, c))) continue; // a reaches b through c
      const span = size.get(b)! - size.get(a)!;
      lines.push(`  n${a} -> n${b}${span > 1 ? ` [label=${dotString(`${span} changes`)}]` : ''};`);
    }
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

let graphviz: Promise<Graphviz> | undefined;

/** DOT → SVG text, in-process. */
export async function renderSvg(dot: string): Promise<string> {
  graphviz ??= Graphviz.load();
  return (await graphviz).dot(dot, 'svg');
}
