/**
 * What both stores share about bisections (migration 30): the checks a change must pass before it
 * is written, and how a row becomes a Bisection. The SQL itself lives in each store.
 */
import { NotFoundError, StoreError } from './errors.js';
import { checkFlightName, checkJobName, checkLabel, checkNonEmpty } from './names.js';
import type {
  Bisection,
  BisectionFlight,
  BisectionFlightRole,
  BisectionResult,
  BisectionState,
  BisectionUpdate,
  Millis,
} from './types.js';

export const BISECTION_STATES: readonly BisectionState[] = ['pending', 'running', 'done'];
export const BISECTION_RESULTS: readonly BisectionResult[] = ['pass', 'fail', 'blocked', 'broken'];
export const BISECTION_ROLES: readonly BisectionFlightRole[] = ['failure', 'basis', 'test', 'verify'];
/** §5's verdict codes (0, "testing", is never stored: it is not a verdict). */
export const BISECTION_CODES: readonly number[] = [4, 8, 12, 16, 32];

export const BISECTION_COLS =
  'id, branch, job, testid, requested_flight, state, failure_flight, basis_flight, failure_tuple, basis_tuple, trees, hosts, parallel, code, wording, detail, culprit_tree, culprit_rev, culprit_parents, confidence, confirmed, created, started, finished';
export const BISECTION_FLIGHT_COLS = 'bisection, flight, role, tuple, reason, result, at, added';

export interface BisectionRow {
  id: number;
  branch: string;
  job: string;
  testid: string;
  requested_flight: string | null;
  state: string;
  failure_flight: string | null;
  basis_flight: string | null;
  failure_tuple: string | null;
  basis_tuple: string | null;
  trees: string;
  hosts: string;
  parallel: number | null;
  code: number | null;
  wording: string | null;
  detail: string | null;
  culprit_tree: string | null;
  culprit_rev: string | null;
  culprit_parents: string | null;
  confidence: number | null;
  /** sqlite: 0/1; PostgreSQL: boolean. */
  confirmed: number | boolean | null;
  created: number;
  started: number | null;
  finished: number | null;
}

export interface BisectionFlightRow {
  bisection: number;
  flight: string;
  role: string;
  tuple: string;
  reason: string | null;
  result: string | null;
  at: number | null;
  added: number;
}

function parseMap(text: string, what: string): Record<string, string> {
  try {
    const v = JSON.parse(text) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, string>;
  } catch {
    // fall through to the error below
  }
  throw new StoreError(`bisection ${what} in the database is not a JSON object: ${text.slice(0, 80)}`);
}

export function toBisection(r: BisectionRow): Bisection {
  return {
    id: Number(r.id),
    branch: r.branch,
    job: r.job,
    testid: r.testid,
    requestedFlight: r.requested_flight,
    state: r.state as BisectionState,
    failureFlight: r.failure_flight,
    basisFlight: r.basis_flight,
    failureTuple: r.failure_tuple,
    basisTuple: r.basis_tuple,
    trees: parseMap(r.trees, 'trees'),
    hosts: parseMap(r.hosts, 'hosts'),
    parallel: r.parallel === null ? null : Number(r.parallel),
    code: r.code === null ? null : Number(r.code),
    wording: r.wording,
    detail: r.detail,
    culpritTree: r.culprit_tree,
    culpritRev: r.culprit_rev,
    culpritParents: r.culprit_parents ? r.culprit_parents.split(' ') : [],
    confidence: r.confidence === null ? null : Number(r.confidence),
    confirmed: r.confirmed === null ? null : Boolean(r.confirmed),
    created: Number(r.created),
    started: r.started === null ? null : Number(r.started),
    finished: r.finished === null ? null : Number(r.finished),
  };
}

export function toBisectionFlight(r: BisectionFlightRow): BisectionFlight {
  return {
    bisection: Number(r.bisection),
    flight: r.flight,
    role: r.role as BisectionFlightRole,
    tuple: r.tuple,
    reason: r.reason,
    result: r.result as BisectionResult | null,
    at: r.at === null ? null : Number(r.at),
    added: Number(r.added),
  };
}

export function checkBisectionId(id: number): number {
  if (!Number.isSafeInteger(id) || id < 1)
    throw new StoreError(`bisection id must be a whole number ≥ 1, not ${id}`);
  return id;
}

export function bisectionNotFound(id: number): NotFoundError {
  return new NotFoundError(`no bisection ${id}`);
}

export function checkBisectionKey(b: { branch: string; job: string; testid: string }): void {
  checkLabel('branch', b.branch);
  checkJobName(b.job);
  checkNonEmpty('testid', b.testid);
}

function checkTimeOrNull(what: string, t: unknown): void {
  if (t === null) return;
  if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0)
    throw new StoreError(`${what} must be milliseconds since the epoch, not ${String(t)}`);
}

function checkMap(what: string, m: unknown): string {
  if (!m || typeof m !== 'object' || Array.isArray(m))
    throw new StoreError(`bisection ${what} must be an object of names to text`);
  for (const [k, v] of Object.entries(m)) {
    if (k === '' || typeof v !== 'string')
      throw new StoreError(`bisection ${what}: ${JSON.stringify(k)} must map to text`);
  }
  return JSON.stringify(m);
}

function textOrNull(what: string, v: unknown): string | null {
  if (v === null) return null;
  if (typeof v !== 'string' || v === '') throw new StoreError(`bisection ${what} must be text or null`);
  return v;
}

