/**
 * `osstest worker` (lab mode): takes queued jobs whose hosts can be had now, runs each as a runner
 * process, releases the hosts at the end. Any number of workers on any number of machines share one
 * database; nothing but the database coordinates them (see src/db/lab/):
 *
 * - A worker registers with a lease and renews it every third of WorkerLeaseSeconds; each renewal
 *   also renews the leases of its jobs' claims and of their hosts. Every renewal tick also reaps:
 *   a worker whose lease ran out is declared gone, its jobs made broken (their running steps
 *   closed), and hosts whose lease ran out WorkerGraceSeconds ago are released, so a worker killed
 *   outright (SIGKILL, power loss) is noticed by the others through the database alone.
 * - A worker that finds it has been declared gone (its renewal refused) kills its runners and exits.
 * - Jobs are claimed with their hosts in one transaction (scheduler/allocator.ts), at most
 *   WorkerMaxJobs at once. The runner (runner-main.ts, runner.ts) runs in its own process
 *   group with a pipe from the worker as stdin: if the worker dies, the pipe closes and the runner
 *   kills its testcases and exits at once, so nothing of a dead worker goes on using a host.
 * - After a job: its hosts' health is updated (health.ts rules in the store); a host quarantined
 *   is logged here and gets a host event; a quarantined host gets a health-check flight queued every
 *   HealthCheckInterval until one passes.
 * - Drain (osstest worker --drain, or SIGTERM): take no new jobs, finish the running ones, exit.
 * - PostgreSQL wakes workers with NOTIFY when hosts are released or flights queued; they also poll
 *   every WorkerPollSeconds (sqlite only polls).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, closeSync, mkdirSync, openSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import type { Config } from '../config/config.js';
import { ConfigError } from '../config/errors.js';
import type { HealthChange, LabWake, Worker } from '../db/lab/types.js';
import type { Store } from '../db/store.js';
import type { Millis } from '../db/types.js';
import { distRoot, harnessRevision } from '../executor/paths.js';
import { loadRecipe } from '../executor/recipes.js';
import type { JobStatus } from '../model/status.js';
import { HOST_ALLOCATE_WAIT_ENV, logStamp } from '../model/testcase-protocol.js';
import { type Claimed, claimNext, HEALTH_CHECK_RUNVAR } from '../scheduler/allocator.js';
import { PlanCache } from '../scheduler/planner.js';
import { BUSY_RETRY_MS, WakeLedger } from '../scheduler/wake-ledger.js';
import { groupsWithToken, killGroup, RUNNER_TOKEN_ENV } from './execute-flight.js';

/** Testcases whose passing means a shared build host is prepared (others may join it). */
export const SHARE_PREP_TESTCASES = ['ts-build-prep', 'ts-xen-build-prep'];
/** Set in a runner's environment: the worker that runs it. */
export const WORKER_ENV = 'OSSTEST_WORKER';
/** Priority of health-check flights: before everything else (lower is sooner). */
const HEALTH_CHECK_PRIORITY = 50;

/** A setting in seconds (fractions allowed), as milliseconds. */
export function settingMs(config: Config, name: string, min = 0): number {
  const v = config.string(name).trim();
  const n = Number(v);
  if (v === '' || !Number.isFinite(n) || n < min) {
    const o = config.origin(name);
    throw new ConfigError(`${name} must be a number of seconds ≥ ${min}, not '${v}'`, o?.file, o?.line);
  }
  return Math.round(n * 1000);
}

export interface WorkerSettings {
  leaseMs: number;
  graceMs: number;
  pollMs: number;
  maxJobs: number;
  quarantineAfter: number;
  lookbackMs: number;
  healthCheckIntervalMs: number;
}

export function workerSettings(config: Config, maxJobs?: number): WorkerSettings {
  const jobs = maxJobs ?? config.int('WorkerMaxJobs');
  if (!Number.isSafeInteger(jobs) || jobs < 1)
    throw new ConfigError(`most jobs at once must be a whole number ≥ 1, not ${jobs}`);
  const q = config.int('HealthQuarantineAfter');
  if (q < 1) throw new ConfigError(`HealthQuarantineAfter must be ≥ 1, not ${q}`);
  return {
    leaseMs: settingMs(config, 'WorkerLeaseSeconds', 0.3),
    graceMs: settingMs(config, 'WorkerGraceSeconds'),
    pollMs: settingMs(config, 'WorkerPollSeconds', 0.05),
    maxJobs: jobs,
    quarantineAfter: q,
    lookbackMs: settingMs(config, 'HealthLookbackHours') * 3600,
    healthCheckIntervalMs: settingMs(config, 'HealthCheckInterval'),
  };
}

