/**
 * A bisection as a replayable text log, in the manner of `git bisect log`: command lines that
 * `replay` reads back (`bisect start`, `bisect hosts`, `bisect observe`), and comment lines (`#`)
 * that say what the engine decided at each point, for people. The decisions are never read back:
 * they follow from the observations, so replaying the commands and asking the engine again gives
 * them back.
 *
 *   bisect start <failure tuple id> <basis tuple id>
 *   bisect hosts <k>
 *   bisect observe <at> <pass|fail|blocked|broken> <tuple id> [<flight, URI-encoded>]
 */
import {
  type DecideOptions,
  type Decision,
  decide,
  type Observation,
  type Outcome,
  TEST_RESULTS,
  type TestResult,
} from './engine.js';
import { parseTupleId, type TupleGraph, tupleId } from './graph.js';

export type LogEvent = { type: 'observe'; obs: Observation } | { type: 'decide'; decision: Decision };

export interface LogHeader {
  /** Tuple ids (graph.tupleId). */
  failure: string;
  basis: string;
  hosts?: number;
}

export class BisectLogError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`bisection log line ${line}: ${message}`);
    this.name = 'BisectLogError';
  }
}

function idOf(t: Observation['tuple']): string {
  return typeof t === 'string' ? t : tupleId(t);
}

function pct(x: number): string {
  return x >= 0.9999 ? x.toFixed(6) : x.toFixed(4);
}

/** The comment lines describing one decision. */
export function describeDecision(d: Decision): string[] {
  if (d.kind === 'wait') return [`# wait (${d.phase}): ${d.summary}`];
  if (d.kind === 'test') {
    return [
      `# next (${d.phase}): ${d.summary}`,
      ...d.tests.map((t) => `#   test ${t.reason} ${t.id} -- ${t.why}`),
    ];
  }
  return describeOutcome(d.outcome);
}

export function describeOutcome(o: Outcome): string[] {
  const lines = [`# verdict ${o.code}: ${o.wording} -- ${o.detail} (confidence ${pct(o.confidence)})`];
  if (o.culprit) {
    lines.push(
      `# culprit: ${o.culprit.tree} ${o.culprit.rev} (not present at ${o.culprit.parentRevs.join(', ')})`,
    );
  }
  for (const c of o.candidates ?? []) lines.push(`# candidate: ${c.tree} ${c.rev}`);
  for (const i of o.inconsistent) lines.push(`# inconsistent: ${i}`);
  return lines;
}

export function formatLog(header: LogHeader, events: readonly LogEvent[]): string {
  const lines = ['# osstest bisection log', `bisect start ${header.failure} ${header.basis}`];
  if (header.hosts !== undefined) lines.push(`bisect hosts ${header.hosts}`);
  for (const e of events) {
    if (e.type === 'decide') {
      lines.push(...describeDecision(e.decision));
      continue;
    }
    const o = e.obs;
    if (!Number.isFinite(o.at))
      throw new BisectLogError(lines.length + 1, `time ${o.at} is not a finite number`);
    const parts = ['bisect observe', String(o.at), o.result, idOf(o.tuple)];
    if (o.flight !== undefined) parts.push(encodeURIComponent(o.flight));
    lines.push(parts.join(' '));
  }
  return `${lines.join('\n')}\n`;
}

export interface Replayed {
  header: LogHeader;
  observations: Observation[];
}

/** Reads the commands of a log back (comments and blank lines are skipped). */
export function replay(text: string): Replayed {
  let header: LogHeader | undefined;
  let hosts: number | undefined;
  const observations: Observation[] = [];
  text.split('\n').forEach((raw, idx) => {
    const n = idx + 1;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const w = line.split(/\s+/);
    if (w[0] !== 'bisect')
      throw new BisectLogError(n, `expected a "bisect …" command, got ${JSON.stringify(line)}`);
    const tuple = (s: string | undefined, what: string): string => {
      if (s === undefined) throw new BisectLogError(n, `missing ${what}`);
      try {
        return tupleId(parseTupleId(s));
      } catch (e) {
        throw new BisectLogError(n, `${what}: ${(e as Error).message}`);
      }
    };
    switch (w[1]) {
      case 'start':
        if (header) throw new BisectLogError(n, 'a second "bisect start"');
        if (w.length !== 4) throw new BisectLogError(n, 'usage: bisect start <failure tuple> <basis tuple>');
        header = { failure: tuple(w[2], 'failure tuple'), basis: tuple(w[3], 'basis tuple') };
        return;
      case 'hosts': {
        const k = Number(w[2]);
        if (w.length !== 3 || !Number.isInteger(k) || k < 1)
          throw new BisectLogError(n, 'usage: bisect hosts <positive integer>');
        hosts = k;
        return;
      }
      case 'observe': {
        if (!header) throw new BisectLogError(n, '"bisect observe" before "bisect start"');
        if (w.length < 5 || w.length > 6)
          throw new BisectLogError(n, 'usage: bisect observe <at> <result> <tuple> [<flight>]');
        const at = Number(w[2]);
        if (w[2] === '' || !Number.isFinite(at))
          throw new BisectLogError(n, `time ${JSON.stringify(w[2])} is not a number`);
        const result = w[3] as TestResult;
        if (!TEST_RESULTS.includes(result))
          throw new BisectLogError(
            n,
            `result ${JSON.stringify(w[3])} is not one of ${TEST_RESULTS.join(', ')}`,
          );
        const obs: Observation = { at, result, tuple: tuple(w[4], 'tuple') };
        if (w[5] !== undefined) {
          try {
            obs.flight = decodeURIComponent(w[5]);
          } catch {
            throw new BisectLogError(n, `flight ${JSON.stringify(w[5])} is not URI-encoded`);
          }
        }
        observations.push(obs);
        return;
      }
      default:
        throw new BisectLogError(n, `unknown command "bisect ${w[1] ?? ''}"`);
    }
  });
  if (!header) throw new BisectLogError(0, 'no "bisect start" line');
  if (hosts !== undefined) header.hosts = hosts;
  return { header, observations };
}

/**
 * The log of a bisection rebuilt from its observations alone (what the database holds): each
 * observation in time order, followed by what the engine decides given the results up to it.
 */
export function reconstructEvents(
  graph: TupleGraph,
  observations: readonly Observation[],
  opts: Omit<DecideOptions, 'pending'> = {},
): LogEvent[] {
  const sorted = observations.map((o, i) => ({ o, i })).sort((a, b) => a.o.at - b.o.at || a.i - b.i);
  const events: LogEvent[] = [];
  const seen: Observation[] = [];
  for (const { o } of sorted) {
    seen.push(o);
    events.push({ type: 'observe', obs: o });
    events.push({ type: 'decide', decision: decide(graph, seen, opts) });
  }
  return events;
}

export function headerOf(graph: TupleGraph, hosts?: number): LogHeader {
  const h: LogHeader = { failure: graph.node(graph.failure).id, basis: graph.node(graph.basis).id };
  if (hosts !== undefined) h.hosts = hosts;
  return h;
}
