/**
 * Adjusting a flight before it runs (OSSTest's cs-adjust-flight): copy jobs from another flight and
 * set, delete or change definition runvars picked by name globs.
 *
 * Every operation is checked and worked out first, against a copy of the flight in memory, each seeing
 * what the ones before it did; only when all of them make sense is anything written. The result is a
 * plan (jobs to create, runvars to set and delete) that `--dry-run` prints instead of applying.
 *
 * Changing a flight's intended blessing or branch is part of OSSTest's tool but not here: the store
 * has no way to change either once the flight exists.
 */
import { FrozenError } from '../db/errors.js';
import { checkRunvarName } from '../db/names.js';
import type { Store } from '../db/store.js';
import { type NameGlob, nameGlob } from '../model/glob.js';

export type AdjustOp =
  | { op: 'copy-jobs'; from: string; jobs: NameGlob[] }
  | { op: 'set'; jobs: NameGlob; assign: [string, string][] }
  | { op: 'del'; jobs: NameGlob; names: NameGlob[] }
  | { op: 'change'; jobs: NameGlob; names: NameGlob; from: string; to: string };

export const ADJUST_OPS = ['copy-jobs', 'set', 'del', 'change'] as const;

/** A bad operation list; the message names the operation (by number and word) it is about. */
export class AdjustError extends Error {
  override name = 'AdjustError';
}

export const ADJUST_SYNTAX = [
  'copy-jobs SRCFLIGHT JOBGLOB…      copy jobs (recipe and definition runvars) from another flight',
  'set JOBGLOB NAME=VALUE…           set definition runvars',
  'del JOBGLOB NAMEGLOB…             delete definition runvars',
  'change JOBGLOB NAMEGLOB FROM TO   replace FROM by TO in the values of those runvars',
];

function isOpWord(w: string): boolean {
  return (ADJUST_OPS as readonly string[]).includes(w);
}

/**
 * Splits the words after FLIGHT into operations. A list (`JOBGLOB…`, `NAME=VALUE…`, `NAMEGLOB…`) runs
 * until the next operation word; `change` takes exactly four words, so FROM and TO may be anything.
 */
export function parseAdjustOps(words: readonly string[]): AdjustOp[] {
  const ops: AdjustOp[] = [];
  let i = 0;
  while (i < words.length) {
    const word = words[i]!;
    const n = ops.length + 1;
    const where = `operation ${n} (${word})`;
    if (!isOpWord(word)) {
      throw new AdjustError(
        `operation ${n}: '${word}' is not an operation (one of ${ADJUST_OPS.join(', ')})`,
      );
    }
    i++;
    const list = (): string[] => {
      const out: string[] = [];
      while (i < words.length && !isOpWord(words[i]!)) out.push(words[i++]!);
      return out;
    };
    const glob = (text: string | undefined, what: string): NameGlob => {
      if (text === undefined || isOpWord(text)) throw new AdjustError(`${where}: ${what} is missing`);
      try {
        return nameGlob(text);
      } catch (e) {
        throw new AdjustError(`${where}: ${(e as Error).message}`);
      }
    };
    switch (word) {
      case 'copy-jobs': {
        const from = words[i];
        if (from === undefined || isOpWord(from)) throw new AdjustError(`${where}: SRCFLIGHT is missing`);
        i++;
        const globs = list();
        if (globs.length === 0) throw new AdjustError(`${where}: no JOBGLOB after ${from}`);
        ops.push({ op: 'copy-jobs', from, jobs: globs.map((g) => glob(g, 'JOBGLOB')) });
        break;
      }
      case 'set': {
        const jobs = glob(words[i++], 'JOBGLOB');
        const assign = list().map((w): [string, string] => {
          const eq = w.indexOf('=');
          if (eq <= 0) {
            throw new AdjustError(
              `${where}: '${w}' is not NAME=VALUE, nor an operation (${ADJUST_OPS.join(', ')})`,
            );
          }
          const name = w.slice(0, eq);
          try {
            checkRunvarName(name);
          } catch (e) {
            throw new AdjustError(`${where}: ${(e as Error).message}`);
          }
          return [name, w.slice(eq + 1)];
        });
        if (assign.length === 0) throw new AdjustError(`${where}: no NAME=VALUE after ${jobs.text}`);
        ops.push({ op: 'set', jobs, assign });
        break;
      }
      case 'del': {
        const jobs = glob(words[i++], 'JOBGLOB');
        const names = list();
        if (names.length === 0) throw new AdjustError(`${where}: no NAMEGLOB after ${jobs.text}`);
        ops.push({ op: 'del', jobs, names: names.map((g) => glob(g, 'NAMEGLOB')) });
        break;
      }
      case 'change': {
        const jobs = glob(words[i], 'JOBGLOB');
        const names = glob(words[i + 1], 'NAMEGLOB');
        const from = words[i + 2];
        const to = words[i + 3];
        if (from === undefined || to === undefined)
          throw new AdjustError(`${where}: expected JOBGLOB NAMEGLOB FROM TO`);
        if (from === '') throw new AdjustError(`${where}: FROM is empty (there is nothing to replace)`);
        i += 4;
        ops.push({ op: 'change', jobs, names, from, to });
        break;
      }
    }
  }
  if (ops.length === 0) throw new AdjustError('no operations given');
  return ops;
}