export interface WorkerOptions {
  store: Store;
  config: Config;
  /** Most jobs at once; default WorkerMaxJobs. */
  maxJobs?: number;
  /** Take what can be started now, run it, exit when it is done (do not wait for more). */
  once?: boolean;
  /** Where lines about what it does go; default stdout with a time stamp. */
  log?: (line: string) => void;
  /** Added to the runners' environment. */
  env?: NodeJS.ProcessEnv;
}

export interface WorkerSummary {
  id: string;
  /** Jobs it ran, with their final status. */
  jobs: { flight: string; job: string; status: JobStatus; hosts: Record<string, string> }[];
  /** Why it stopped: idle (--once), drained, stopped, or lost its lease. */
  ended: 'idle' | 'drained' | 'stopped' | 'fenced';
}

interface Runner {
  claim: Claimed;
  child: ChildProcess;
  pid: number;
  token: string;
  logFile: string;
  started: Millis;
  shareReady: boolean;
  done: Promise<void>;
}

function note(file: string, text: string): void {
  try {
    mkdirSync(dirname(file), { recursive: true });
    appendFileSync(file, `${logStamp()} ${text}\n`);
  } catch {
    // The log is for people; failing to write it must not stop the worker.
  }
}

const describeHosts = (h: Record<string, string>) =>
  Object.entries(h)
    .map(([i, n]) => (i === 'host' ? n : `${i}=${n}`))
    .join(' ');

export class LabWorker {
  readonly id: string;
  readonly settings: WorkerSettings;
  private readonly store: Store;
  private readonly config: Config;
  private readonly log: (line: string) => void;
  private readonly running = new Map<string, Runner>();
  private readonly summary: WorkerSummary;
  private readonly cache = new PlanCache();
  private readonly recipeIdents = new Map<string, (runvars: Record<string, string>) => string[]>();
  private draining: string | undefined;
  private stopping: string | undefined;
  private fenced = false;
  private wakeUp: (() => void) | undefined;
  /** Decides at least every minute whatever the plan says (the safety net for a lost NOTIFY). */
  private readonly ledger = new WakeLedger(60_000);
  private woken = false;

  constructor(private readonly o: WorkerOptions) {
    this.store = o.store;
    this.config = o.config;
    this.settings = workerSettings(o.config, o.maxJobs);
    this.id = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    this.log =
      o.log ??
      ((line) => {
        process.stdout.write(`${logStamp()} ${line}\n`);
      });
    this.summary = { id: this.id, jobs: [], ended: 'idle' };
  }

  /** Take no new jobs; run() returns once the running ones have ended. */
  drain(why: string): void {
    if (this.draining !== undefined) return;
    this.draining = why;
    this.log(`draining (${why}): ${this.running.size} job(s) to finish`);
    this.wake();
  }

  /** Stop now: running jobs are aborted and their runners killed. */
  stop(why: string): void {
    if (this.stopping !== undefined) return;
    this.stopping = why;
    this.draining ??= why;
    this.log(`stopping (${why}): aborting ${this.running.size} job(s)`);
    for (const r of this.running.values()) void this.abortRunner(r, why);
    this.wake();
  }

  /** Look at the lab again (for a reason the ledger cannot weigh: it will decide). */
  private wake(): void {
    this.ledger.changed();
    this.rouse();
  }

