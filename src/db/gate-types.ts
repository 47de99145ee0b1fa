/**
 * The push gate's state (OSSTEST-BEHAVIOUR §4), kept in the store rather than in files: per-branch
 * controls (the original's stop, block and force files), the gate's runs with the revisions each
 * tested, and every push it tried. (Regressions go to the bisector as bisections, types.ts.)
 */
import type { Millis } from './types.js';

/** What `osstest branch stop|start|block-push|unblock-push|force-push` set for a branch. */
export interface BranchControl {
  branch: string;
  /** daily-branch refuses to run the branch. */
  stopped: boolean;
  /** daily-branch tests but never pushes. */
  blockPush: boolean;
  /** Push this revision once it has been tested, whatever the verdict; cleared when used. */
  forcePush: string | null;
  /** Why, as given with the last change. */
  note: string;
  /** When it last changed; null: never set (these are the defaults). */
  updated: Millis | null;
}

export interface BranchControlChange {
  stopped?: boolean;
  blockPush?: boolean;
  forcePush?: string | null;
  note?: string;
}

/**
 * - `test`: the input revision of the tree under test against the tested one (may push);
 * - `baseline`: the tested revision itself, because no completed run had tested it (never pushes);
 * - `nothing`: the input ref had not moved; no flight.
 */
export type GateRunKind = 'test' | 'baseline' | 'nothing';
export const GATE_RUN_KINDS: readonly GateRunKind[] = ['test', 'baseline', 'nothing'];

export interface GateRun {
  id: number;
  branch: string;
  /** The tree under test. */
  tree: string;
  kind: GateRunKind;
  /** The tested revision of the tree under test (its output ref) when the run started. */
  old: string;
  /** The revision of the tree under test this run tests (= old for a baseline test). */
  new: string;
  /** Every tree's revision the run tests. */
  revisions: Record<string, string>;
  /** The flight made for it (null before it is made, and for `nothing`). */
  flight: string | null;
  /** Flights that reran failing jobs (the heisenbug rule), in order. */
  reruns: string[];
  /** `PID@HOST` of the daily-branch process. */
  runner: string;
  started: Millis;
  /** null while the run is going on. */
  finished: Millis | null;
  /** Its flight ran to the end and was judged: its revisions count as tested. */
  completed: boolean;
  /** `pushed`, `not pushed`, `baseline tested`, `nothing to do`, `error`… (null while going on). */
  outcome: string | null;
  /** One or a few lines for people: why it was (not) pushed. */
  detail: string;
}

export interface NewGateRun {
  branch: string;
  tree: string;
  kind: GateRunKind;
  old: string;
  new: string;
  revisions: Record<string, string>;
  runner: string;
  started?: Millis;
}

export interface GateRunChange {
  flight?: string;
  /** Appended to `reruns`. */
  addRerun?: string;
  completed?: boolean;
  outcome?: string;
  detail?: string;
  /** Ends the run (now when true). */
  finished?: Millis | true;
}

export type PushResult = 'pushed' | 'refused' | 'failed';
export const PUSH_RESULTS: readonly PushResult[] = ['pushed', 'refused', 'failed'];

/** One push the gate tried: a fast-forward of `ref` from `from` to `to`, compare-and-swap on `from`. */
export interface PushRecord {
  id: number;
  branch: string;
  flight: string | null;
  tree: string;
  url: string;
  /** The output branch, e.g. `master`. */
  ref: string;
  from: string;
  to: string;
  /** pushed; refused (the ref moved, or not a fast-forward); failed (git or the remote failed). */
  result: PushResult;
  /** Pushed despite the verdict, because of `osstest branch force-push`. */
  overridden: boolean;
  detail: string;
  at: Millis;
}

export type NewPush = Omit<PushRecord, 'id' | 'at'> & { at?: Millis };