/**
 * The columns a patch sets, checked, as [column, value] in a fixed order; `confirmed` as a
 * boolean (each store turns it into its own kind).
 */
export function bisectionUpdateColumns(patch: BisectionUpdate): Array<[string, unknown]> {
  const out: Array<[string, unknown]> = [];
  const p = patch as Record<string, unknown>;
  const known = new Set([
    'state',
    'failureFlight',
    'basisFlight',
    'failureTuple',
    'basisTuple',
    'trees',
    'hosts',
    'parallel',
    'code',
    'wording',
    'detail',
    'culpritTree',
    'culpritRev',
    'culpritParents',
    'confidence',
    'confirmed',
    'started',
    'finished',
  ]);
  for (const k of Object.keys(p)) {
    if (!known.has(k)) throw new StoreError(`bisection has no field ${JSON.stringify(k)} to update`);
  }
  const has = (k: keyof BisectionUpdate) => p[k] !== undefined;
  if (has('state')) {
    if (!BISECTION_STATES.includes(p.state as BisectionState))
      throw new StoreError(`invalid bisection state ${JSON.stringify(p.state)}`);
    out.push(['state', p.state]);
  }
  for (const [k, col] of [
    ['failureFlight', 'failure_flight'],
    ['basisFlight', 'basis_flight'],
  ] as const) {
    if (!has(k)) continue;
    if (p[k] !== null) checkFlightName(p[k] as string);
    out.push([col, p[k]]);
  }
  for (const [k, col] of [
    ['failureTuple', 'failure_tuple'],
    ['basisTuple', 'basis_tuple'],
    ['wording', 'wording'],
    ['detail', 'detail'],
    ['culpritTree', 'culprit_tree'],
    ['culpritRev', 'culprit_rev'],
  ] as const) {
    if (has(k)) out.push([col, textOrNull(k, p[k])]);
  }
  if (has('trees')) out.push(['trees', checkMap('trees', p.trees)]);
  if (has('hosts')) out.push(['hosts', checkMap('hosts', p.hosts)]);
  if (has('parallel')) {
    const k = p.parallel;
    if (k !== null && (typeof k !== 'number' || !Number.isSafeInteger(k) || k < 1))
      throw new StoreError(`bisection parallel must be a whole number ≥ 1, not ${String(k)}`);
    out.push(['parallel', k]);
  }
  if (has('code')) {
    if (p.code !== null && !BISECTION_CODES.includes(p.code as number))
      throw new StoreError(
        `bisection code must be one of ${BISECTION_CODES.join(', ')}, not ${String(p.code)}`,
      );
    out.push(['code', p.code]);
  }
  if (has('culpritParents')) {
    const ps = p.culpritParents;
    if (!Array.isArray(ps) || ps.some((x) => typeof x !== 'string' || x === '' || /\s/.test(x)))
      throw new StoreError('bisection culpritParents must be revisions (text without spaces)');
    out.push(['culprit_parents', ps.length === 0 ? null : ps.join(' ')]);
  }
  if (has('confidence')) {
    const c = p.confidence;
    if (c !== null && (typeof c !== 'number' || !(c >= 0 && c <= 1)))
      throw new StoreError(`bisection confidence must be between 0 and 1, not ${String(c)}`);
    out.push(['confidence', c]);
  }
  if (has('confirmed')) {
    if (p.confirmed !== null && typeof p.confirmed !== 'boolean')
      throw new StoreError('bisection confirmed must be true, false or null');
    out.push(['confirmed', p.confirmed]);
  }
  for (const k of ['started', 'finished'] as const) {
    if (!has(k)) continue;
    checkTimeOrNull(`bisection ${k}`, p[k]);
    out.push([k, p[k]]);
  }
  return out;
}

export interface CheckedBisectionFlight {
  flight: string;
  role: BisectionFlightRole;
  tuple: string;
  reason: string | null;
  result: BisectionResult | null;
  at: Millis | null;
}

export function checkBisectionFlight(f: {
  flight: string;
  role: BisectionFlightRole;
  tuple: string;
  reason?: string | null;
  result?: BisectionResult | null;
  at?: Millis | null;
}): CheckedBisectionFlight {
  checkFlightName(f.flight);
  if (!BISECTION_ROLES.includes(f.role))
    throw new StoreError(`invalid bisection flight role ${JSON.stringify(f.role)}`);
  checkNonEmpty('tuple', f.tuple);
  const result = f.result ?? null;
  if (result !== null) checkBisectionResult(result);
  const at = f.at ?? null;
  checkTimeOrNull('result time', at);
  return {
    flight: f.flight,
    role: f.role,
    tuple: f.tuple,
    reason: textOrNull('reason', f.reason ?? null),
    result,
    at,
  };
}

export function checkBisectionResult(result: string): BisectionResult {
  if (!BISECTION_RESULTS.includes(result as BisectionResult))
    throw new StoreError(
      `invalid bisection result ${JSON.stringify(result)}: one of ${BISECTION_RESULTS.join(', ')}`,
    );
  return result as BisectionResult;
}

export function checkBisectionListLimit(limit: number | undefined): number | undefined {
  if (limit === undefined) return undefined;
  if (!Number.isSafeInteger(limit) || limit < 0)
    throw new StoreError(`limit must be a whole number ≥ 0, not ${limit}`);
  return limit;
}

export function checkState(state: string | undefined): void {
  if (state !== undefined && !BISECTION_STATES.includes(state as BisectionState))
    throw new StoreError(`invalid bisection state ${JSON.stringify(state)}`);
}