  private rouse(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /** A notification: a change by a known transaction, or another worker's decision. */
  private heard(w: LabWake): void {
    if (this.ledger.heard(w)) this.rouse();
  }

  private sleep(ms: number): Promise<void> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wakeUp = undefined;
        // Time alone changes plans (bookings fall due, jobs starve): a poll decides when they have.
        this.ledger.polled();
        resolve();
      }, ms);
      this.wakeUp = () => {
        clearTimeout(t);
        this.wakeUp = undefined;
        this.woken = false;
        resolve();
      };
    });
  }

  private async identsOf(recipe: string, runvars: Record<string, string>): Promise<string[]> {
    let f = this.recipeIdents.get(recipe);
    if (!f) {
      const r = await loadRecipe(recipe);
      f = (rv) => r.hostIdents({ runvars: rv });
      this.recipeIdents.set(recipe, f);
    }
    return f(runvars);
  }

  async run(): Promise<WorkerSummary> {
    const s = this.settings;
    const w = await this.store.lab.registerWorker({
      id: this.id,
      host: hostname(),
      pid: process.pid,
      leaseMs: s.leaseMs,
      maxJobs: s.maxJobs,
    });
    this.log(
      `worker ${w.id} started: at most ${s.maxJobs} job(s) at once, lease ${s.leaseMs / 1000} s, grace ${s.graceMs / 1000} s (${this.store.kind}${this.store.lab.notifies ? ', woken by NOTIFY' : ', polling'})`,
    );
    const unlisten = await this.store.lab.listen((_what, w) => this.heard(w));
    let ticking = true;
    let tickTimer: NodeJS.Timeout | undefined;
    const tickLoop = async () => {
      if (!ticking) return;
      try {
        await this.tick();
      } catch (e) {
        this.log(`renewal failed (will retry): ${(e as Error).message}`);
      }
      if (ticking) tickTimer = setTimeout(() => void tickLoop(), Math.max(50, Math.floor(s.leaseMs / 3)));
    };
    tickTimer = setTimeout(() => void tickLoop(), Math.max(50, Math.floor(s.leaseMs / 3)));
    let onceDone = false;
    try {
      for (;;) {
        if (this.fenced) break;
        if ((this.draining !== undefined || onceDone) && this.running.size === 0) break;
        // Ask again at once only when the last decision claimed a job and its plan had more to start.
        let again = false;
        // Turned away while another worker decided, with changes that decision may not have seen:
        // its announcement rouses this one, but the turn may not be free yet when it arrives.
        let soon = false;
        try {
          await this.housekeeping();
          if (
            this.draining === undefined &&
            !onceDone &&
            this.running.size < s.maxJobs &&
            this.ledger.needed
          ) {
            const out = await claimNext({
              store: this.store,
              config: this.config,
              harness: harnessRevision(),
              identsOf: (j) => this.identsOf(j.recipe, j.runvars),
              cache: this.cache,
              worker: this.id,
              leaseMs: s.leaseMs,
              ledger: this.ledger,
              maxClaims: s.maxJobs - this.running.size,
            });
            for (const x of out.settled)
              this.log(`${x.flight}/${x.job} ${x.status} without running: ${x.reason}`);
            if (out.claimed) {
              again = out.more;
              for (const c of out.claims) this.start(c);
            } else if (this.o.once && !out.skipped) onceDone = true;
            soon = out.skipped && this.ledger.needed;
          }
        } catch (e) {
          // The database away for a moment, say: the running jobs go on and the next look may work.
          this.log(`looking for work failed (will try again): ${(e as Error).message}`);
        }
        if (again) continue;
        if ((this.draining !== undefined || onceDone) && this.running.size === 0) break;
        await this.sleep(soon ? Math.min(s.pollMs, BUSY_RETRY_MS) : s.pollMs);
      }
    } finally {
      ticking = false;
      if (tickTimer) clearTimeout(tickTimer);
      await Promise.allSettled([...this.running.values()].map((r) => r.done));
      await unlisten().catch(() => undefined);
      this.summary.ended = this.fenced
        ? 'fenced'
        : this.stopping !== undefined
          ? 'stopped'
          : this.draining !== undefined
            ? 'drained'
            : 'idle';
      if (!this.fenced)
        await this.store.lab
          .endWorker(this.id, this.draining ?? 'nothing more to do now (--once)')
          .catch((e: Error) => this.log(`could not record the end: ${e.message}`));
      this.log(`worker ${this.id} ended (${this.summary.ended}) after ${this.summary.jobs.length} job(s)`);
    }
    return this.summary;
  }

  /** Renews the leases, notices a drain request, reaps the dead, marks prepared shares ready. */
  private async tick(): Promise<void> {
    if (this.fenced) return;
    const me: Worker | undefined = await this.store.lab.renewWorker(this.id, this.settings.leaseMs);
    if (!me) {
      this.fenced = true;
      this.log(
        'this worker has been declared gone (its lease was not renewed in time): killing its runners, exiting',
      );
      for (const r of this.running.values()) {
        killGroup(r.pid, 'SIGKILL');
        for (const g of groupsWithToken(r.token)) killGroup(g, 'SIGKILL');
      }
      this.wake();
      return;
    }
    if (me.draining && this.draining === undefined) this.drain('told to drain');
    const reaped = await this.store.lab.reapExpired({ graceMs: this.settings.graceMs });
    for (const w of reaped.workers)
      this.log(`worker ${w.id} (pid ${w.pid} on ${w.host}) is gone: ${w.endReason}`);
    for (const j of reaped.jobs)
      this.log(
        `${j.flight}/${j.job} of worker ${j.worker}: ${j.status}${j.stepsClosed.length ? `, step(s) ${j.stepsClosed.join(',')} closed` : ''}`,
      );
    for (const h of reaped.released)
      this.log(
        `host ${h.host} released from ${h.flight}/${h.job}: its lease expired (grace ${this.settings.graceMs / 1000} s)`,
      );
    if (reaped.workers.length + reaped.jobs.length + reaped.released.length > 0) this.wake();
    for (const r of this.running.values()) {
      if (r.claim.share?.action !== 'start' || r.shareReady) continue;
      if (await this.prepared(r)) {
        r.shareReady = await this.store.lab.markShareReady(r.claim.share.host, r.claim);
        if (r.shareReady)
          this.log(`shared build host ${r.claim.share.host} is ready for others (${r.claim.share.type})`);
      }
    }
  }

  private async prepared(r: Runner): Promise<boolean> {
    const steps = await this.store.listSteps(r.claim.flight, r.claim.job);
    return steps.some((x) => SHARE_PREP_TESTCASES.includes(x.testcase) && x.status === 'pass');
  }

  /** Blesses finished flights; queues health checks of quarantined hosts that are due one. */
  private async housekeeping(): Promise<void> {
    for (const f of await this.store.lab.completeFlights())
      this.log(`flight ${f.flight} finished: blessed ${f.blessing}`);
    for (const h of await this.store.lab.hostHealth()) {
      if (h.state !== 'quarantined' || h.checkFlight !== null) continue;
      if (!(await this.store.lab.startHealthCheck(h.host, this.settings.healthCheckIntervalMs))) continue;
      try {
        const host = await this.store.getHost(h.host);
        const recipe = this.config.hostProp(h.host, 'HealthCheckRecipe', host?.props) ?? 'health-check';
        const f = await this.store.createFlight({ branch: 'health-check', intended: 'play' });
        await this.store.createJob(f.flight, 'health-check', recipe, {
          host: h.host,
          [HEALTH_CHECK_RUNVAR]: h.host,
        });
        await this.store.lab.queueFlight(f.flight, { by: this.id, priority: HEALTH_CHECK_PRIORITY });
        await this.store.lab.setHealthCheckFlight(h.host, f.flight);
        this.log(
          `host ${h.host} is quarantined: health check queued as flight ${f.flight} (recipe ${recipe})`,
        );
      } catch (e) {
        this.log(`could not queue a health check of ${h.host}: ${(e as Error).message}`);
      }
    }
  }

  private start(claim: Claimed): void {
    const logs = this.config.path('Logs');
    const logFile = join(logs, claim.flight, claim.job, 'run-job.log');
    mkdirSync(dirname(logFile), { recursive: true });
    const token = `${this.id}/${claim.flight}/${claim.job}/${randomBytes(6).toString('hex')}`;
    const args = [join(distRoot, 'src', 'flight', 'runner-main.js'), claim.flight, claim.job];
    note(
      logFile,
      `worker ${this.id}: claimed with hosts ${describeHosts(claim.hosts)}: ${process.execPath} ${args.join(' ')}`,
    );
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...this.o.env,
      OSSTEST_CONFIG: this.config.files.join(':'),
      [RUNNER_TOKEN_ENV]: token,
      [WORKER_ENV]: this.id,
      // The hosts are the job's already: ts-hosts-allocate only records them.
      [HOST_ALLOCATE_WAIT_ENV]: '0',
    };
    delete env.OSSTEST_FLIGHT;
    delete env.OSSTEST_JOB;
    const fd = openSync(logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, args, {
        cwd: this.config.baseDir,
        env,
        // stdin is a pipe the worker never writes to: when the worker dies it closes, and the runner stops.
        stdio: ['pipe', fd, fd],
        detached: true,
      });
    } finally {
      closeSync(fd);
    }
    child.stdin?.on('error', () => undefined);
    const key = `${claim.flight}/${claim.job}`;
    const r: Runner = {
      claim,
      child,
      pid: child.pid ?? 0,
      token,
      logFile,
      started: Date.now(),
      shareReady: false,
      done: Promise.resolve(),
    };
    this.running.set(key, r);
    this.log(
      `${key}: running on ${describeHosts(claim.hosts)}${claim.share ? ` (${claim.share.action} share ${claim.share.type})` : ''}${claim.healthCheck ? ' (health check)' : ''}, runner pid ${r.pid}`,
    );
    const exited = new Promise<string>((resolve) => {
      child.once('exit', (code, signal) =>
        resolve(signal ? `was killed by ${signal}` : `exited with status ${code}`),
      );
      child.once('error', (e) => resolve(`could not be started: ${e.message}`));
    });
    r.done = (async () => {
      const how = await exited;
      // Whether the job's end reaches the ledger as a change with its transaction (closeJob's NOTIFY),
      // so that a decision another worker makes after it can stand for ours; otherwise decide.
      let notified = false;
      try {
        await this.finish(r, how);
        notified = this.store.lab.notifies && !this.fenced;
      } catch (e) {
        this.log(`${key}: tidying up after the runner failed: ${(e as Error).message}`);
      } finally {
        this.running.delete(key);
        if (notified) this.rouse();
        else this.wake();
      }
    })();
  }

  private async abortRunner(r: Runner, why: string): Promise<void> {
    note(r.logFile, `worker: stopping the runner (${why})`);
    await this.store.setJobStatus(r.claim.flight, r.claim.job, 'aborted').catch(() => undefined);
    killGroup(r.pid, 'SIGTERM');
    setTimeout(() => killGroup(r.pid, 'SIGKILL'), 5000).unref();
  }

  private async finish(r: Runner, how: string): Promise<void> {
    const { claim } = r;
    const key = `${claim.flight}/${claim.job}`;
    note(r.logFile, `worker: the runner ${how}`);
    const left = groupsWithToken(r.token);
    if (left.length > 0) {
      note(r.logFile, `worker: stopping what the runner left running (process groups ${left.join(' ')})`);
      for (const g of left) killGroup(g, 'SIGTERM');
      const until = Date.now() + 2000;
      while (Date.now() < until && groupsWithToken(r.token).length > 0)
        await new Promise((x) => setTimeout(x, 100));
      for (const g of groupsWithToken(r.token)) killGroup(g, 'SIGKILL');
    }
    if (this.fenced) return;
    const sharesPrepared = claim.share?.action === 'start' && (r.shareReady || (await this.prepared(r)));
    const c = await this.store.lab.closeJob({
      flight: claim.flight,
      job: claim.job,
      worker: this.id,
      sharesPrepared,
    });
    if (c.stepsClosed.length > 0)
      note(r.logFile, `worker: the runner ${how}: step(s) ${c.stepsClosed.join(',')} closed`);
    this.summary.jobs.push({ flight: claim.flight, job: claim.job, status: c.status, hosts: claim.hosts });
    this.log(
      `${key}: ${c.status} (${Math.round((Date.now() - r.started) / 100) / 10} s); hosts released: ${describeHosts(claim.hosts)}`,
    );
    let changes: HealthChange[] = [];
    if (claim.healthCheck !== undefined) {
      const ch = await this.store.lab.recordHealthCheck(
        claim.healthCheck,
        c.status === 'pass',
        `flight ${claim.flight} job ${claim.job} ${c.status}`,
      );
      if (ch) changes = [ch];
      else if (c.status !== 'pass')
        this.log(`host ${claim.healthCheck}: health check ${c.status}; it stays quarantined`);
    } else {
      changes = await this.store.lab.recordJobOutcome({
        flight: claim.flight,
        job: claim.job,
        status: c.status,
        hosts: Object.values(claim.hosts),
        quarantineAfter: this.settings.quarantineAfter,
        lookbackMs: this.settings.lookbackMs,
      });
    }
    for (const ch of changes) {
      const line = `host ${ch.host}: ${ch.from} → ${ch.to}: ${ch.reason}`;
      this.log(
        ch.to === 'quarantined'
          ? `HOST QUARANTINED (owner: see osstest hosts health ${ch.host}): ${line}`
          : line,
      );
      note(r.logFile, `worker: ${line}`);
    }
  }
}

/** Tells workers to drain: one by id, or every live one on this machine. */
export async function drainWorkers(store: Store, id?: string): Promise<Worker[]> {
  return store.lab.drainWorkers(id !== undefined ? { id } : { host: hostname() });
}
