/**
 * The sqlite store (standalone mode). One file shared by the executor and every testcase it spawns,
 * each a separate process with its own connection, so:
 * - WAL lets readers run while one process writes; `busy_timeout` makes a writer wait its turn
 *   instead of failing;
 * - every change, even a single statement, runs in a `BEGIN IMMEDIATE` transaction: the write lock
 *   is taken before anything is read, so a read-then-write (step numbering, allocation) cannot race,
 *   and a writer never hits SQLITE_BUSY_SNAPSHOT (which busy_timeout does not retry);
 * - every check that can refuse a change runs before the first write of its transaction, and a
 *   refusal rolls the transaction back, so a refused change leaves the file as it was.
 * better-sqlite3 is synchronous; the async methods only honour the Store interface.
 */
import { mkdirSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import {
  isJobStatus,
  isStepStatus,
  type JobStatus,
  nextJobStatus,
  type StepStatus,
} from '../../model/status.js';
import {
  BISECTION_COLS,
  BISECTION_FLIGHT_COLS,
  type BisectionFlightRow,
  type BisectionRow,
  bisectionNotFound,
  bisectionUpdateColumns,
  checkBisectionFlight,
  checkBisectionId,
  checkBisectionKey,
  checkBisectionListLimit,
  checkBisectionResult,
  checkState,
  toBisection,
  toBisectionFlight,
} from '../bisections.js';
import { ConflictError, FrozenError, NotFoundError, StoreError } from '../errors.js';
import {
  applyBranchControlChange,
  applyGateRunChange,
  BRANCH_CONTROL_COLS,
  type BranchControlRow,
  checkGateRunId,
  checkListLimit,
  checkNewGateRun,
  checkNewPush,
  defaultBranchControl,
  GATE_RUN_COLS,
  type GateRunRow,
  gateRunNotFound,
  PUSH_COLS,
  type PushRow,
  toBranchControl,
  toGateRun,
  toPush,
} from '../gate.js';
import type {
  BranchControl,
  BranchControlChange,
  GateRun,
  GateRunChange,
  NewGateRun,
  NewPush,
  PushRecord,
} from '../gate-types.js';
import { sqliteDriver } from '../lab/driver.js';
import { LabStoreImpl } from '../lab/lab-store.js';
import type { LabStore } from '../lab/types.js';
import {
  checkFlightName,
  checkHostEvent,
  checkHostFlag,
  checkHostIdent,
  checkHostName,
  checkHostProp,
  checkJobName,
  checkLabel,
  checkNonEmpty,
  checkRunvarName,
  normaliseMac,
} from '../names.js';
import type { Store } from '../store.js';
import type {
  Allocation,
  AllocationEvent,
  Bisection,
  BisectionFlight,
  BisectionFlightRole,
  BisectionResult,
  BisectionState,
  BisectionUpdate,
  Flight,
  Host,
  HostEvent,
  Job,
  Millis,
  NewFlight,
  Runvar,
  Step,
} from '../types.js';
import { migrateSqlite } from './migrate.js';

/** How long a writer waits for another process's transaction before giving up. */
export const BUSY_TIMEOUT_MS = 15_000;

const CONSTRUCTING = 'constructing';

interface FlightRow {
  flight: string;
  seq: number;
  branch: string;
  intended: string;
  blessing: string;
  created: number;
  started: number | null;
}
interface JobRow {
  flight: string;
  job: string;
  recipe: string;
  status: string;
}
interface RunvarRow {
  flight: string;
  job: string;
  name: string;
  val: string;
  synth: number;
}
interface StepRow {
  flight: string;
  job: string;
  stepno: number;
  testcase: string;
  testid: string;
  status: string;
  started: number | null;
  finished: number | null;
  log_path: string | null;
}
interface HostRow {
  name: string;
  mac: string | null;
  ip: string | null;
}
interface AllocationRow {
  host: string;
  flight: string;
  job: string;
  ident: string;
  allocated: number;
}
interface LogRow extends Omit<AllocationRow, 'allocated'> {
  id: number;
  event: string;
  at: number;
}

const toFlight = (r: FlightRow): Flight => ({ ...r });
const toJob = (r: JobRow): Job => ({ ...r, status: r.status as JobStatus });
const toRunvar = (r: RunvarRow): Runvar => ({ ...r, synth: r.synth !== 0 });
const toStep = (r: StepRow): Step => ({
  flight: r.flight,
  job: r.job,
  stepno: r.stepno,
  testcase: r.testcase,
  testid: r.testid,
  status: r.status as StepStatus,
  started: r.started,
  finished: r.finished,
  logPath: r.log_path,
});
const toEvent = (r: LogRow): AllocationEvent => ({ ...r, event: r.event as AllocationEvent['event'] });

function checkLimit(limit: number | undefined): number {
  if (limit === undefined) return -1; // sqlite: LIMIT -1 is no limit
  if (!Number.isSafeInteger(limit) || limit < 0)
    throw new StoreError(`limit must be a whole number ≥ 0, not ${limit}`);
  return limit;
}

function checkTime(what: string, t: Millis | undefined): Millis {
  if (t === undefined) return Date.now();
  if (!Number.isSafeInteger(t) || t < 0)
    throw new StoreError(`${what} must be milliseconds since the epoch, not ${t}`);
  return t;
}

function checkValue(what: string, v: unknown): string {
  if (typeof v !== 'string') throw new StoreError(`${what} must be a string, not ${typeof v}`);
  return v;
}

function frozen(f: FlightRow, what: string): FrozenError {
  return new FrozenError(
    `flight ${f.flight} is ${f.blessing}: its definition is frozen; ${what} (jobs and definition runvars change only while a flight is constructing)`,
  );
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  private readonly statements = new Map<string, Database.Statement>();
  /** One wrapper runs any function as a transaction; `.immediate` / `.deferred` pick the BEGIN. */
  private readonly txn: Database.Transaction<(fn: () => unknown) => unknown>;

  readonly lab: LabStore;

  constructor(
    private readonly db: Database.Database,
    readonly path: string,
  ) {
    this.txn = db.transaction((fn: () => unknown) => fn());
    this.lab = new LabStoreImpl(sqliteDriver(db, path));
  }

  /** Prepared once per connection: the executor's hot path (steps, runvars) reuses them. */
  private q(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  private write<T>(fn: () => T): T {
    return this.txn.immediate(fn) as T;
  }

  /** Several reads that must agree with each other (a host with its flags and props). */
  private read<T>(fn: () => T): T {
    return this.txn.deferred(fn) as T;
  }

  /** The connection's settings, for tests and `osstest` diagnostics. */
  settings(): { journalMode: string; busyTimeoutMs: number; foreignKeys: boolean; synchronous: string } {
    const sync = this.db.pragma('synchronous', { simple: true }) as number;
    return {
      journalMode: String(this.db.pragma('journal_mode', { simple: true })),
      busyTimeoutMs: Number(this.db.pragma('busy_timeout', { simple: true })),
      foreignKeys: this.db.pragma('foreign_keys', { simple: true }) === 1,
      synchronous: ['OFF', 'NORMAL', 'FULL', 'EXTRA'][sync] ?? String(sync),
    };
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  // ---- lookups that refuse with NotFoundError

  private flightRow(flight: string): FlightRow {
    const r = this.q('SELECT * FROM flights WHERE flight = ?').get(flight) as FlightRow | undefined;
    if (!r) throw new NotFoundError(`no flight '${flight}'`);
    return r;
  }

  private jobRow(flight: string, job: string): JobRow {
    const r = this.q('SELECT * FROM jobs WHERE flight = ? AND job = ?').get(flight, job) as
      | JobRow
      | undefined;
    if (!r) throw this.jobNotFound(flight, job);
    return r;
  }

  /** Says which of flight and job is missing. */
  private jobNotFound(flight: string, job: string): NotFoundError {
    this.flightRow(flight);
    return new NotFoundError(`flight ${flight} has no job '${job}'`);
  }

  private hostRow(name: string): HostRow {
    const r = this.q('SELECT * FROM hosts WHERE name = ?').get(name) as HostRow | undefined;
    if (!r) throw new NotFoundError(`no host '${name}'`);
    return r;
  }

  private nextCounter(name: string): number {
    return this.q('UPDATE counters SET val = val + 1 WHERE name = ? RETURNING val')
      .pluck()
      .get(name) as number;
  }

  private flightExists(flight: string): boolean {
    return this.q('SELECT 1 FROM flights WHERE flight = ?').get(flight) !== undefined;
  }

  // ---- flights

  async createFlight(nf: NewFlight): Promise<Flight> {
    const branch = checkLabel('branch', nf.branch);
    const intended = checkLabel('intended blessing', nf.intended);
    const blessing = checkLabel('blessing', nf.blessing ?? CONSTRUCTING);
    const named = nf.flight === undefined ? undefined : checkFlightName(nf.flight);
    return this.write(() => {
      let flight: string;
      if (named !== undefined) {
        if (this.flightExists(named)) throw new ConflictError(`flight '${named}' already exists`);
        flight = named;
      } else {
        // Numbers already taken as names (someone made flight "12" by hand) are skipped.
        do flight = String(this.nextCounter('flight_number'));
        while (this.flightExists(flight));
      }
      const row: FlightRow = {
        flight,
        seq: this.nextCounter('flight_seq'),
        branch,
        intended,
        blessing,
        created: Date.now(),
        started: null,
      };
      this.q(
        'INSERT INTO flights (flight, seq, branch, intended, blessing, created, started) VALUES (@flight, @seq, @branch, @intended, @blessing, @created, @started)',
      ).run(row);
      return toFlight(row);
    });
  }

  async getFlight(flight: string): Promise<Flight | undefined> {
    const r = this.q('SELECT * FROM flights WHERE flight = ?').get(flight) as FlightRow | undefined;
    return r && toFlight(r);
  }

  async listFlights(opts: { branch?: string; limit?: number } = {}): Promise<Flight[]> {
    const limit = checkLimit(opts.limit);
    const rows =
      opts.branch === undefined
        ? this.q('SELECT * FROM flights ORDER BY seq DESC LIMIT ?').all(limit)
        : this.q('SELECT * FROM flights WHERE branch = ? ORDER BY seq DESC LIMIT ?').all(opts.branch, limit);
    return (rows as FlightRow[]).map(toFlight);
  }

  async markFlightStarted(flight: string, at?: Millis): Promise<Flight> {
    const when = checkTime('start time', at);
    return this.write(() => {
      const f = this.flightRow(flight);
      if (f.started !== null) return toFlight(f);
      const blessing = f.blessing === CONSTRUCTING ? 'running' : f.blessing;
      this.q('UPDATE flights SET started = ?, blessing = ? WHERE flight = ?').run(when, blessing, flight);
      return toFlight({ ...f, started: when, blessing });
    });
  }

  async setFlightBlessing(flight: string, blessing: string): Promise<void> {
    checkLabel('blessing', blessing);
    this.write(() => {
      const f = this.flightRow(flight);
      if (blessing === CONSTRUCTING && f.started !== null) {
        throw new FrozenError(`flight ${flight} has started: it cannot go back to ${CONSTRUCTING}`);
      }
      this.q('UPDATE flights SET blessing = ? WHERE flight = ?').run(blessing, flight);
    });
  }

  async deleteFlight(flight: string): Promise<void> {
    this.write(() => {
      this.flightRow(flight);
      // Released one by one so the allocation log shows every hold ending.
      const held = this.q('SELECT * FROM allocations WHERE flight = ?').all(flight) as AllocationRow[];
      for (const a of held) this.release(a);
      this.q('DELETE FROM flights WHERE flight = ?').run(flight);
    });
  }

  async recordHarness(flight: string, revision: string): Promise<void> {
    checkNonEmpty('harness revision', revision);
    this.write(() => {
      this.flightRow(flight);
      this.q(
        'INSERT INTO flights_harness_touched (flight, harness, recorded) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
      ).run(flight, revision, Date.now());
    });
  }

  async harnessRevisions(flight: string): Promise<string[]> {
    return this.read(() => {
      this.flightRow(flight);
      return this.q('SELECT harness FROM flights_harness_touched WHERE flight = ? ORDER BY recorded, harness')
        .pluck()
        .all(flight) as string[];
    });
  }

  // ---- jobs

  async createJob(
    flight: string,
    job: string,
    recipe: string,
    runvars: Record<string, string> = {},
  ): Promise<Job> {
    checkJobName(job);
    checkNonEmpty(`recipe of job ${job}`, recipe);
    const vars = Object.entries(runvars);
    for (const [n, v] of vars) {
      checkRunvarName(n);
      checkValue(`runvar ${n} of job ${job}`, v);
    }
    return this.write(() => {
      const f = this.flightRow(flight);
      if (f.blessing !== CONSTRUCTING) throw frozen(f, `cannot create job '${job}'`);
      if (this.q('SELECT 1 FROM jobs WHERE flight = ? AND job = ?').get(flight, job)) {
        throw new ConflictError(`flight ${flight} already has a job '${job}'`);
      }
      const row: JobRow = { flight, job, recipe, status: 'queued' };
      this.q('INSERT INTO jobs (flight, job, recipe, status) VALUES (@flight, @job, @recipe, @status)').run(
        row,
      );
      const ins = this.q('INSERT INTO runvars (flight, job, name, val, synth) VALUES (?, ?, ?, ?, 0)');
      for (const [n, v] of vars) ins.run(flight, job, n, v);
      return toJob(row);
    });
  }

  async getJob(flight: string, job: string): Promise<Job | undefined> {
    const r = this.q('SELECT * FROM jobs WHERE flight = ? AND job = ?').get(flight, job) as
      | JobRow
      | undefined;
    return r && toJob(r);
  }

  async listJobs(flight: string): Promise<Job[]> {
    return this.read(() => {
      this.flightRow(flight);
      return (this.q('SELECT * FROM jobs WHERE flight = ? ORDER BY job').all(flight) as JobRow[]).map(toJob);
    });
  }

  async setJobStatus(flight: string, job: string, status: JobStatus): Promise<JobStatus> {
    if (!isJobStatus(status)) throw new StoreError(`invalid job status '${status}' for ${flight}/${job}`);
    return this.write(() => {
      const current = this.jobRow(flight, job).status as JobStatus;
      const next = nextJobStatus(current, status);
      if (next !== current)
        this.q('UPDATE jobs SET status = ? WHERE flight = ? AND job = ?').run(next, flight, job);
      return next;
    });
  }

  async resetJob(flight: string, job: string): Promise<void> {
    this.write(() => {
      this.jobRow(flight, job);
      this.q('DELETE FROM steps WHERE flight = ? AND job = ?').run(flight, job);
      this.q('DELETE FROM runvars WHERE flight = ? AND job = ? AND synth = 1').run(flight, job);
      this.releaseJob(flight, job);
      this.q("UPDATE jobs SET status = 'queued' WHERE flight = ? AND job = ?").run(flight, job);
    });
  }

  // ---- runvars

  async getRunvar(flight: string, job: string, name: string): Promise<Runvar | undefined> {
    const r = this.q('SELECT * FROM runvars WHERE flight = ? AND job = ? AND name = ?').get(
      flight,
      job,
      name,
    ) as RunvarRow | undefined;
    return r && toRunvar(r);
  }

  async listRunvars(flight: string, job?: string): Promise<Runvar[]> {
    return this.read(() => {
      if (job === undefined) {
        this.flightRow(flight);
        return (
          this.q('SELECT * FROM runvars WHERE flight = ? ORDER BY job, name').all(flight) as RunvarRow[]
        ).map(toRunvar);
      }
      this.jobRow(flight, job);
      return (
        this.q('SELECT * FROM runvars WHERE flight = ? AND job = ? ORDER BY name').all(
          flight,
          job,
        ) as RunvarRow[]
      ).map(toRunvar);
    });
  }

  /** The flight's blessing and the runvar's current kind (null: no such runvar), in one lookup. */
  private runvarContext(flight: string, job: string, name: string): { f: FlightRow; synth: number | null } {
    const r = this.q(
      `SELECT f.*, (SELECT r.synth FROM runvars r WHERE r.flight = j.flight AND r.job = j.job AND r.name = ?) AS cur
       FROM jobs j JOIN flights f ON f.flight = j.flight WHERE j.flight = ? AND j.job = ?`,
    ).get(name, flight, job) as (FlightRow & { cur: number | null }) | undefined;
    if (!r) throw this.jobNotFound(flight, job);
    const { cur, ...f } = r;
    return { f, synth: cur };
  }

  async setRunvar(
    flight: string,
    job: string,
    name: string,
    val: string,
    opts: { synth: boolean },
  ): Promise<void> {
    checkRunvarName(name);
    checkValue(`runvar ${name}`, val);
    const synth = Boolean(opts.synth);
    this.write(() => {
      const { f } = this.runvarContext(flight, job, name);
      if (!synth && f.blessing !== CONSTRUCTING)
        throw frozen(f, `cannot set definition runvar ${job} ${name}`);
      this.q(
        `INSERT INTO runvars (flight, job, name, val, synth) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (flight, job, name) DO UPDATE SET val = excluded.val, synth = excluded.synth`,
      ).run(flight, job, name, val, synth ? 1 : 0);
    });
  }

  async deleteRunvar(flight: string, job: string, name: string, opts: { synth: boolean }): Promise<void> {
    checkRunvarName(name);
    this.write(() => {
      const { f, synth } = this.runvarContext(flight, job, name);
      if (synth === null) throw new NotFoundError(`flight ${flight} job ${job} has no runvar '${name}'`);
      // Removing a definition runvar is a definition change however the caller labels it.
      const definition = !opts.synth || synth === 0;
      if (definition && f.blessing !== CONSTRUCTING)
        throw frozen(f, `cannot delete definition runvar ${job} ${name}`);
      this.q('DELETE FROM runvars WHERE flight = ? AND job = ? AND name = ?').run(flight, job, name);
    });
  }

  // ---- steps

  async startStep(
    flight: string,
    job: string,
    s: { testcase: string; testid: string | ((stepno: number) => string); started?: Millis },
  ): Promise<Step> {
    checkNonEmpty('testcase', s.testcase);
    if (typeof s.testid === 'string') checkNonEmpty(`testid of ${s.testcase}`, s.testid);
    const started = checkTime('step start time', s.started);
    return this.write(() => {
      if (!this.q('SELECT 1 FROM jobs WHERE flight = ? AND job = ?').get(flight, job)) {
        throw this.jobNotFound(flight, job);
      }
      const stepno = this.q('SELECT COALESCE(MAX(stepno), 0) + 1 FROM steps WHERE flight = ? AND job = ?')
        .pluck()
        .get(flight, job) as number;
      const testid = typeof s.testid === 'function' ? s.testid(stepno) : s.testid;
      checkNonEmpty(`testid of ${s.testcase}`, testid);
      this.q(
        "INSERT INTO steps (flight, job, stepno, testcase, testid, status, started) VALUES (?, ?, ?, ?, ?, 'running', ?)",
      ).run(flight, job, stepno, s.testcase, testid, started);
      return {
        flight,
        job,
        stepno,
        testcase: s.testcase,
        testid,
        status: 'running' as const,
        started,
        finished: null,
        logPath: null,
      };
    });
  }

  async finishStep(
    flight: string,
    job: string,
    stepno: number,
    s: { status: StepStatus; finished?: Millis; logPath?: string | null; testid?: string },
  ): Promise<void> {
    if (!isStepStatus(s.status) || s.status === 'running') {
      throw new StoreError(`invalid final status '${s.status}' for step ${stepno} of ${flight}/${job}`);
    }
    const finished = checkTime('step finish time', s.finished);
    if (s.testid !== undefined) checkNonEmpty(`testid of step ${stepno}`, s.testid);
    if (s.logPath !== undefined && s.logPath !== null) checkValue('step log path', s.logPath);
    this.write(() => {
      const r = this.q(
        `UPDATE steps SET status = ?, finished = ?,
           log_path = CASE WHEN ? = 1 THEN ? ELSE log_path END,
           testid = COALESCE(?, testid)
         WHERE flight = ? AND job = ? AND stepno = ?`,
      ).run(
        s.status,
        finished,
        s.logPath === undefined ? 0 : 1,
        s.logPath ?? null,
        s.testid ?? null,
        flight,
        job,
        stepno,
      );
      if (r.changes === 0) {
        this.jobRow(flight, job);
        throw new NotFoundError(`flight ${flight} job ${job} has no step ${stepno}`);
      }
    });
  }

  async listSteps(flight: string, job?: string): Promise<Step[]> {
    return this.read(() => {
      if (job === undefined) {
        this.flightRow(flight);
        return (
          this.q('SELECT * FROM steps WHERE flight = ? ORDER BY job, stepno').all(flight) as StepRow[]
        ).map(toStep);
      }
      this.jobRow(flight, job);
      return (
        this.q('SELECT * FROM steps WHERE flight = ? AND job = ? ORDER BY stepno').all(
          flight,
          job,
        ) as StepRow[]
      ).map(toStep);
    });
  }

  async stepPassedOnBranch(
    branch: string,
    job: string,
    testids: readonly string[],
    beforeSeq?: number,
  ): Promise<boolean> {
    if (testids.length === 0) return false;
    const before = beforeSeq ?? Number.MAX_SAFE_INTEGER;
    if (!Number.isSafeInteger(before))
      throw new StoreError(`beforeSeq must be a whole number, not ${beforeSeq}`);
    // CROSS JOIN keeps sqlite on the steps (job, testid) index, then the flight by its key; a
    // step that never passed costs one walk of that job's rows of that testid.
    const marks = testids.map(() => '?').join(', ');
    const row = this.q(
      `SELECT 1 FROM steps s CROSS JOIN flights f
       WHERE s.job = ? AND s.testid IN (${marks}) AND s.status = 'pass'
         AND f.flight = s.flight AND f.branch = ? AND f.seq < ? LIMIT 1`,
    ).get(job, ...testids, branch, before);
    return row !== undefined;
  }

  // ---- hosts

  private loadHost(r: HostRow): Host {
    const flags = this.q('SELECT flag FROM host_flags WHERE host = ? ORDER BY flag')
      .pluck()
      .all(r.name) as string[];
    const props: Record<string, string> = {};
    const rows = this.q('SELECT name, val FROM host_props WHERE host = ? ORDER BY name').all(r.name) as {
      name: string;
      val: string;
    }[];
    for (const p of rows) props[p.name] = p.val;
    return { ...r, flags, props };
  }

  async upsertHost(h: { name: string; mac?: string | null; ip?: string | null }): Promise<Host> {
    const name = checkHostName(h.name);
    const mac = h.mac === undefined || h.mac === null ? h.mac : normaliseMac(h.mac, name);
    if (h.ip !== undefined && h.ip !== null && isIP(h.ip) === 0) {
      throw new StoreError(`invalid IP address ${JSON.stringify(h.ip)} for host ${name}`);
    }
    return this.write(() => {
      if (mac) {
        const other = this.q('SELECT name FROM hosts WHERE mac = ? AND name <> ?').pluck().get(mac, name) as
          | string
          | undefined;
        if (other !== undefined)
          throw new ConflictError(`MAC address ${mac} already belongs to host ${other}`);
      }
      const old = this.q('SELECT * FROM hosts WHERE name = ?').get(name) as HostRow | undefined;
      const row: HostRow = {
        name,
        mac: mac === undefined ? (old?.mac ?? null) : mac,
        ip: h.ip === undefined ? (old?.ip ?? null) : h.ip,
      };
      if (old) this.q('UPDATE hosts SET mac = @mac, ip = @ip WHERE name = @name').run(row);
      else this.q('INSERT INTO hosts (name, mac, ip) VALUES (@name, @mac, @ip)').run(row);
      return this.loadHost(row);
    });
  }

  async getHost(name: string): Promise<Host | undefined> {
    return this.read(() => {
      const r = this.q('SELECT * FROM hosts WHERE name = ?').get(name) as HostRow | undefined;
      return r && this.loadHost(r);
    });
  }

  async listHosts(): Promise<Host[]> {
    return this.read(() => {
      const hosts = new Map<string, Host>();
      for (const r of this.q('SELECT * FROM hosts ORDER BY name').all() as HostRow[]) {
        hosts.set(r.name, { ...r, flags: [], props: {} });
      }
      for (const f of this.q('SELECT host, flag FROM host_flags ORDER BY host, flag').all() as {
        host: string;
        flag: string;
      }[]) {
        hosts.get(f.host)?.flags.push(f.flag);
      }
      for (const p of this.q('SELECT host, name, val FROM host_props ORDER BY host, name').all() as {
        host: string;
        name: string;
        val: string;
      }[]) {
        const h = hosts.get(p.host);
        if (h) h.props[p.name] = p.val;
      }
      return [...hosts.values()];
    });
  }

  async deleteHost(name: string): Promise<void> {
    this.write(() => {
      this.hostRow(name);
      const a = this.q('SELECT * FROM allocations WHERE host = ?').get(name) as AllocationRow | undefined;
      if (a) {
        throw new ConflictError(
          `host ${name} is allocated to ${a.flight}/${a.job} (${a.ident}): release it first`,
        );
      }
      this.q('DELETE FROM hosts WHERE name = ?').run(name);
    });
  }

  async setHostFlags(name: string, add: readonly string[], remove: readonly string[] = []): Promise<void> {
    for (const f of [...add, ...remove]) checkHostFlag(f);
    const both = add.filter((f) => remove.includes(f));
    if (both.length > 0) throw new StoreError(`host ${name}: flag ${both[0]} is both added and removed`);
    this.write(() => {
      this.hostRow(name);
      const ins = this.q('INSERT INTO host_flags (host, flag) VALUES (?, ?) ON CONFLICT DO NOTHING');
      for (const f of add) ins.run(name, f);
      const del = this.q('DELETE FROM host_flags WHERE host = ? AND flag = ?');
      for (const f of remove) del.run(name, f);
    });
  }

  async setHostProp(name: string, prop: string, val: string | null): Promise<void> {
    checkHostProp(prop);
    if (val !== null) checkValue(`property ${prop} of host ${name}`, val);
    this.write(() => {
      this.hostRow(name);
      if (val === null) this.q('DELETE FROM host_props WHERE host = ? AND name = ?').run(name, prop);
      else {
        this.q(
          'INSERT INTO host_props (host, name, val) VALUES (?, ?, ?) ON CONFLICT (host, name) DO UPDATE SET val = excluded.val',
        ).run(name, prop, val);
      }
    });
  }

  async recordHostEvent(host: string, e: { kind: string; detail: string; at?: Millis }): Promise<HostEvent> {
    const { kind, detail } = checkHostEvent(host, e);
    const at = checkTime('host event time', e.at);
    return this.write(() => {
      const r = this.q('INSERT INTO host_events (host, kind, detail, at) VALUES (?, ?, ?, ?)').run(
        host,
        kind,
        detail,
        at,
      );
      return { id: Number(r.lastInsertRowid), host, kind, detail, at };
    });
  }

  async listHostEvents(host: string, opts: { since?: Millis } = {}): Promise<HostEvent[]> {
    const since = opts.since === undefined ? 0 : checkTime('since', opts.since);
    return this.q(
      'SELECT id, host, kind, detail, at FROM host_events WHERE host = ? AND at >= ? ORDER BY at, id',
    ).all(host, since) as HostEvent[];
  }

  // ---- allocations

  private logEvent(a: Omit<AllocationRow, 'allocated'>, event: AllocationEvent['event'], at: Millis): void {
    this.q('INSERT INTO allocation_log (host, flight, job, ident, event, at) VALUES (?, ?, ?, ?, ?, ?)').run(
      a.host,
      a.flight,
      a.job,
      a.ident,
      event,
      at,
    );
  }

  private release(a: AllocationRow): void {
    this.q('DELETE FROM allocations WHERE host = ?').run(a.host);
    this.logEvent(a, 'release', Date.now());
  }

  private releaseJob(flight: string, job: string): void {
    const held = this.q('SELECT * FROM allocations WHERE flight = ? AND job = ? ORDER BY host').all(
      flight,
      job,
    ) as AllocationRow[];
    for (const a of held) this.release(a);
  }

  async allocateHost(host: string, owner: { flight: string; job: string; ident: string }): Promise<boolean> {
    checkHostName(host);
    checkHostIdent(owner.ident);
    return this.write(() => {
      this.hostRow(host);
      this.jobRow(owner.flight, owner.job);
      const cur = this.q('SELECT * FROM allocations WHERE host = ?').get(host) as AllocationRow | undefined;
      if (cur) return cur.flight === owner.flight && cur.job === owner.job && cur.ident === owner.ident;
      const row: AllocationRow = {
        host,
        flight: owner.flight,
        job: owner.job,
        ident: owner.ident,
        allocated: Date.now(),
      };
      this.q(
        'INSERT INTO allocations (host, flight, job, ident, allocated) VALUES (@host, @flight, @job, @ident, @allocated)',
      ).run(row);
      this.logEvent(row, 'allocate', row.allocated);
      return true;
    });
  }

  async releaseHost(host: string, owner?: { flight: string; job: string }): Promise<void> {
    this.write(() => {
      this.hostRow(host);
      const cur = this.q('SELECT * FROM allocations WHERE host = ?').get(host) as AllocationRow | undefined;
      if (!cur) return;
      if (owner && (cur.flight !== owner.flight || cur.job !== owner.job)) return;
      this.release(cur);
    });
  }

  async releaseJobHosts(flight: string, job: string): Promise<void> {
    this.write(() => {
      this.jobRow(flight, job);
      this.releaseJob(flight, job);
    });
  }

  async listAllocations(): Promise<Allocation[]> {
    // Named columns: lab mode added lease columns that are not part of an Allocation.
    return (
      this.q(
        'SELECT host, flight, job, ident, allocated FROM allocations ORDER BY host',
      ).all() as AllocationRow[]
    ).map((r) => ({ ...r }));
  }

  async allocationLog(opts: { host?: string; limit?: number } = {}): Promise<AllocationEvent[]> {
    const limit = checkLimit(opts.limit);
    const rows =
      opts.host === undefined
        ? this.q(
            'SELECT id, host, flight, job, ident, event, at FROM (SELECT * FROM allocation_log ORDER BY id DESC LIMIT ?) ORDER BY id',
          ).all(limit)
        : this.q(
            'SELECT id, host, flight, job, ident, event, at FROM (SELECT * FROM allocation_log WHERE host = ? ORDER BY id DESC LIMIT ?) ORDER BY id',
          ).all(opts.host, limit);
    return (rows as LogRow[]).map(toEvent);
  }

  // ---- bisections (shared checks in ../bisections.ts)

  private bisectionRow(id: number): BisectionRow {
    const r = this.q(`SELECT ${BISECTION_COLS} FROM bisections WHERE id = ?`).get(id) as
      | BisectionRow
      | undefined;
    if (!r) throw bisectionNotFound(id);
    return r;
  }

  async requestBisection(b: {
    branch: string;
    job: string;
    testid: string;
    requestedFlight?: string | null;
  }): Promise<{ bisection: Bisection; created: boolean }> {
    checkBisectionKey(b);
    const requested = b.requestedFlight ?? null;
    if (requested !== null) checkFlightName(requested);
    return this.write(() => {
      const ins = this.q(
        `INSERT INTO bisections (branch, job, testid, requested_flight, state, trees, hosts, created)
         VALUES (?, ?, ?, ?, 'pending', '{}', '{}', ?)
         ON CONFLICT (branch, job, testid) WHERE state <> 'done' DO NOTHING`,
      ).run(b.branch, b.job, b.testid, requested, Date.now());
      const r = this.q(
        `SELECT ${BISECTION_COLS} FROM bisections WHERE branch = ? AND job = ? AND testid = ? AND state <> 'done'`,
      ).get(b.branch, b.job, b.testid) as BisectionRow;
      return { bisection: toBisection(r), created: ins.changes > 0 };
    });
  }

  async getBisection(id: number): Promise<Bisection | undefined> {
    checkBisectionId(id);
    const r = this.q(`SELECT ${BISECTION_COLS} FROM bisections WHERE id = ?`).get(id) as
      | BisectionRow
      | undefined;
    return r && toBisection(r);
  }

  async listBisections(
    opts: { branch?: string; job?: string; testid?: string; state?: BisectionState; limit?: number } = {},
  ): Promise<Bisection[]> {
    checkState(opts.state);
    const limit = checkBisectionListLimit(opts.limit) ?? -1;
    const rows = this.q(
      `SELECT ${BISECTION_COLS} FROM bisections
       WHERE (@branch IS NULL OR branch = @branch) AND (@job IS NULL OR job = @job)
         AND (@testid IS NULL OR testid = @testid) AND (@state IS NULL OR state = @state)
       ORDER BY id DESC LIMIT @limit`,
    ).all({
      branch: opts.branch ?? null,
      job: opts.job ?? null,
      testid: opts.testid ?? null,
      state: opts.state ?? null,
      limit,
    }) as BisectionRow[];
    return rows.map(toBisection);
  }

  async updateBisection(id: number, patch: BisectionUpdate): Promise<Bisection> {
    checkBisectionId(id);
    const cols = bisectionUpdateColumns(patch);
    return this.write(() => {
      this.bisectionRow(id);
      if (cols.length > 0) {
        const set = cols.map(([c]) => `${c} = ?`).join(', ');
        const vals = cols.map(([c, v]) => (c === 'confirmed' && v !== null ? (v ? 1 : 0) : v));
        this.db.prepare(`UPDATE bisections SET ${set} WHERE id = ?`).run(...vals, id);
      }
      return toBisection(this.bisectionRow(id));
    });
  }

  async addBisectionFlight(
    id: number,
    f: {
      flight: string;
      role: BisectionFlightRole;
      tuple: string;
      reason?: string | null;
      result?: BisectionResult | null;
      at?: Millis | null;
    },
  ): Promise<BisectionFlight> {
    checkBisectionId(id);
    const c = checkBisectionFlight(f);
    return this.write(() => {
      this.bisectionRow(id);
      if (this.q('SELECT 1 FROM bisection_flights WHERE bisection = ? AND flight = ?').get(id, c.flight))
        throw new ConflictError(`bisection ${id} already has flight ${c.flight}`);
      const added = Date.now();
      this.q(
        'INSERT INTO bisection_flights (bisection, flight, role, tuple, reason, result, at, added) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      ).run(id, c.flight, c.role, c.tuple, c.reason, c.result, c.at, added);
      return { bisection: id, ...c, added };
    });
  }

  async setBisectionFlightResult(
    id: number,
    flight: string,
    result: BisectionResult,
    at?: Millis,
  ): Promise<void> {
    checkBisectionId(id);
    checkBisectionResult(result);
    const when = checkTime('result time', at);
    this.write(() => {
      const r = this.q(
        'UPDATE bisection_flights SET result = ?, at = ? WHERE bisection = ? AND flight = ?',
      ).run(result, when, id, flight);
      if (r.changes === 0) {
        this.bisectionRow(id);
        throw new NotFoundError(`bisection ${id} has no flight ${flight}`);
      }
    });
  }

  async listBisectionFlights(id: number): Promise<BisectionFlight[]> {
    checkBisectionId(id);
    return this.read(() => {
      this.bisectionRow(id);
      return (
        this.q(`SELECT ${BISECTION_FLIGHT_COLS} FROM bisection_flights WHERE bisection = ? ORDER BY seq`).all(
          id,
        ) as BisectionFlightRow[]
      ).map(toBisectionFlight);
    });
  }

  // ---- the push gate's state (shared checks in ../gate.ts)

  private branchControlOf(branch: string): BranchControl {
    const r = this.q(`SELECT ${BRANCH_CONTROL_COLS} FROM branch_controls WHERE branch = ?`).get(branch) as
      | BranchControlRow
      | undefined;
    return r ? toBranchControl(r) : defaultBranchControl(branch);
  }

  async getBranchControl(branch: string): Promise<BranchControl> {
    checkLabel('branch', branch);
    return this.branchControlOf(branch);
  }

  async listBranchControls(): Promise<BranchControl[]> {
    return (
      this.q(`SELECT ${BRANCH_CONTROL_COLS} FROM branch_controls ORDER BY branch`).all() as BranchControlRow[]
    ).map(toBranchControl);
  }

  async setBranchControl(branch: string, change: BranchControlChange): Promise<BranchControl> {
    checkLabel('branch', branch);
    return this.write(() => {
      const next = applyBranchControlChange(this.branchControlOf(branch), change);
      const updated = Date.now();
      this.q(
        `INSERT INTO branch_controls (branch, stopped, block_push, force_push, note, updated) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (branch) DO UPDATE SET stopped = excluded.stopped, block_push = excluded.block_push,
           force_push = excluded.force_push, note = excluded.note, updated = excluded.updated`,
      ).run(branch, next.stopped ? 1 : 0, next.blockPush ? 1 : 0, next.forcePush, next.note, updated);
      return { ...next, updated };
    });
  }

  async takeForcePush(branch: string, rev: string): Promise<boolean> {
    checkLabel('branch', branch);
    checkNonEmpty('force-push revision', rev);
    return this.write(
      () =>
        this.q(
          'UPDATE branch_controls SET force_push = NULL, updated = ? WHERE branch = ? AND force_push = ?',
        ).run(Date.now(), branch, rev).changes > 0,
    );
  }

  private gateRunRow(id: number): GateRun {
    const r = this.q(`SELECT ${GATE_RUN_COLS} FROM gate_runs WHERE id = ?`).get(id) as GateRunRow | undefined;
    if (!r) throw gateRunNotFound(id);
    return toGateRun(r);
  }

  async startGateRun(nr: NewGateRun): Promise<GateRun> {
    const c = checkNewGateRun(nr);
    return this.write(() => {
      const open = this.q(`SELECT ${GATE_RUN_COLS} FROM gate_runs WHERE branch = ? AND finished IS NULL`).get(
        c.branch,
      ) as GateRunRow | undefined;
      if (open) {
        throw new ConflictError(
          `branch ${c.branch} has gate run ${open.id} going on (started by ${open.runner}); one run of a branch at a time`,
        );
      }
      const r = this.q(
        `INSERT INTO gate_runs (branch, tree, kind, old_rev, new_rev, revisions, flight, reruns, runner, started, finished, completed, outcome, detail)
         VALUES (?, ?, ?, ?, ?, ?, NULL, '[]', ?, ?, NULL, 0, NULL, '')`,
      ).run(c.branch, c.tree, c.kind, c.old, c.new, c.revisions, c.runner, c.started);
      return this.gateRunRow(Number(r.lastInsertRowid));
    });
  }

  async updateGateRun(id: number, change: GateRunChange): Promise<GateRun> {
    checkGateRunId(id);
    return this.write(() => {
      const n = applyGateRunChange(this.gateRunRow(id), change, Date.now());
      this.q(
        'UPDATE gate_runs SET flight = ?, reruns = ?, completed = ?, outcome = ?, detail = ?, finished = ? WHERE id = ?',
      ).run(n.flight, JSON.stringify(n.reruns), n.completed ? 1 : 0, n.outcome, n.detail, n.finished, id);
      return n;
    });
  }

  async getGateRun(id: number): Promise<GateRun | undefined> {
    checkGateRunId(id);
    const r = this.q(`SELECT ${GATE_RUN_COLS} FROM gate_runs WHERE id = ?`).get(id) as GateRunRow | undefined;
    return r && toGateRun(r);
  }

  async listGateRuns(opts: { branch?: string; limit?: number } = {}): Promise<GateRun[]> {
    const limit = checkListLimit(opts.limit) ?? -1;
    return (
      this.q(
        `SELECT ${GATE_RUN_COLS} FROM gate_runs WHERE (@branch IS NULL OR branch = @branch) ORDER BY id DESC LIMIT @limit`,
      ).all({ branch: opts.branch ?? null, limit }) as GateRunRow[]
    ).map(toGateRun);
  }

  async findTestedRun(branch: string, tree: string, revision: string): Promise<GateRun | undefined> {
    const r = this.q(
      `SELECT ${GATE_RUN_COLS} FROM gate_runs WHERE branch = ? AND tree = ? AND new_rev = ? AND completed <> 0
       ORDER BY id DESC LIMIT 1`,
    ).get(branch, tree, revision) as GateRunRow | undefined;
    return r && toGateRun(r);
  }

  async recordPush(np: NewPush): Promise<PushRecord> {
    const c = checkNewPush(np);
    return this.write(() => {
      const r = this.q(
        `INSERT INTO gate_pushes (branch, flight, tree, url, ref, from_rev, to_rev, result, overridden, detail, at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        c.branch,
        c.flight,
        c.tree,
        c.url,
        c.ref,
        c.from,
        c.to,
        c.result,
        c.overridden ? 1 : 0,
        c.detail,
        c.at,
      );
      return { id: Number(r.lastInsertRowid), ...c };
    });
  }

  async listPushes(opts: { branch?: string; limit?: number } = {}): Promise<PushRecord[]> {
    const limit = checkListLimit(opts.limit) ?? -1;
    return (
      this.q(
        `SELECT ${PUSH_COLS} FROM gate_pushes WHERE (@branch IS NULL OR branch = @branch) ORDER BY id DESC LIMIT @limit`,
      ).all({ branch: opts.branch ?? null, limit }) as PushRow[]
    ).map(toPush);
  }
}

/** Opens (creating it and its directory if need be) and migrates a sqlite store. `:memory:` works for one process. */
export async function openSqliteStore(path: string): Promise<Store> {
  checkNonEmpty('sqlite database path', path);
  const memory = path === ':memory:';
  if (!memory) mkdirSync(dirname(resolve(path)), { recursive: true });
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  let db: Database.Database;
  for (;;) {
    try {
      db = openAndMigrate(path, memory);
      break;
    } catch (err) {
      // Several processes opening a fresh file at once: switching it to WAL can fail at once with
      // SQLITE_BUSY instead of waiting (SQLite does not wait where waiting could deadlock). Try again.
      const busy = (err as { code?: string }).code === 'SQLITE_BUSY';
      if (!busy || Date.now() >= deadline) {
        if (err instanceof StoreError) throw err;
        throw new StoreError(`cannot open sqlite database ${path}: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 45));
    }
  }
  return new SqliteStore(db, path);
}

function openAndMigrate(path: string, memory: boolean): Database.Database {
  const db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
  try {
    if (!memory) {
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal')
        throw new StoreError(`sqlite database ${path}: cannot switch to WAL (journal mode ${mode})`);
    }
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    migrateSqlite(db, path);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}
