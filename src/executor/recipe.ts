/**
 * Recipes: what a job does. A recipe names the host idents the job needs and its steps, in order;
 * a group of steps may run in parallel (one per host). Each step says what its failure makes of the
 * job (OSSTEST-BEHAVIOUR §3): `broken` for host preparation, `blocked` for a missing build, `fail`
 * for the test proper. Steps marked `always` (log capture) run even after a failure.
 */
import type { FailureStatus } from '../model/status.js';

export interface RecipeStep {
  /** Script name, `ts-NAME`. */
  testcase: string;
  /** Arguments; those before a `+` also name the testid (model/testid). */
  args?: string[];
  /** Testid spec: `=` (default), `=SFX`, `*`, or literal. */
  testid?: string;
  onFailure: FailureStatus;
  /** Run even when an earlier step failed (log capture). */
  always?: boolean;
  /** Overrides the configured StepTimeout / StepTimeout_<testcase>. */
  timeoutSeconds?: number;
  /** Once this step passes the job counts as `running` (after host allocation). */
  marksRunning?: boolean;
  /**
   * The step may queue for hosts held by other jobs (ts-hosts-allocate): its timeout is extended by
   * the allocation wait (HostAllocateWait, or OSSTEST_HOST_ALLOCATE_WAIT as execute-flight sets it).
   */
  waitsForHosts?: boolean;
}

export interface ParallelSteps {
  parallel: RecipeStep[];
}

export type RecipeItem = RecipeStep | ParallelSteps;

export interface RecipeContext {
  /** The job's runvars (definition and any execution ones already written). */
  runvars: Readonly<Record<string, string>>;
}

export interface Recipe {
  name: string;
  description: string;
  /** Host idents the job allocates (`host`; `src_host` + `dst_host` for pairs). */
  hostIdents(ctx: RecipeContext): string[];
  steps(ctx: RecipeContext): RecipeItem[];
}

export function isParallel(item: RecipeItem): item is ParallelSteps {
  return (item as ParallelSteps).parallel !== undefined;
}

/** The same step for each host ident, run in parallel (one testid per host via the ident argument). */
export function perHost(idents: readonly string[], make: (ident: string) => RecipeStep): RecipeItem {
  if (idents.length === 1) return make(idents[0]!);
  return { parallel: idents.map(make) };
}

export function flattenSteps(items: readonly RecipeItem[]): RecipeStep[] {
  return items.flatMap((i) => (isParallel(i) ? i.parallel : [i]));
}

/**
 * Arguments naming a host ident: in a one-host job the ident stays out of the testid (`build`),
 * in a several-host job it is part of it (`install-dist/src_host`), as OSSTest's testids are.
 */
export function identArgs(idents: readonly string[], ident: string, ...rest: string[]): string[] {
  return idents.length > 1 ? [ident, '+', ...rest] : ['+', ident, ...rest];
}

/** The job's host idents: `hosts` runvar (space separated) when the flight says, else the default. */
export function hostIdentsFrom(runvars: Readonly<Record<string, string>>, dflt: string[]): string[] {
  const v = runvars.host_idents;
  return v ? v.split(/[\s,]+/).filter((x) => x !== '') : dflt;
}