/** A job of the flight as the plan sees it: its definition runvars only. */
interface ModelJob {
  recipe: string;
  runvars: Map<string, string>;
  /** Set for a job the plan creates: the flight it was copied from. */
  copiedFrom?: string;
}

export interface AdjustPlan {
  flight: string;
  createJobs: { job: string; recipe: string; from: string; runvars: Record<string, string> }[];
  /** `old` is null for a runvar that did not exist. */
  set: { job: string; name: string; old: string | null; val: string }[];
  delete: { job: string; name: string; old: string }[];
  /** `*buildjob` runvars of copied jobs that now name the source flight's job (see planAdjust). */
  rewritten: { job: string; name: string; old: string; val: string }[];
  /** Operations that matched jobs but changed nothing, said so the user can see a typo. */
  notes: string[];
}

export function planIsEmpty(p: AdjustPlan): boolean {
  return p.createJobs.length + p.set.length + p.delete.length === 0;
}

async function loadModel(store: Store, flight: string): Promise<Map<string, ModelJob>> {
  const jobs = new Map<string, ModelJob>();
  for (const j of await store.listJobs(flight)) jobs.set(j.job, { recipe: j.recipe, runvars: new Map() });
  for (const r of await store.listRunvars(flight)) {
    if (!r.synth) jobs.get(r.job)?.runvars.set(r.name, r.val);
  }
  return jobs;
}

/**
 * Works out what the operations would do to FLIGHT, reading the store only. Throws AdjustError for an
 * operation that cannot apply (a glob matching no job, a job copied over an existing one, an unknown
 * source flight) and FrozenError when the flight is no longer constructing.
 *
 * A copied job's `*buildjob` runvar that names a job of its own flight (`build-amd64`) would dangle if
 * that job does not end up in this flight; such values are rewritten to name the source flight's job
 * (`SRC.build-amd64`), so copied tests reuse the builds they were made with.
 */
