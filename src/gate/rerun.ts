/**
 * Fewer false blocks: before a failure blocks a push, the gate reruns its job once more, with the
 * same definition (same revisions, same builds) on another equivalent host where there is one. A
 * pass there is OSSTest's heisenbug rule: the failure becomes `pass in <rerun flight>` and no longer
 * blocks.
 *
 * The rerun flight qualifies for judge.ts's heisenbug rule as it stands: it is a flight of the same
 * branch, and its job tested the same revisions (its `*buildjob` runvars name the original flight's
 * builds, whose `built_revision_*` the loader reads), so any later report of the branch that reads it
 * as history sees "passed at the same revisions". The report loader reads only flights older than
 * the one judged, though, so for the flight being gated the gate applies the same rule itself
 * (`applyReruns`), with the same wording and the same overall verdict rules as judge.ts.
 */
import type { Config } from '../config/config.js';
import type { Store } from '../db/store.js';
import type { Runvar, Step } from '../db/types.js';
import { harnessRevision } from '../executor/paths.js';
import type { JobStatus } from '../model/status.js';
import { reportTestid } from '../model/testid.js';
import { isBuildJob } from '../report/history.js';
import { HEADINGS, verdictText } from '../report/judge.js';
import type { Failure, Judgement, Overall } from '../report/types.js';

/** Intended blessing of rerun flights: not `real`, so they never serve as a baseline or a bisection's failure. */
export const RERUN_BLESSING = 'real-retest';

/** A failure worth rerunning: blocking, and about a step (a job-level failure has nothing to pass). */
export function rerunnable(f: Failure): boolean {
  return f.blocking && f.stepno !== undefined && f.verdict !== 'blocked';
}

/** Runvars naming a host by ident (what ts-hosts-allocate writes): `host`, `src_host`, `dst_host`… */
function hostIdent(name: string): boolean {
  return name === 'host' || name.endsWith('_host');
}

function jobRef(v: string, flight: string): { flight: string; job: string } {
  const dot = v.indexOf('.');
  return dot > 0 ? { flight: v.slice(0, dot), job: v.slice(dot + 1) } : { flight, job: v };
}

export interface RerunPin {
  ident: string;
  /** Where the failing run had it. */
  failedOn: string;
  /** Where the rerun is pinned; undefined: no other host qualifies, the allocator picks (maybe the same one). */
  host?: string;
}

export interface RerunJobPlan {
  job: string;
  recipe: string;
  runvars: Record<string, string>;
  pins: RerunPin[];
}

/**
 * The rerun of `job` of `flight`: its definition runvars, with builds of its own flight named as
 * `<flight>.<job>` (the rerun uses the very same build), and each host ident pinned to another host
 * that has every flag the job asks for, preferring hosts of the failing host's `equiv-*` class and
 * free ones, and never two idents on one host.
 */
