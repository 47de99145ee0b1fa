/**
 * Machine-readable results: the original's `.mro` lines, and JSON. The push gate reads `tolerable`;
 * the bisector reads the `regression` lines.
 *
 * `.mro`, one fact per line, in this order:
 *   flight <N>
 *   version this <tree> <rev>          what this flight tested
 *   version that <tree> <rev>          the baseline
 *   regression <job> <testid> <ref>    a blocking regression against baseline flight <ref>
 *   broken <job> <testid> [<ref>]      blocking, and the step (or job) was not a plain fail
 *   blocker <job> <testid> [<ref>]     blocking, not a regression (failed in, blocked in, baseline untested)
 *   allowable <job> <testid> <file>:<line>   would block, cleared by that allow line
 *   heisenbug <job> <testid> <ref>     passed in flight <ref> at the same revisions
 *   like <job> <testid> <ref>          failed the same way in baseline flight <ref>
 *   never-passed <job> <testid>
 *   blocked <job> <testid>             not run, blocked by an earlier failure
 *   tolerable                          nothing blocks the push
 *   perfect                            nothing failed
 * Testids contain no spaces except the job-level `<none executed>`.
 */
import { NONE_EXECUTED } from './judge.js';
import type { Failure, Judgement } from './types.js';

export type MroKind =
  | 'regression'
  | 'broken'
  | 'blocker'
  | 'allowable'
  | 'heisenbug'
  | 'like'
  | 'never-passed'
  | 'blocked';

const KINDS: ReadonlySet<string> = new Set<MroKind>([
  'regression',
  'broken',
  'blocker',
  'allowable',
  'heisenbug',
  'like',
  'never-passed',
  'blocked',
]);

export interface MroEntry {
  kind: MroKind;
  job: string;
  testid: string;
  /** The reference flight, or `file:line` for `allowable`. */
  arg?: string;
}

export interface Mro {
  flight?: string;
  versions: { this: Record<string, string>; that: Record<string, string> };
  entries: MroEntry[];
  tolerable: boolean;
  perfect: boolean;
}

/** A `.mro` file that does not read as one; the message names where it came from and the line. */
export class MroError extends Error {
  override name = 'MroError';
}

export function mroEntry(f: Failure): MroEntry {
  const e = (kind: MroKind, arg?: string): MroEntry =>
    arg === undefined ? { kind, job: f.job, testid: f.testid } : { kind, job: f.job, testid: f.testid, arg };
  if (f.allowed !== undefined) return e('allowable', `${f.allowed.file}:${f.allowed.line}`);
  switch (f.verdict) {
    case 'regression':
      return e('regression', f.refFlight);
    case 'pass in':
      return e('heisenbug', f.refFlight);
    case 'like':
      return e('like', f.refFlight);
    case 'never pass':
      return e('never-passed');
    case 'blocked':
      return e('blocked');
    default:
      return e(f.status === 'fail' ? 'blocker' : 'broken', f.refFlight);
  }
}

export function mroLines(j: Judgement): string[] {
  const lines = [`flight ${j.flight}`];
  for (const v of j.versions) if (v.this !== undefined) lines.push(`version this ${v.tree} ${v.this}`);
  for (const v of j.versions) if (v.that !== undefined) lines.push(`version that ${v.tree} ${v.that}`);
  for (const f of j.failures) {
    const e = mroEntry(f);
    lines.push([e.kind, e.job, e.testid, ...(e.arg === undefined ? [] : [e.arg])].join(' '));
  }
  if (j.tolerable) lines.push('tolerable');
  if (j.overall === 'perfect') lines.push('perfect');
  return lines;
}

export function formatMro(j: Judgement): string {
  return `${mroLines(j).join('\n')}\n`;
}

/** Reads `.mro` text back; `source` names it in errors. Unknown kinds are an error, not skipped. */
export function parseMro(text: string, source: string): Mro {
  const mro: Mro = { versions: { this: {}, that: {} }, entries: [], tolerable: false, perfect: false };
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    const bad = (why: string): MroError => new MroError(`${source}:${i + 1}: ${why}: ${JSON.stringify(raw)}`);
    const t = line.split(/\s+/);
    const kind = t[0]!;
    if (kind === 'tolerable' || kind === 'perfect') {
      if (t.length !== 1) throw bad(`${kind} takes no arguments`);
      mro[kind] = true;
    } else if (kind === 'flight') {
      if (t.length !== 2) throw bad('expected: flight N');
      mro.flight = t[1]!;
    } else if (kind === 'version') {
      const [, which, tree, rev] = t;
      if (t.length !== 4 || (which !== 'this' && which !== 'that'))
        throw bad('expected: version this|that TREE REV');
      mro.versions[which][tree!] = rev!;
    } else if (KINDS.has(kind)) {
      if (t.length < 3) throw bad(`expected: ${kind} JOB TESTID`);
      const job = t[1]!;
      let rest = t.slice(2);
      let testid = rest[0]!;
      if (rest.slice(0, 2).join(' ') === NONE_EXECUTED) {
        testid = NONE_EXECUTED;
        rest = rest.slice(2);
      } else {
        rest = rest.slice(1);
      }
      const entry: MroEntry = { kind: kind as MroKind, job, testid };
      if (rest.length > 0) entry.arg = rest.join(' ');
      mro.entries.push(entry);
    } else {
      throw bad(`unknown line kind ${JSON.stringify(kind)}`);
    }
  });
  return mro;
}

export const JSON_FORMAT = 'osstest-judgement/1';

/** The judgement as JSON, tagged with its format so a reader can refuse what it does not know. */
export function judgementJson(j: Judgement): string {
  return `${JSON.stringify({ format: JSON_FORMAT, ...j }, null, 2)}\n`;
}

/** Reads `judgementJson` output back; `source` names it in errors. */
export function parseJudgementJson(text: string, source: string): Judgement {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new MroError(`${source}: not JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || (v as { format?: unknown }).format !== JSON_FORMAT) {
    throw new MroError(`${source}: not a judgement in format ${JSON_FORMAT}`);
  }
  const o = v as Record<string, unknown>;
  if (typeof o.tolerable !== 'boolean' || !Array.isArray(o.failures) || typeof o.flight !== 'string') {
    throw new MroError(`${source}: judgement lacks flight, tolerable or failures`);
  }
  const { format: _format, ...rest } = o;
  return rest as unknown as Judgement;
}
