/**
 * The library every ts-* testcase imports: the job's runvars, its hosts, ssh sessions, the stash,
 * and the ways a testcase ends other than pass/fail — declaring the job broken (the
 * infrastructure let it down), blocked (a job it depends on did not deliver) or starved (no host
 * could be had in time).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Config } from '../config/config.js';
import { openConfiguredStore } from '../db/from-config.js';
import type { Store } from '../db/store.js';
import { type DeclarableStatus, declaredStatusFile, logStamp } from '../model/testcase-protocol.js';
import { RemoteSession } from '../remote/index.js';
import { type HostInfo, hostInfo, sshTarget } from './hosts.js';

/** Thrown after the job's status has been set; the testcase exits non-zero. */
export class DeclaredStatus extends Error {
  override name = 'DeclaredStatus';
  constructor(
    readonly status: DeclarableStatus,
    message: string,
  ) {
    super(message);
  }
}

export interface JobRef {
  flight: string;
  job: string;
}

export class Testcase {
  private readonly sessions = new Map<string, Promise<RemoteSession>>();

  private constructor(
    readonly flight: string,
    readonly job: string,
    readonly config: Config,
    readonly store: Store,
    /** Arguments as given, `ident=hostname` ones included. */
    readonly args: readonly string[],
  ) {}

  static async open(argv: readonly string[] = process.argv.slice(2)): Promise<Testcase> {
    const flight = process.env.OSSTEST_FLIGHT;
    const job = process.env.OSSTEST_JOB;
    if (!flight || !job)
      throw new Error('OSSTEST_FLIGHT and OSSTEST_JOB must say which job this testcase is for');
    const config = Config.load({ env: process.env });
    const store = await openConfiguredStore(config);
    const j = await store.getJob(flight, job);
    if (!j) {
      await store.close();
      throw new Error(`flight ${flight} has no job ${job}`);
    }
    return new Testcase(flight, job, config, store, argv);
  }

  /** Arguments that are not `name=value`. */
  get positional(): string[] {
    return this.args.filter((a) => !a.includes('='));
  }

  /** `name=value` arguments (e.g. `host=fiano0`). */
  named(name: string): string | undefined {
    const hit = this.args.find((a) => a.startsWith(`${name}=`));
    return hit?.slice(name.length + 1);
  }

  log(message: string): void {
    process.stdout.write(`${message}\n`);
  }

  async runvar(name: string, ref: JobRef = this): Promise<string | undefined> {
    return (await this.store.getRunvar(ref.flight, ref.job, name))?.val;
  }

  async mustRunvar(name: string): Promise<string> {
    const v = await this.runvar(name);
    if (v === undefined) throw new Error(`job ${this.flight}/${this.job} has no runvar ${name}`);
    return v;
  }

  async runvars(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const r of await this.store.listRunvars(this.flight, this.job)) out[r.name] = r.val;
    return out;
  }

  /** Execution runvars (synth): what the job found out or produced. */
  async setRunvar(name: string, val: string): Promise<void> {
    await this.store.setRunvar(this.flight, this.job, name, val, { synth: true });
    this.log(`runvar ${name}=${val}`);
  }

  async declare(status: DeclarableStatus, reason: string): Promise<never> {
    await this.store.setJobStatus(this.flight, this.job, status);
    const stepLog = process.env.OSSTEST_STEPLOG;
    if (stepLog) writeFileSync(declaredStatusFile(stepLog), status);
    this.log(`osstest: job ${status}: ${reason}`);
    throw new DeclaredStatus(status, reason);
  }

  /** The job a `*buildjob` runvar names: `job` in this flight, or `flight.job`. */
  async buildJobRef(runvar = 'buildjob'): Promise<JobRef> {
    const v = await this.runvar(runvar);
    if (v === undefined) return this.declare('blocked', `no ${runvar} runvar`);
    return parseJobRef(v, this.flight);
  }

  /**
   * An output of the job a `*buildjob` runvar names. That job must have passed and have the output:
   * otherwise this job is blocked (which is how a failed build blocks its tests).
   */
  async buildOutput(name: string, runvar = 'buildjob'): Promise<string> {
    const ref = await this.buildJobRef(runvar);
    const j = await this.store.getJob(ref.flight, ref.job);
    if (!j) return this.declare('blocked', `${runvar} ${ref.flight}.${ref.job} does not exist`);
    if (j.status !== 'pass') {
      return this.declare('blocked', `${runvar} ${ref.flight}.${ref.job} is ${j.status}, not pass`);
    }
    const v = await this.runvar(name, ref);
    if (v === undefined) return this.declare('blocked', `${ref.flight}.${ref.job} has no ${name}`);
    return v;
  }

  /** The host name for an ident: an `ident=name` argument, else the job's runvar. */
  async hostName(ident = 'host'): Promise<string> {
    const name = this.named(ident) ?? (await this.runvar(ident));
    if (!name) throw new Error(`no host for '${ident}': give ${ident}=NAME or run ts-hosts-allocate first`);
    return name;
  }

  async host(ident = 'host'): Promise<HostInfo> {
    const name = await this.hostName(ident);
    const h = await this.store.getHost(name);
    if (!h) throw new Error(`host ${name} is not in the host database`);
    return hostInfo(this.config, h);
  }

  /**
   * One ssh connection per host, reused by every command of this testcase. A host that cannot be
   * reached is the infrastructure's failure, not the code under test's: the job becomes broken.
   */
  async ssh(ident = 'host'): Promise<RemoteSession> {
    const h = await this.host(ident);
    let s = this.sessions.get(h.name);
    if (!s) {
      s = RemoteSession.connect(sshTarget(this.config, this.store, h));
      this.sessions.set(h.name, s);
    }
    try {
      return await s;
    } catch (err) {
      this.sessions.delete(h.name);
      return this.declare('broken', `cannot reach ${h.name}: ${(err as Error).message}`);
    }
  }

  /** Where this job's outputs are kept: `<Stash>/<flight>/<job>`. */
  stashDir(): string {
    const d = join(this.config.path('Stash'), this.flight, this.job);
    mkdirSync(d, { recursive: true });
    return d;
  }

  async close(): Promise<void> {
    for (const s of this.sessions.values()) {
      try {
        await (await s).close();
      } catch {
        // A session that never connected has nothing to close.
      }
    }
    await this.store.close();
  }
}

export function parseJobRef(v: string, flight: string): JobRef {
  // OSSTest's convention: `job` is in this flight, `flight.job` in another; the flight part has no dot.
  const dot = v.indexOf('.');
  if (dot > 0) return { flight: v.slice(0, dot), job: v.slice(dot + 1) };
  return { flight, job: v };
}

/**
 * A testcase's main: opens the context, runs the body, exits 0 on success and 1 on failure.
 * Errors are printed with what they carry (remote errors include command, exit status, stderr tail).
 */
export async function testcaseMain(body: (tc: Testcase) => Promise<void>): Promise<void> {
  let tc: Testcase | undefined;
  let code = 0;
  try {
    tc = await Testcase.open();
    await body(tc);
  } catch (err) {
    code = 1;
    if (!(err instanceof DeclaredStatus)) {
      process.stdout.write(
        `${logStamp()} testcase failed: ${err instanceof Error ? err.message : String(err)}\n`,
      );
      if (process.env.OSSTEST_DEBUG && err instanceof Error) process.stdout.write(`${err.stack}\n`);
    }
  } finally {
    if (tc) await tc.close();
  }
  process.exit(code);
}
