/**
 * What both stores share about the push gate's state (migration 20): the checks a change must pass
 * before it is written, and how rows become values. The SQL itself lives in each store.
 */
import { NotFoundError, StoreError } from './errors.js';
import {
  type BranchControl,
  type BranchControlChange,
  GATE_RUN_KINDS,
  type GateRun,
  type GateRunChange,
  type NewGateRun,
  type NewPush,
  PUSH_RESULTS,
  type PushRecord,
} from './gate-types.js';
import { checkFlightName, checkLabel, checkNonEmpty } from './names.js';
import type { Millis } from './types.js';

export const BRANCH_CONTROL_COLS = 'branch, stopped, block_push, force_push, note, updated';
export const GATE_RUN_COLS =
  'id, branch, tree, kind, old_rev, new_rev, revisions, flight, reruns, runner, started, finished, completed, outcome, detail';
export const PUSH_COLS =
  'id, branch, flight, tree, url, ref, from_rev, to_rev, result, overridden, detail, at';

/** sqlite gives 0/1 for booleans, PostgreSQL true/false. */
type DbBool = number | boolean;

export interface BranchControlRow {
  branch: string;
  stopped: DbBool;
  block_push: DbBool;
  force_push: string | null;
  note: string;
  updated: number;
}

export interface GateRunRow {
  id: number;
  branch: string;
  tree: string;
  kind: string;
  old_rev: string;
  new_rev: string;
  revisions: string;
  flight: string | null;
  reruns: string;
  runner: string;
  started: number;
  finished: number | null;
  completed: DbBool;
  outcome: string | null;
  detail: string;
}

export interface PushRow {
  id: number;
  branch: string;
  flight: string | null;
  tree: string;
  url: string;
  ref: string;
  from_rev: string;
  to_rev: string;
  result: string;
  overridden: DbBool;
  detail: string;
  at: number;
}

export function defaultBranchControl(branch: string): BranchControl {
  return { branch, stopped: false, blockPush: false, forcePush: null, note: '', updated: null };
}

export function toBranchControl(r: BranchControlRow): BranchControl {
  return {
    branch: r.branch,
    stopped: Boolean(r.stopped),
    blockPush: Boolean(r.block_push),
    forcePush: r.force_push,
    note: r.note,
    updated: Number(r.updated),
  };
}

function parseJson<T>(text: string, what: string, ok: (v: unknown) => boolean): T {
  try {
    const v = JSON.parse(text) as unknown;
    if (ok(v)) return v as T;
  } catch {
    // fall through to the error below
  }
  throw new StoreError(`gate run ${what} in the database is not what it should be: ${text.slice(0, 80)}`);
}

export function toGateRun(r: GateRunRow): GateRun {
  return {
    id: Number(r.id),
    branch: r.branch,
    tree: r.tree,
    kind: r.kind as GateRun['kind'],
    old: r.old_rev,
    new: r.new_rev,
    revisions: parseJson(r.revisions, 'revisions', (v) => !!v && typeof v === 'object' && !Array.isArray(v)),
    flight: r.flight,
    reruns: parseJson(r.reruns, 'reruns', Array.isArray),
    runner: r.runner,
    started: Number(r.started),
    finished: r.finished === null ? null : Number(r.finished),
    completed: Boolean(r.completed),
    outcome: r.outcome,
    detail: r.detail,
  };
}

export function toPush(r: PushRow): PushRecord {
  return {
    id: Number(r.id),
    branch: r.branch,
    flight: r.flight,
    tree: r.tree,
    url: r.url,
    ref: r.ref,
    from: r.from_rev,
    to: r.to_rev,
    result: r.result as PushRecord['result'],
    overridden: Boolean(r.overridden),
    detail: r.detail,
    at: Number(r.at),
  };
}

/** A revision as the gate records it: text without blanks (a commit id, normally). */
function checkRevision(what: string, rev: unknown): string {
  if (typeof rev !== 'string' || rev === '' || /\s/.test(rev) || rev.length > 200)
    throw new StoreError(`${what} must be a revision (text without blanks), not ${JSON.stringify(rev)}`);
  return rev;
}

function checkText(what: string, v: unknown): string {
  if (typeof v !== 'string') throw new StoreError(`${what} must be text, not ${typeof v}`);
  return v;
}

export function checkTimeValue(what: string, t: Millis | undefined): Millis {
  if (t === undefined) return Date.now();
  if (!Number.isSafeInteger(t) || t < 0)
    throw new StoreError(`${what} must be milliseconds since the epoch, not ${t}`);
  return t;
}

export function checkGateRunId(id: number): number {
  if (!Number.isSafeInteger(id) || id < 1)
    throw new StoreError(`gate run id must be a whole number ≥ 1, not ${id}`);
  return id;
}

export function gateRunNotFound(id: number): NotFoundError {
  return new NotFoundError(`no gate run ${id}`);
}