export async function planAdjust(
  store: Store,
  flight: string,
  ops: readonly AdjustOp[],
): Promise<AdjustPlan> {
  const f = await store.getFlight(flight);
  if (!f) throw new AdjustError(`no flight '${flight}'`);
  if (f.blessing !== 'constructing') {
    throw new FrozenError(
      `flight ${flight} is ${f.blessing}: its definition is frozen; adjust changes jobs and definition runvars only while a flight is constructing`,
    );
  }
  const before = await loadModel(store, flight);
  const model = new Map<string, ModelJob>(
    [...before].map(([k, v]) => [k, { recipe: v.recipe, runvars: new Map(v.runvars) }]),
  );
  const sources = new Map<string, Map<string, ModelJob>>();
  const notes: string[] = [];

  const pick = (where: string, g: NameGlob): string[] => {
    const names = [...model.keys()].filter((j) => g.test(j)).sort();
    if (names.length === 0) {
      const known = [...model.keys()].sort();
      throw new AdjustError(
        `${where}: no job of flight ${flight} matches '${g.text}' (its jobs: ${known.join(' ') || 'none'})`,
      );
    }
    return names;
  };

  for (const [k, op] of ops.entries()) {
    const where = `operation ${k + 1} (${op.op})`;
    switch (op.op) {
      case 'copy-jobs': {
        let src = sources.get(op.from);
        if (!src) {
          if (!(await store.getFlight(op.from))) throw new AdjustError(`${where}: no flight '${op.from}'`);
          src = await loadModel(store, op.from);
          sources.set(op.from, src);
        }
        const srcJobs = src;
        for (const g of op.jobs) {
          const names = [...srcJobs.keys()].filter((j) => g.test(j)).sort();
          if (names.length === 0) {
            throw new AdjustError(
              `${where}: no job of flight ${op.from} matches '${g.text}' (its jobs: ${[...srcJobs.keys()].sort().join(' ') || 'none'})`,
            );
          }
          for (const j of names) {
            if (model.has(j)) {
              throw new AdjustError(
                `${where}: flight ${flight} already has a job '${j}' (copy-jobs adds jobs; it does not replace them)`,
              );
            }
            const s = srcJobs.get(j)!;
            model.set(j, { recipe: s.recipe, runvars: new Map(s.runvars), copiedFrom: op.from });
          }
        }
        break;
      }
      case 'set':
        for (const j of pick(where, op.jobs)) {
          for (const [n, v] of op.assign) model.get(j)!.runvars.set(n, v);
        }
        break;
      case 'del': {
        let n = 0;
        for (const j of pick(where, op.jobs)) {
          const rv = model.get(j)!.runvars;
          for (const name of [...rv.keys()]) {
            if (op.names.some((g) => g.test(name))) {
              rv.delete(name);
              n++;
            }
          }
        }
        if (n === 0)
          notes.push(`${where}: no runvar matching ${op.names.map((g) => g.text).join(' ')} to delete`);
        break;
      }
      case 'change': {
        let n = 0;
        for (const j of pick(where, op.jobs)) {
          const rv = model.get(j)!.runvars;
          for (const [name, val] of rv) {
            if (!op.names.test(name) || !val.includes(op.from)) continue;
            rv.set(name, val.split(op.from).join(op.to));
            n++;
          }
        }
        if (n === 0) notes.push(`${where}: no ${op.names.text} runvar holds '${op.from}'`);
        break;
      }
    }
  }

  const rewritten: AdjustPlan['rewritten'] = [];
  for (const [job, m] of model) {
    if (m.copiedFrom === undefined) continue;
    const src = sources.get(m.copiedFrom)!;
    for (const [name, val] of m.runvars) {
      if (!name.endsWith('buildjob') || val.indexOf('.') > 0) continue;
      if (model.has(val) || !src.has(val)) continue;
      const to = `${m.copiedFrom}.${val}`;
      m.runvars.set(name, to);
      rewritten.push({ job, name, old: val, val: to });
    }
  }

  const plan: AdjustPlan = { flight, createJobs: [], set: [], delete: [], rewritten, notes };
  for (const [job, m] of [...model].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const old = before.get(job);
    if (!old) {
      plan.createJobs.push({
        job,
        recipe: m.recipe,
        from: m.copiedFrom!,
        runvars: Object.fromEntries([...m.runvars].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
      });
      continue;
    }
    for (const name of [...new Set([...old.runvars.keys(), ...m.runvars.keys()])].sort()) {
      const was = old.runvars.get(name);
      const now = m.runvars.get(name);
      if (now === undefined && was !== undefined) plan.delete.push({ job, name, old: was });
      else if (now !== undefined && now !== was) plan.set.push({ job, name, old: was ?? null, val: now });
    }
  }
  return plan;
}

/** Writes a plan: new jobs with all their runvars at once, then each runvar set and delete. */
export async function applyAdjust(store: Store, plan: AdjustPlan): Promise<void> {
  for (const c of plan.createJobs) await store.createJob(plan.flight, c.job, c.recipe, c.runvars);
  for (const d of plan.delete) await store.deleteRunvar(plan.flight, d.job, d.name, { synth: false });
  for (const s of plan.set) await store.setRunvar(plan.flight, s.job, s.name, s.val, { synth: false });
}
