import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decide, type Observation } from '../../src/bisect/engine.js';
import { buildTupleGraph, tupleId } from '../../src/bisect/graph.js';
import { BisectLogError, formatLog, headerOf, reconstructEvents, replay } from '../../src/bisect/log.js';
import { failsWithCulprit, simulate } from '../../src/bisect/simulate.js';

const h = (label: string) => createHash('sha1').update(label).digest('hex');

// Two trees, interleaved: xen c0..c6, linux l0..l4.
const graph = buildTupleGraph([
  {
    tree: 'xen',
    basis: h('c0'),
    failure: h('c6'),
    commits: Array.from({ length: 6 }, (_, i) => ({
      sha: h(`c${i + 1}`),
      parents: [h(`c${i}`)],
      time: 10 * (i + 1),
    })),
  },
  {
    tree: 'linux',
    basis: h('l0'),
    failure: h('l4'),
    commits: Array.from({ length: 4 }, (_, i) => ({
      sha: h(`l${i + 1}`),
      parents: [h(`l${i}`)],
      time: 15 * (i + 1),
    })),
  },
]);

describe('bisection log', () => {
  const run = simulate({
    graph,
    fails: failsWithCulprit(graph, 'linux', h('l3')),
    flake: 0.25,
    seed: 7,
    hosts: 2,
  });

  it('prints one line per observation and per decision, and replays to the same observations', () => {
    const text = formatLog(headerOf(graph, 2), run.events);
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toBe('# osstest bisection log');
    expect(lines[1]).toBe(`bisect start ${graph.node(graph.failure).id} ${graph.node(graph.basis).id}`);
    expect(lines[2]).toBe('bisect hosts 2');
    expect(lines.filter((l) => l.startsWith('bisect observe'))).toHaveLength(run.observations.length);
    expect(lines.some((l) => l.startsWith('# next (reproduce)'))).toBe(true);
    expect(lines.at(-1)).toBe(`# culprit: linux ${h('l3')} (not present at ${h('l2')})`);
    expect(lines.find((l) => l.startsWith('# verdict'))).toMatch(
      /^# verdict 4: Found and reproduced problem changeset/,
    );

    const back = replay(text);
    expect(back.header).toEqual(headerOf(graph, 2));
    const norm = (os: Observation[]) =>
      os.map((o) => ({ ...o, tuple: typeof o.tuple === 'string' ? o.tuple : tupleId(o.tuple) }));
    expect(back.observations).toEqual(norm(run.observations));
    // The engine, asked again from the replayed log, gives the same verdict.
    const again = decide(graph, back.observations, { hosts: 2 });
    expect(again.kind === 'done' && again.outcome).toEqual(run.outcome);
  });

  it('rebuilds the log from the observations alone, and that log round-trips exactly', () => {
    const events = reconstructEvents(graph, run.observations, { hosts: 2 });
    const text = formatLog(headerOf(graph, 2), events);
    const back = replay(text);
    expect(
      formatLog(back.header, reconstructEvents(graph, back.observations, { hosts: back.header.hosts })),
    ).toBe(text);
    const last = events.at(-1);
    expect(last?.type === 'decide' && last.decision.kind).toBe('done');
  });

  it('keeps flight names with spaces and odd characters', () => {
    const obs: Observation[] = [{ tuple: graph.node(0).id, result: 'pass', at: 1.5, flight: 'my flight #3' }];
    const back = replay(formatLog(headerOf(graph), [{ type: 'observe', obs: obs[0]! }]));
    expect(back.observations).toEqual(obs);
  });

  it('names the line of a bad log', () => {
    const start = `bisect start ${graph.node(graph.failure).id} ${graph.node(graph.basis).id}`;
    expect(() => replay(`${start}\nbisect observe x pass ${graph.node(0).id}\n`)).toThrow(/line 2: time "x"/);
    expect(() => replay(`${start}\nbisect observe 3 maybe ${graph.node(0).id}\n`)).toThrow(BisectLogError);
    expect(() => replay(`${start}\nbisect observe 3 pass nonsense\n`)).toThrow(
      /line 2: tuple: not a revision tuple/,
    );
    expect(() => replay('bisect observe 3 pass a=b\n')).toThrow(/before "bisect start"/);
    expect(() => replay('git bisect good\n')).toThrow(/line 1: expected a "bisect …" command/);
    expect(() => replay('# nothing\n')).toThrow(/no "bisect start"/);
  });
});