/** The control's fields after `change`, checked. */
export function applyBranchControlChange(
  cur: BranchControl,
  change: BranchControlChange,
): Omit<BranchControl, 'updated'> {
  const known = new Set(['stopped', 'blockPush', 'forcePush', 'note']);
  for (const k of Object.keys(change)) {
    if (!known.has(k)) throw new StoreError(`branch control has no field ${JSON.stringify(k)}`);
  }
  const next = { ...cur };
  if (change.stopped !== undefined) {
    if (typeof change.stopped !== 'boolean')
      throw new StoreError('branch control stopped must be true or false');
    next.stopped = change.stopped;
  }
  if (change.blockPush !== undefined) {
    if (typeof change.blockPush !== 'boolean')
      throw new StoreError('branch control blockPush must be true or false');
    next.blockPush = change.blockPush;
  }
  if (change.forcePush !== undefined) {
    next.forcePush =
      change.forcePush === null ? null : checkRevision('force-push revision', change.forcePush);
  }
  if (change.note !== undefined) next.note = checkText('branch control note', change.note);
  return {
    branch: next.branch,
    stopped: next.stopped,
    blockPush: next.blockPush,
    forcePush: next.forcePush,
    note: next.note,
  };
}

export interface CheckedGateRun {
  branch: string;
  tree: string;
  kind: GateRun['kind'];
  old: string;
  new: string;
  revisions: string;
  runner: string;
  started: Millis;
}

export function checkNewGateRun(r: NewGateRun): CheckedGateRun {
  checkLabel('branch', r.branch);
  checkNonEmpty('tree', r.tree);
  if (!GATE_RUN_KINDS.includes(r.kind))
    throw new StoreError(
      `invalid gate run kind ${JSON.stringify(r.kind)}: one of ${GATE_RUN_KINDS.join(', ')}`,
    );
  if (!r.revisions || typeof r.revisions !== 'object' || Array.isArray(r.revisions))
    throw new StoreError('gate run revisions must be an object of tree → revision');
  for (const [t, v] of Object.entries(r.revisions)) {
    checkNonEmpty('tree', t);
    checkRevision(`revision of tree ${t}`, v);
  }
  checkNonEmpty('gate runner', r.runner);
  return {
    branch: r.branch,
    tree: r.tree,
    kind: r.kind,
    old: checkRevision('old revision', r.old),
    new: checkRevision('new revision', r.new),
    revisions: JSON.stringify(r.revisions),
    runner: r.runner,
    started: checkTimeValue('start time', r.started),
  };
}

/** The run after `change`, checked; refuses changes to a finished run. */
export function applyGateRunChange(cur: GateRun, change: GateRunChange, now: Millis): GateRun {
  const known = new Set(['flight', 'addRerun', 'completed', 'outcome', 'detail', 'finished']);
  for (const k of Object.keys(change)) {
    if (!known.has(k)) throw new StoreError(`gate run has no field ${JSON.stringify(k)} to change`);
  }
  if (cur.finished !== null)
    throw new StoreError(
      `gate run ${cur.id} of ${cur.branch} has finished (${cur.outcome ?? 'no outcome'}): it cannot change`,
    );
  const next: GateRun = { ...cur, reruns: [...cur.reruns] };
  if (change.flight !== undefined) next.flight = checkFlightName(change.flight);
  if (change.addRerun !== undefined) next.reruns.push(checkFlightName(change.addRerun));
  if (change.completed !== undefined) {
    if (typeof change.completed !== 'boolean')
      throw new StoreError('gate run completed must be true or false');
    next.completed = change.completed;
  }
  if (change.outcome !== undefined) next.outcome = checkNonEmpty('gate run outcome', change.outcome);
  if (change.detail !== undefined) next.detail = checkText('gate run detail', change.detail);
  if (change.finished !== undefined) {
    next.finished = change.finished === true ? now : checkTimeValue('finish time', change.finished);
    if (next.outcome === null) throw new StoreError(`gate run ${cur.id}: a finished run needs an outcome`);
  }
  return next;
}

export interface CheckedPush {
  branch: string;
  flight: string | null;
  tree: string;
  url: string;
  ref: string;
  from: string;
  to: string;
  result: PushRecord['result'];
  overridden: boolean;
  detail: string;
  at: Millis;
}

export function checkNewPush(p: NewPush): CheckedPush {
  checkLabel('branch', p.branch);
  if (p.flight !== null) checkFlightName(p.flight);
  if (!PUSH_RESULTS.includes(p.result))
    throw new StoreError(
      `invalid push result ${JSON.stringify(p.result)}: one of ${PUSH_RESULTS.join(', ')}`,
    );
  if (typeof p.overridden !== 'boolean') throw new StoreError('push overridden must be true or false');
  return {
    branch: p.branch,
    flight: p.flight,
    tree: checkNonEmpty('tree', p.tree),
    url: checkNonEmpty('push URL', p.url),
    ref: checkNonEmpty('pushed ref', p.ref),
    from: checkRevision('push from revision', p.from),
    to: checkRevision('push to revision', p.to),
    result: p.result,
    overridden: p.overridden,
    detail: checkText('push detail', p.detail),
    at: checkTimeValue('push time', p.at),
  };
}

export function checkListLimit(limit: number | undefined): number | undefined {
  if (limit === undefined) return undefined;
  if (!Number.isSafeInteger(limit) || limit < 0)
    throw new StoreError(`limit must be a whole number ≥ 0, not ${limit}`);
  return limit;
}
