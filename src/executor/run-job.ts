/**
 * run-job: interprets a job's recipe. Each step is a child process with its own log; the step's
 * status and the job's follow OSSTEST-BEHAVIOUR §3: a failing step makes the job what the recipe
 * says (broken / blocked / fail), later steps are skipped except `always` ones (log capture),
 * parallel per-host steps run together, broken and aborted stick, `pause_on_<status>` pauses,
 * and an abort (command or `abort` file) stops new steps.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Config } from '../config/config.js';
import type { Store } from '../db/store.js';
import type { Job, Step } from '../db/types.js';
import { isFinalJobStatus, type JobStatus, nextJobStatus, type StepStatus } from '../model/status.js';
import {
  declaredStatusFile,
  hostAllocateWaitSeconds,
  isDeclarableStatus,
} from '../model/testcase-protocol.js';
import { computeTestid, scriptArgs } from '../model/testid.js';
import { harnessRevision } from './paths.js';
import { isParallel, type Recipe, type RecipeStep } from './recipe.js';
import { loadRecipe } from './recipes.js';
import { describeOutcome, spawnTestcase, type TestcaseOutcome } from './spawn-testcase.js';
import { StepLog } from './steplog.js';
import { resolveTestcase } from './testcase-path.js';

export interface StepEvent {
  stepno: number;
  testcase: string;
  testid: string;
}

/** What a terminal display (or a test) is told while a job runs. */
export interface JobObserver {
  jobStatus?(status: JobStatus): void;
  stepStarted?(e: StepEvent): void;
  stepOutput?(e: StepEvent, line: string): void;
  stepFinished?(e: StepEvent, status: StepStatus, detail: string): void;
  skipped?(step: RecipeStep, reason: string): void;
  message?(text: string): void;
}

export interface RunJobOptions {
  store: Store;
  config: Config;
  flight: string;
  job: string;
  recipe?: Recipe;
  observer?: JobObserver;
  /** When the job has already run: start it again from scratch (its steps and outputs are cleared). */
  rerun?: boolean;
  /** Print the steps instead of running them (OSSTEST_SIMULATE). */
  simulate?: boolean;
  env?: NodeJS.ProcessEnv;
  /** Poll interval while paused by pause_on_<status>. */
  pausePollMs?: number;
}

export interface StepResult extends StepEvent {
  status: StepStatus;
  outcome: TestcaseOutcome;
  logPath: string;
}

export interface JobResult {
  flight: string;
  job: string;
  status: JobStatus;
  steps: StepResult[];
}

export class JobStateError extends Error {
  override name = 'JobStateError';
}

/** Per-step log path, relative to Logs: `<flight>/<job>/<stepno>.<testcase>.log`. */
export function stepLogPath(flight: string, job: string, stepno: number, testcase: string): string {
  return join(flight, job, `${stepno}.${testcase}.log`);
}

function readDeclaredStatus(file: string): StepStatus | undefined {
  if (!existsSync(file)) return undefined;
  const v = readFileSync(file, 'utf8').trim();
  rmSync(file, { force: true });
  return isDeclarableStatus(v) ? v : undefined;
}

