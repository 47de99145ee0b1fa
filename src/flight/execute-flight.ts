/**
 * execute-flight: runs every queued job of a flight, each as soon as the jobs it depends on have
 * settled, several at once (OSSTEST-BEHAVIOUR §2, sg-execute-flight).
 *
 * - A job depends on the jobs of the same flight that its `*buildjob` runvars name. It starts when
 *   they have a final status, whatever it is: a job whose build failed still runs and its
 *   build-check makes it `blocked`. References to other flights (`flight.job`) are not waited for.
 * - Each job runs as its own `osstest run-job FLIGHT JOB` process, detached in its own process group,
 *   stdin closed, output appended to `<Logs>/<flight>/<job>/run-job.log`. Runners are not tied to
 *   this process's pipes, so if execute-flight itself is killed they still finish their jobs.
 * - Jobs never share a host: contention is resolved by ts-hosts-allocate waiting up to FlightHostWait
 *   (handed on as OSSTEST_HOST_ALLOCATE_WAIT); a job that waits longer ends `starved`.
 * - A runner that exits leaving its job unfinished (queued/preparing/running) makes the job `broken`;
 *   its leftover testcases are killed, its running steps closed and its hosts released.
 * - An abort (SIGINT/SIGTERM in the CLI) marks the running jobs `aborted`, stops their runners and
 *   testcases, releases their hosts; jobs not yet started stay queued for a later execute-flight.
 * - At the end the flight gets its blessing (by default its intended one).
 *
 * There is no daemon to ask whether a flight is being executed, so the state says it: each job
 * execute-flight takes on gets an execution runvar `executed_by` = `PID@HOST`, and each started job
 * `runner` = `PID@HOST` of its runner. A live claim, or a job that is preparing/running under a live
 * (or unknown) runner, means someone else is executing the flight; a claim or runner whose process
 * is gone from this host is stale and is taken over (the dead runner's job ends broken). A flight
 * whose blessing is final has finished and is refused.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, closeSync, mkdirSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import type { Config } from '../config/config.js';
import type { Store } from '../db/store.js';
import type { Job, Millis, Runvar } from '../db/types.js';
import { harnessRoot } from '../executor/paths.js';
import { stepLogPath } from '../executor/run-job.js';
import { isFinalJobStatus, type JobStatus, type StepStatus } from '../model/status.js';
import { HOST_ALLOCATE_WAIT_ENV, logStamp } from '../model/testcase-protocol.js';

/** The environment variable that marks every process a runner starts, so leftovers can be found. */
export const RUNNER_TOKEN_ENV = 'OSSTEST_RUNNER_TOKEN';
/** Execution runvar: which execute-flight (`PID@HOST`) has taken the job on. */
export const CLAIM_RUNVAR = 'executed_by';
/** Execution runvar: the job's runner process (`PID@HOST`). */
export const RUNNER_RUNVAR = 'runner';

export interface FlightJobView {
  job: string;
  recipe: string;
  status: JobStatus;
  /** waiting: for the jobs it depends on or a free slot; running: its runner is alive; done. */
  phase: 'waiting' | 'running' | 'done';
  /** Jobs of this flight it waits for that have not settled yet. */
  waitingFor: string[];
  pid?: number;
  started?: Millis;
  finished?: Millis;
  /** Its latest step. */
  step?: { stepno: number; testid: string; status: StepStatus };
}

/** What a display (or a test) is told while the flight runs. */
export interface FlightObserver {
  /** The whole flight, about once a second and after every start and end of a job. */
  update?(jobs: readonly FlightJobView[]): void;
  jobStarted?(job: string, pid: number): void;
  jobFinished?(job: string, status: JobStatus, detail: string): void;
  message?(text: string): void;
}

export interface ExecuteFlightOptions {
  store: Store;
  config: Config;
  flight: string;
  /** Most runners at once; default config FlightMaxParallel. */
  maxParallel?: number;
  observer?: FlightObserver;
  /** Added to the runners' environment. */
  env?: NodeJS.ProcessEnv;
  /** Stops the flight: running jobs end aborted, jobs not started stay queued. */
  signal?: AbortSignal;
  /** The blessing the flight gets at the end; default its intended blessing. */
  blessing?: string;
  /** Between SIGTERM and SIGKILL when stopping a runner. */
  killGraceMs?: number;
  /** How often the observer's update is called. */
  pollMs?: number;
}

export interface ExecuteFlightResult {
  flight: string;
  /** The flight's blessing afterwards (still `running` when interrupted). */
  blessing: string;
  jobs: { job: string; status: JobStatus }[];
  /** Set when an abort stopped the flight before its end: the abort's reason (e.g. SIGINT). */
  interrupted?: string;
}