export async function planRerunJob(
  store: Store,
  config: Config,
  flight: string,
  job: string,
  avoid: ReadonlySet<string> = new Set(),
): Promise<RerunJobPlan> {
  const j = await store.getJob(flight, job);
  if (!j) throw new Error(`flight ${flight} has no job ${job} to rerun`);
  const vars = await store.listRunvars(flight, job);
  const def: Record<string, string> = {};
  for (const r of vars) if (!r.synth) def[r.name] = r.val;
  for (const [name, val] of Object.entries(def)) {
    if (!name.endsWith('buildjob') || val === '') continue;
    const ref = jobRef(val, flight);
    def[name] = `${ref.flight}.${ref.job}`;
  }

  const used: Runvar[] = vars.filter((r) => hostIdent(r.name) && r.val !== '');
  const byIdent = new Map<string, string>();
  for (const r of used) if (r.synth || !byIdent.has(r.name)) byIdent.set(r.name, r.val);
  const hosts = await store.listHosts();
  const busy = new Set((await store.listAllocations()).map((a) => a.host));
  const failedHosts = new Set(byIdent.values());
  const taken = new Set<string>();
  const pins: RerunPin[] = [];
  for (const [ident, failedOn] of [...byIdent].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const want = [...(def.all_hostflags ?? '').split(','), ...(def[`${ident}_hostflags`] ?? '').split(',')]
      .map((f) => f.trim())
      .filter((f) => f !== '');
    const failedFlags = new Set(
      config.hostFlags(failedOn, hosts.find((h) => h.name === failedOn)?.flags ?? []),
    );
    const candidates = hosts
      .filter((h) => !failedHosts.has(h.name) && !avoid.has(h.name) && !taken.has(h.name))
      .map((h) => ({ name: h.name, flags: new Set(config.hostFlags(h.name, h.flags)) }))
      .filter((h) => want.every((f) => h.flags.has(f)))
      .map((h) => ({
        name: h.name,
        // Lower is better: same equivalence class first, then free now.
        rank:
          ([...failedFlags].some((f) => f.startsWith('equiv-') && h.flags.has(f)) ? 0 : 2) +
          (busy.has(h.name) ? 1 : 0),
      }))
      .sort((a, b) => a.rank - b.rank || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const pick = candidates[0]?.name;
    if (pick !== undefined) {
      taken.add(pick);
      def[ident] = pick;
      pins.push({ ident, failedOn, host: pick });
    } else {
      // The job may have been pinned by its definition; left as it was, it reruns where it can.
      pins.push({ ident, failedOn });
    }
  }
  return { job, recipe: j.recipe, runvars: def, pins };
}

/** A new flight of the branch holding the planned reruns; returns its name. */
export async function makeRerunFlight(
  store: Store,
  branch: string,
  plans: readonly RerunJobPlan[],
): Promise<string> {
  const f = await store.createFlight({ branch, intended: RERUN_BLESSING });
  try {
    for (const p of plans) await store.createJob(f.flight, p.job, p.recipe, p.runvars);
    await store.recordHarness(f.flight, harnessRevision());
  } catch (err) {
    await store.deleteFlight(f.flight);
    throw err;
  }
  return f.flight;
}

/** One rerun job as it ended. */
export interface RerunOutcome {
  flight: string;
  job: string;
  status: JobStatus;
  steps: readonly Pick<Step, 'testid' | 'status'>[];
  recipe: string;
}

export async function rerunOutcome(store: Store, flight: string, job: string): Promise<RerunOutcome> {
  const j = await store.getJob(flight, job);
  if (!j) throw new Error(`rerun flight ${flight} has no job ${job}`);
  const steps = await store.listSteps(flight, job);
  return { flight, job, status: j.status, recipe: j.recipe, steps };
}

/** Whether the rerun passed what `f` failed: the same step (report testid) passed; for a build, the job passed. */
export function rerunPassed(f: Pick<Failure, 'job' | 'testid'>, r: RerunOutcome): boolean {
  if (r.job !== f.job) return false;
  if (isBuildJob(r.job, r.recipe) && r.status === 'pass') return true;
  const key = reportTestid(f.testid);
  return r.steps.some((s) => s.status === 'pass' && reportTestid(s.testid) === key);
}

function overallOf(failures: readonly Failure[]): Overall {
  if (failures.length === 0) return 'perfect';
  const blocking = failures.filter((f) => f.blocking);
  if (blocking.some((f) => f.verdict === 'regression')) return 'regressions';
  if (blocking.length > 0) return 'problems';
  return 'tolerable';
}

/**
 * The judgement with the heisenbug rule applied to the reruns: each blocking step failure whose
 * rerun passed becomes `pass in <rerun flight>` (not blocking), and the overall verdict follows.
 * A new judgement; the one given is not changed.
 */
export function applyReruns(j: Judgement, reruns: readonly RerunOutcome[]): Judgement {
  const failures = j.failures.map((f) => {
    if (!rerunnable(f)) return f;
    const passed = reruns.find((r) => rerunPassed(f, r));
    if (passed === undefined) return f;
    const g: Failure = {
      ...f,
      verdict: 'pass in',
      refFlight: passed.flight,
      blocking: false,
      reason: `failing intermittently: passed in flight ${passed.flight} at the same revisions (rerun by the push gate)`,
    };
    g.text = verdictText(g);
    return g;
  });
  const overall = overallOf(failures);
  return {
    ...j,
    failures,
    overall,
    heading: HEADINGS[overall],
    tolerable: overall === 'perfect' || overall === 'tolerable',
  };
}