function globToRegExp(glob: string): RegExp {
  const re = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`);
}

/** `pause_on_<status>` holds globs of script names or testids. */
export function pauseWanted(runvars: Record<string, string>, status: StepStatus, e: StepEvent): boolean {
  const v = runvars[`pause_on_${status}`];
  if (!v) return false;
  return v
    .split(/[\s,]+/)
    .filter((g) => g !== '')
    .some((g) => globToRegExp(g).test(e.testcase) || globToRegExp(g).test(e.testid));
}

function stepTimeoutMs(config: Config, step: RecipeStep, env: NodeJS.ProcessEnv): number {
  // Time spent queueing for a host that another job holds is not the step's own work.
  const wait = step.waitsForHosts ? hostAllocateWaitSeconds(config.int('HostAllocateWait'), env) * 1000 : 0;
  if (step.timeoutSeconds !== undefined) return step.timeoutSeconds * 1000 + wait;
  const key = `StepTimeout_${step.testcase.replace(/^ts-/, '').replace(/[^A-Za-z0-9]/g, '_')}`;
  const specific = config.get(key);
  if (specific !== undefined) return config.int(key) * 1000 + wait;
  return config.int('StepTimeout') * 1000 + wait;
}

export async function runJob(o: RunJobOptions): Promise<JobResult> {
  const { store, config, flight, job } = o;
  const obs = o.observer ?? {};
  const f = await store.getFlight(flight);
  if (!f) throw new JobStateError(`no flight '${flight}'`);
  let j: Job | undefined = await store.getJob(flight, job);
  if (!j) {
    const known = (await store.listJobs(flight)).map((x) => x.job);
    throw new JobStateError(`flight ${flight} has no job '${job}' (jobs: ${known.join(', ') || 'none'})`);
  }
  const recipe = o.recipe ?? (await loadRecipe(j.recipe));
  const runvars = await runvarMap(store, flight, job);
  const items = recipe.steps({ runvars });

  if (o.simulate) {
    simulate(recipe, items, obs, config, { ...process.env, ...o.env });
    return { flight, job, status: j.status, steps: [] };
  }

  if (j.status !== 'queued') {
    if (!isFinalJobStatus(j.status) && !o.rerun) {
      throw new JobStateError(
        `job ${flight}/${job} is ${j.status}: another run-job may be running it (use --rerun if it died)`,
      );
    }
    if (!o.rerun) {
      throw new JobStateError(
        `job ${flight}/${job} has already run (${j.status}); use --rerun to run it again`,
      );
    }
    await store.resetJob(flight, job);
    const kept = keepPreviousRun(config, flight, job);
    obs.message?.(
      `job ${flight}/${job} was ${j.status}: its steps and outputs are cleared for the rerun${kept.length ? ` (previous logs kept in ${kept.join(', ')})` : ''}`,
    );
    j = (await store.getJob(flight, job))!;
  }

  await store.markFlightStarted(flight);
  await store.recordHarness(flight, harnessRevision());
  let status: JobStatus = await store.setJobStatus(flight, job, 'preparing');
  obs.jobStatus?.(status);

  const logsDir = config.path('Logs');
  const cwd = config.baseDir;
  const results: StepResult[] = [];
  let failed = false;
  const abortFile = join(cwd, 'abort');

  const runStep = async (step: RecipeStep): Promise<StepResult> => {
    const args = step.args ?? [];
    const started = await store.startStep(flight, job, {
      testcase: step.testcase,
      testid: (n) => computeTestid(step.testid, step.testcase, args, n),
    });
    const e: StepEvent = { stepno: started.stepno, testcase: step.testcase, testid: started.testid };
    const rel = stepLogPath(flight, job, started.stepno, step.testcase);
    const log = new StepLog(join(logsDir, rel), (line) => obs.stepOutput?.(e, line));
    obs.stepStarted?.(e);
    const timeoutMs = stepTimeoutMs(config, step, { ...process.env, ...o.env });
    const declaredFile = declaredStatusFile(join(logsDir, rel));
    rmSync(declaredFile, { force: true });
    log.line(`osstest: step ${e.stepno} ${step.testcase} ${scriptArgs(args).join(' ')} (testid ${e.testid})`);
    let outcome: TestcaseOutcome;
    try {
      const tc = resolveTestcase(step.testcase, config.optString('TestcasePath'));
      outcome = await spawnTestcase({
        command: tc.command,
        args: [...tc.prefixArgs, ...scriptArgs(args)],
        cwd,
        timeoutMs,
        log,
        env: {
          ...process.env,
          ...o.env,
          OSSTEST_FLIGHT: flight,
          OSSTEST_JOB: job,
          OSSTEST_CONFIG: config.files.join(':'),
          OSSTEST_STEPLOG: join(logsDir, rel),
          OSSTEST_STEPNO: String(e.stepno),
          OSSTEST_TESTID: e.testid,
        },
      });
    } catch (err) {
      outcome = {
        exitCode: null,
        signal: null,
        timedOut: false,
        durationMs: 0,
        spawnError: (err as Error).message,
      };
    }
    const detail = describeOutcome(outcome, timeoutMs);
    let stepStatus: StepStatus;
    if (outcome.exitCode === 0 && !outcome.timedOut) {
      stepStatus = 'pass';
    } else {
      // The testcase may have said itself that the job is broken, blocked or starved; what the job already
      // was because of earlier steps says nothing about this step.
      stepStatus = readDeclaredStatus(declaredFile) ?? step.onFailure;
    }
    await log.close(`osstest: ${detail}: step ${stepStatus}`);
    await store.finishStep(flight, job, e.stepno, { status: stepStatus, logPath: rel });
    obs.stepFinished?.(e, stepStatus, detail);
    return { ...e, status: stepStatus, outcome, logPath: rel };
  };

  const aborted = async (): Promise<boolean> =>
    existsSync(abortFile) || (await store.getJob(flight, job))?.status === 'aborted';

  try {
    for (const item of items) {
      const steps = isParallel(item) ? item.parallel : [item];
      const runnable = steps.filter((s) => !failed || s.always);
      for (const s of steps) if (!runnable.includes(s)) obs.skipped?.(s, 'an earlier step failed');
      if (runnable.length === 0) continue;
      if (await aborted()) {
        status = await store.setJobStatus(flight, job, 'aborted');
        obs.message?.(`job ${flight}/${job} aborted: no further steps`);
        failed = true;
        break;
      }
      const done = await Promise.all(runnable.map(runStep));
      results.push(...done);
      for (const [i, r] of done.entries()) {
        const step = runnable[i]!;
        if (r.status === 'pass') {
          if (step.marksRunning && !failed && status === 'preparing') {
            status = await store.setJobStatus(flight, job, 'running');
            obs.jobStatus?.(status);
          }
        } else {
          failed = true;
          status = await store.setJobStatus(flight, job, nextJobStatus(status, r.status as JobStatus));
          obs.jobStatus?.(status);
        }
        if (pauseWanted(await runvarMap(store, flight, job), r.status, r)) {
          await pause(logsDir, flight, job, r, store, obs, o.pausePollMs ?? 1000);
        }
      }
    }
    if (!failed) status = await store.setJobStatus(flight, job, 'pass');
    else status = (await store.getJob(flight, job))!.status;
  } catch (err) {
    // The harness itself went wrong: the job says so rather than staying `running` for ever.
    status = await store.setJobStatus(flight, job, 'broken');
    throw err;
  } finally {
    await store.releaseJobHosts(flight, job);
  }
  obs.jobStatus?.(status);
  return { flight, job, status, steps: results };
}

/** A rerun starts with empty log and stash directories; the previous run's are moved aside, not lost. */
function keepPreviousRun(config: Config, flight: string, job: string): string[] {
  const kept: string[] = [];
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  for (const base of new Set([config.path('Logs'), config.path('Stash')])) {
    const dir = join(base, flight, job);
    if (!existsSync(dir)) continue;
    const to = join(base, flight, 'previous-runs', `${job}-${stamp}`);
    mkdirSync(dirname(to), { recursive: true });
    renameSync(dir, to);
    kept.push(to);
  }
  return kept;
}

async function runvarMap(store: Store, flight: string, job: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const r of await store.listRunvars(flight, job)) out[r.name] = r.val;
  return out;
}

async function pause(
  logsDir: string,
  flight: string,
  job: string,
  e: StepEvent,
  store: Store,
  obs: JobObserver,
  pollMs: number,
): Promise<void> {
  const cont = join(logsDir, flight, job, 'continue');
  obs.message?.(
    `paused after step ${e.stepno} (${e.testid}) as pause_on_* asks: create ${cont} to continue, or osstest abort ${flight} ${job}`,
  );
  for (;;) {
    if (existsSync(cont)) break;
    const s = (await store.getJob(flight, job))?.status;
    if (s === 'aborted') break;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

function simulate(
  recipe: Recipe,
  items: ReturnType<Recipe['steps']>,
  obs: JobObserver,
  config: Config,
  env: NodeJS.ProcessEnv,
): void {
  obs.message?.(`recipe ${recipe.name}: ${recipe.description}`);
  let n = 0;
  for (const item of items) {
    const steps = isParallel(item) ? item.parallel : [item];
    const par = steps.length > 1 ? ' (in parallel)' : '';
    for (const s of steps) {
      n += 1;
      const args = s.args ?? [];
      const tid = computeTestid(s.testid, s.testcase, args, n);
      const flags = [
        `on failure: ${s.onFailure}`,
        s.always ? 'always' : '',
        `timeout ${stepTimeoutMs(config, s, env) / 1000}s`,
      ]
        .filter((x) => x !== '')
        .join(', ');
      obs.message?.(`  ${n}. ${s.testcase} ${scriptArgs(args).join(' ')}  [${tid}]  (${flags})${par}`);
    }
  }
}

export type { Step };