/** The flight cannot be executed now (finished, being executed, or ill-defined); nothing was changed. */
export class ExecuteFlightError extends Error {
  override name = 'ExecuteFlightError';
}

interface ProcessRef {
  pid: number;
  host: string;
}

function parseProcessRef(v: string | undefined): ProcessRef | undefined {
  // `PID@HOST`, and for a claim `#TOKEN` after it (two execute-flights in one process differ by it).
  const m = /^(\d+)@([^#]+)(?:#.*)?$/.exec(v ?? '');
  return m ? { pid: Number(m[1]), host: m[2]! } : undefined;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Alive as far as can be told: a process on another machine cannot be checked, so it counts as alive. */
function maybeAlive(p: ProcessRef, here: string): boolean {
  return p.host !== here || processAlive(p.pid);
}

/** `job` names a job of this flight, `flight.job` one of another flight (the flight part has no dot). */
function jobRef(v: string, flight: string): { flight: string; job: string } {
  const dot = v.indexOf('.');
  return dot > 0 ? { flight: v.slice(0, dot), job: v.slice(dot + 1) } : { flight, job: v };
}

/** For each job, the jobs of the same flight it depends on (through its `*buildjob` runvars). */
export function flightDependencies(
  flight: string,
  jobs: readonly Job[],
  runvars: readonly Runvar[],
): Map<string, string[]> {
  const names = new Set(jobs.map((j) => j.job));
  const deps = new Map<string, string[]>(jobs.map((j) => [j.job, []]));
  for (const r of runvars) {
    if (!r.name.endsWith('buildjob') || !deps.has(r.job)) continue;
    const ref = jobRef(r.val, flight);
    if (ref.flight !== flight || !names.has(ref.job)) continue;
    const list = deps.get(r.job)!;
    if (!list.includes(ref.job)) list.push(ref.job);
  }
  return deps;
}

/** A dependency cycle among `jobs` as `a → b → a`, if there is one. */
export function findCycle(deps: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const state = new Map<string, 'visiting' | 'done'>();
  const path: string[] = [];
  const visit = (j: string): string[] | undefined => {
    const s = state.get(j);
    if (s === 'done') return undefined;
    if (s === 'visiting') return [...path.slice(path.indexOf(j)), j];
    state.set(j, 'visiting');
    path.push(j);
    for (const d of deps.get(j) ?? []) {
      const c = visit(d);
      if (c) return c;
    }
    path.pop();
    state.set(j, 'done');
    return undefined;
  };
  for (const j of deps.keys()) {
    const c = visit(j);
    if (c) return c;
  }
  return undefined;
}

function ownProcessGroup(): number | undefined {
  try {
    return processGroupOf('self');
  } catch {
    return undefined;
  }
}

function processGroupOf(pid: number | 'self'): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which is in parentheses and may hold anything): state ppid pgrp …
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(rest[2]);
}

/**
 * Process groups holding a process that carries this runner's token in its environment: the
 * runner's testcases (each in a group of its own) and whatever they started. Linux /proc only;
 * elsewhere nothing is found.
 */
export function groupsWithToken(token: string): number[] {
  const wanted = `${RUNNER_TOKEN_ENV}=${token}`;
  const own = ownProcessGroup();
  const groups = new Set<number>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return [];
  }
  for (const p of pids) {
    try {
      if (!readFileSync(`/proc/${p}/environ`, 'latin1').split('\0').includes(wanted)) continue;
      const g = processGroupOf(Number(p));
      if (g > 1 && g !== own) groups.add(g);
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return [...groups];
}

export function killGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Runner {
  job: string;
  child: ChildProcess;
  pid: number;
  token: string;
  logFile: string;
  started: Millis;
  /** Resolves when the runner has exited and its job has been tidied up. */
  done: Promise<void>;
  killTimer?: NodeJS.Timeout;
}

export async function executeFlight(o: ExecuteFlightOptions): Promise<ExecuteFlightResult> {
  const { store, config, flight } = o;
  const obs = o.observer ?? {};
  const here = hostname();
  const me = `${process.pid}@${here}#${randomBytes(4).toString('hex')}`;
  const logs = config.path('Logs');
  const maxParallel = o.maxParallel ?? config.int('FlightMaxParallel');
  if (!Number.isSafeInteger(maxParallel) || maxParallel < 1)
    throw new ExecuteFlightError(`at most ${maxParallel} jobs at once: must be a whole number, at least 1`);
  const hostWait = config.int('FlightHostWait');
  if (hostWait < 0) throw new ExecuteFlightError(`FlightHostWait ${hostWait}: must not be negative`);

  // ---- may this flight be executed? (nothing is changed until every check has passed)
  const f = await store.getFlight(flight);
  if (!f) throw new ExecuteFlightError(`no flight '${flight}'`);
  if (f.blessing !== 'constructing' && f.blessing !== 'running') {
    throw new ExecuteFlightError(
      `flight ${flight} has finished: it is blessed ${f.blessing} (make a new flight to run its jobs again)`,
    );
  }
  const jobs = await store.listJobs(flight);
  if (jobs.length === 0) throw new ExecuteFlightError(`flight ${flight} has no jobs`);
  const runvars = await store.listRunvars(flight);
  const rv = (job: string, name: string) => runvars.find((r) => r.job === job && r.name === name)?.val;
  const deps = flightDependencies(flight, jobs, runvars);
  const cycle = findCycle(deps);
  if (cycle) {
    throw new ExecuteFlightError(
      `flight ${flight}: its jobs depend on each other in a circle (${cycle.join(' → ')}, through their *buildjob runvars)`,
    );
  }
  const deadRunners: Job[] = [];
  for (const j of jobs.filter((x) => x.status === 'preparing' || x.status === 'running')) {
    const runner = parseProcessRef(rv(j.job, RUNNER_RUNVAR));
    if (runner && runner.host === here && !processAlive(runner.pid)) {
      deadRunners.push(j);
      continue;
    }
    throw new ExecuteFlightError(
      `flight ${flight} is being executed: job ${j.job} is ${j.status}, ${
        runner
          ? `run by pid ${runner.pid} on ${runner.host}`
          : 'run by a run-job started by hand, or by one that died (osstest abort, or run-job --rerun)'
      }`,
    );
  }
  const queued = jobs.filter((j) => j.status === 'queued');
  for (const j of queued) {
    const claim = parseProcessRef(rv(j.job, CLAIM_RUNVAR));
    if (claim && maybeAlive(claim, here)) {
      throw new ExecuteFlightError(
        `flight ${flight} is being executed by execute-flight pid ${claim.pid} on ${claim.host}${
          claim.host === here
            ? ''
            : ` (if that is gone: osstest runvar del ${flight} ${j.job} ${CLAIM_RUNVAR}, for each queued job)`
        }`,
      );
    }
  }

  // ---- take the flight on
  const settled = new Set(jobs.filter((j) => isFinalJobStatus(j.status)).map((j) => j.job));
  for (const j of deadRunners) {
    const runner = parseProcessRef(rv(j.job, RUNNER_RUNVAR))!;
    await tidyAfterRunner(o, j.job, undefined, `its runner (pid ${runner.pid}) is gone`, false);
    settled.add(j.job);
  }
  for (const r of runvars) {
    if (!r.name.endsWith('buildjob') || !queued.some((j) => j.job === r.job)) continue;
    const ref = jobRef(r.val, flight);
    if (ref.flight === flight) continue;
    const other = (await store.getJob(ref.flight, ref.job))?.status;
    if (other === undefined || !isFinalJobStatus(other))
      obs.message?.(
        `${r.job}: ${r.name} ${r.val} is ${other ?? 'missing'}; jobs of other flights are not waited for (its build-check decides)`,
      );
  }
  await store.markFlightStarted(flight);
  for (const j of queued) await store.setRunvar(flight, j.job, CLAIM_RUNVAR, me, { synth: true });
  // Two execute-flights that start together both write their claims; the later writes win, and a
  // short pause before reading them back lets each see whether it lost any.
  await sleep(150);
  for (const j of queued) {
    const now = (await store.getRunvar(flight, j.job, CLAIM_RUNVAR))?.val;
    if (now !== me) {
      await dropClaims(store, flight, queued, me);
      throw new ExecuteFlightError(`flight ${flight}: execute-flight ${now} took it on at the same time`);
    }
  }

  // ---- run
  const pending = queued.map((j) => j.job);
  const running = new Map<string, Runner>();
  const view = new Map<string, { pid?: number; started?: Millis; finished?: Millis }>();
  let stopping: string | undefined;
  const childEnv: NodeJS.ProcessEnv = {
    ...process.env,
    ...o.env,
    OSSTEST_CONFIG: config.files.join(':'),
    [HOST_ALLOCATE_WAIT_ENV]: String(hostWait),
  };
  // The runner takes the flight and job from its arguments; a stray default must not confuse it.
  delete childEnv.OSSTEST_FLIGHT;
  delete childEnv.OSSTEST_JOB;
  const cli = join(harnessRoot, 'bin', 'osstest.js');

  const snapshot = async (): Promise<FlightJobView[]> => {
    const now = await store.listJobs(flight);
    const steps = await store.listSteps(flight);
    return now.map((j) => {
      const v = view.get(j.job) ?? {};
      const last = steps.filter((s) => s.job === j.job).at(-1);
      return {
        job: j.job,
        recipe: j.recipe,
        status: j.status,
        phase: running.has(j.job) ? 'running' : pending.includes(j.job) ? 'waiting' : 'done',
        waitingFor: pending.includes(j.job) ? (deps.get(j.job) ?? []).filter((d) => !settled.has(d)) : [],
        ...v,
        ...(last ? { step: { stepno: last.stepno, testid: last.testid, status: last.status } } : {}),
      };
    });
  };
  let polling = false;
  const poll = async () => {
    if (!obs.update || polling) return;
    polling = true;
    try {
      obs.update(await snapshot());
    } catch {
      // A display that misses one refresh is no reason to stop the flight.
    } finally {
      polling = false;
    }
  };
  const pollTimer = obs.update ? setInterval(() => void poll(), o.pollMs ?? 1000) : undefined;

  const stopRunner = async (r: Runner, why: string) => {
    if (r.pid <= 0 || r.child.exitCode !== null || r.child.signalCode !== null) return;
    // A job that has its verdict already (a failure, with its logs being captured) keeps it.
    const now = (await store.getJob(flight, r.job))?.status;
    if (now === undefined || !isFinalJobStatus(now)) {
      note(r.logFile, `execute-flight: stopping the runner (${why}): job aborted`);
      await store.setJobStatus(flight, r.job, 'aborted');
    } else {
      note(r.logFile, `execute-flight: stopping the runner (${why}); the job stays ${now}`);
    }
    killGroup(r.pid, 'SIGTERM');
    r.killTimer = setTimeout(() => killGroup(r.pid, 'SIGKILL'), o.killGraceMs ?? 5000);
  };
  const onAbort = () => {
    if (stopping !== undefined) return;
    const reason = o.signal?.reason;
    stopping = typeof reason === 'string' ? reason : reason instanceof Error ? reason.message : 'aborted';
    obs.message?.(`execute-flight: ${stopping}: stopping ${running.size} running job(s)`);
    for (const r of running.values()) void stopRunner(r, stopping).catch(() => undefined);
  };

  const start = async (job: string) => {
    const dir = join(logs, flight, job);
    mkdirSync(dir, { recursive: true });
    const logFile = join(dir, 'run-job.log');
    const args = [cli, 'run-job', '--quiet', flight, job];
    const token = `${me}/${flight}/${job}/${randomBytes(6).toString('hex')}`;
    note(logFile, `execute-flight ${me}: ${process.execPath} ${args.join(' ')}`);
    const fd = openSync(logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, args, {
        cwd: config.baseDir,
        env: { ...childEnv, [RUNNER_TOKEN_ENV]: token },
        stdio: ['ignore', fd, fd],
        detached: true,
      });
    } finally {
      closeSync(fd);
    }
    const t0 = Date.now();
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: string }>(
      (resolve) => {
        child.once('exit', (code, signal) => resolve({ code, signal }));
        child.once('error', (err) => resolve({ code: null, signal: null, error: err.message }));
      },
    );
    const pid = child.pid ?? 0;
    const r: Runner = { job, child, pid, token, logFile, started: t0, done: Promise.resolve() };
    running.set(job, r);
    pending.splice(pending.indexOf(job), 1);
    view.set(job, { pid, started: t0 });
    r.done = (async () => {
      if (pid > 0) {
        await store.setRunvar(flight, job, RUNNER_RUNVAR, `${pid}@${here}`, { synth: true }).catch(() => {
          // The runner's own writes go on; only the record of its pid is missing.
        });
        obs.jobStarted?.(job, pid);
      }
      const e = await exited;
      if (r.killTimer) clearTimeout(r.killTimer);
      const how = e.error
        ? `could not be started: ${e.error}`
        : e.signal
          ? `was killed by ${e.signal}`
          : `exited with status ${e.code}`;
      note(logFile, `execute-flight: the runner ${how}`);
      const status = await tidyAfterRunner(o, job, token, `its runner ${how}`, stopping !== undefined);
      running.delete(job);
      settled.add(job);
      view.set(job, { pid, started: t0, finished: Date.now() });
      obs.jobFinished?.(job, status, how);
    })();
    if (stopping !== undefined) await stopRunner(r, stopping);
  };

  o.signal?.addEventListener('abort', onAbort, { once: true });
  if (o.signal?.aborted) onAbort();
  try {
    for (;;) {
      while (stopping === undefined && running.size < maxParallel) {
        const next = pending.find((j) => (deps.get(j) ?? []).every((d) => settled.has(d)));
        if (next === undefined) break;
        await start(next);
      }
      void poll();
      if (running.size === 0) break;
      await Promise.race([...running.values()].map((r) => r.done));
    }
  } catch (err) {
    // The harness itself went wrong (the store, most likely): the runners are stopped rather than
    // left to run with nobody watching them.
    stopping ??= `execute-flight failed: ${(err as Error).message}`;
    for (const r of running.values()) await stopRunner(r, stopping).catch(() => undefined);
    throw err;
  } finally {
    if (pollTimer) clearInterval(pollTimer);
    o.signal?.removeEventListener('abort', onAbort);
    // Whatever went wrong here, no runner is left without someone to tidy after it.
    await Promise.allSettled([...running.values()].map((r) => r.done));
  }
  if (pending.length > 0 && stopping === undefined) {
    // Cannot happen with no cycles and every dependency settled or pending; said rather than hidden.
    stopping = `jobs ${pending.join(', ')} could not be started`;
  }

  if (stopping === undefined) {
    await store.setFlightBlessing(flight, o.blessing ?? f.intended);
  } else {
    // Jobs that never started stay queued; a later execute-flight may take them on.
    await dropClaims(
      store,
      flight,
      pending.map((job) => ({ job })),
      me,
    );
  }
  if (obs.update) obs.update(await snapshot());
  const after = (await store.getFlight(flight))!;
  return {
    flight,
    blessing: after.blessing,
    jobs: (await store.listJobs(flight)).map((j) => ({ job: j.job, status: j.status })),
    ...(stopping !== undefined ? { interrupted: stopping } : {}),
  };
}

/** A line of execute-flight's own in a job's run-job.log. */
function note(file: string, text: string): void {
  try {
    mkdirSync(dirname(file), { recursive: true });
    appendFileSync(file, `${logStamp()} ${text}\n`);
  } catch {
    // The log is for people; failing to write it must not stop the flight.
  }
}

async function dropClaims(store: Store, flight: string, jobs: { job: string }[], me: string): Promise<void> {
  for (const j of jobs) {
    if ((await store.getRunvar(flight, j.job, CLAIM_RUNVAR))?.val === me)
      await store.deleteRunvar(flight, j.job, CLAIM_RUNVAR, { synth: true });
  }
}

/**
 * After a runner is gone: kills what it left running, makes an unfinished job broken, closes its
 * running steps (aborted when the runner was stopped or the job aborted, else broken) and releases
 * its hosts. Returns the job's status afterwards.
 */
async function tidyAfterRunner(
  o: ExecuteFlightOptions,
  job: string,
  token: string | undefined,
  why: string,
  stopped: boolean,
): Promise<JobStatus> {
  const { store, config, flight } = o;
  const logs = config.path('Logs');
  const logFile = join(logs, flight, job, 'run-job.log');
  if (token !== undefined) {
    const groups = groupsWithToken(token);
    if (groups.length > 0) {
      note(
        logFile,
        `execute-flight: stopping what the runner left running (process groups ${groups.join(' ')})`,
      );
      for (const g of groups) killGroup(g, 'SIGTERM');
      const until = Date.now() + 2000;
      while (Date.now() < until && groupsWithToken(token).length > 0) await sleep(100);
      for (const g of groupsWithToken(token)) killGroup(g, 'SIGKILL');
    }
  }
  let status = (await store.getJob(flight, job))?.status ?? 'broken';
  if (!isFinalJobStatus(status)) {
    status = await store.setJobStatus(flight, job, 'broken');
    note(logFile, `execute-flight: job ${status}: ${why} while the job was unfinished`);
  }
  const stepStatus: StepStatus = stopped || status === 'aborted' ? 'aborted' : 'broken';
  for (const s of await store.listSteps(flight, job)) {
    if (s.status !== 'running') continue;
    const rel = s.logPath ?? stepLogPath(flight, job, s.stepno, s.testcase);
    note(join(logs, rel), `osstest: ${why}: step ${stepStatus}`);
    await store.finishStep(flight, job, s.stepno, { status: stepStatus, logPath: rel });
  }
  await store.releaseJobHosts(flight, job);
  return status;
}
