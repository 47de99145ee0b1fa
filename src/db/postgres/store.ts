/**
 * The PostgreSQL store (lab mode): many processes on many machines share one database, and
 * PostgreSQL itself is the coordination engine — no daemon of ours holds state. The rules:
 * - READ COMMITTED throughout, with row locks wherever a decision is read and then written: the
 *   flight row `FOR SHARE` while a definition change checks the blessing (so markFlightStarted,
 *   which updates that row, waits for it or is waited for), the job row `FOR NO KEY UPDATE` while
 *   a step number is chosen or a status computed (after the wait, the next statement sees what the
 *   previous holder committed). Locks are taken flight → job → allocation, never the other way.
 * - Allocation is a primary key on `allocations.host` plus `INSERT … ON CONFLICT DO NOTHING`, in
 *   one statement with its log entry, so two holders at once cannot happen whatever the callers do.
 * - Single-statement changes run without BEGIN/COMMIT (a statement is atomic); a refused change
 *   either fails before writing or rolls its transaction back, so it leaves nothing behind.
 * - A transaction that loses a deadlock or serialisation race is retried from the start.
 * - Text is ordered with `COLLATE "C"` (byte order, as sqlite does), whatever the database's collation.
 */
import { isIP } from 'node:net';
import pg from 'pg';
import {
  isJobStatus,
  isStepStatus,
  type JobStatus,
  type StepStatus,
  stickyJobStatuses,
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
import { batch, type LabDriver, postgresDriver, query } from '../lab/driver.js';
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
import { connectionConfig, describeConnection } from './connection.js';
import { migratePostgres } from './migrate.js';

const CONSTRUCTING = 'constructing';

/** How often a transaction that lost a deadlock or serialisation race is tried again. */
const TX_ATTEMPTS = 8;

/** Connections each store keeps at most; a process rarely has more than a few queries in flight. */
export const POOL_SIZE = 10;

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
  synth: boolean;
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
  flags: string[];
  props: Record<string, string>;
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

const toFlight = (r: FlightRow): Flight => ({
  flight: r.flight,
  seq: r.seq,
  branch: r.branch,
  intended: r.intended,
  blessing: r.blessing,
  created: r.created,
  started: r.started,
});
const toJob = (r: JobRow): Job => ({
  flight: r.flight,
  job: r.job,
  recipe: r.recipe,
  status: r.status as JobStatus,
});
const toRunvar = (r: RunvarRow): Runvar => ({
  flight: r.flight,
  job: r.job,
  name: r.name,
  val: r.val,
  synth: r.synth,
});
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
const toHost = (r: HostRow): Host => ({ name: r.name, mac: r.mac, ip: r.ip, flags: r.flags, props: r.props });
const toAllocation = (r: AllocationRow): Allocation => ({
  host: r.host,
  flight: r.flight,
  job: r.job,
  ident: r.ident,
  allocated: r.allocated,
});
const toEvent = (r: LogRow): AllocationEvent => ({
  id: r.id,
  host: r.host,
  flight: r.flight,
  job: r.job,
  ident: r.ident,
  event: r.event as AllocationEvent['event'],
  at: r.at,
});

/** BIGINT columns (times, sequence numbers) as JS numbers; pg's default is strings. */
function parseInt8(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new StoreError(`PostgreSQL returned ${v}, too large for a JS number`);
  return n;
}
const TYPES: pg.CustomTypesConfig = {
  // The cast: pg-types declares getTypeParser as an overload set that a plain function cannot match.
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 && format !== 'binary'
      ? parseInt8
      : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

function checkLimit(limit: number | undefined): number | null {
  if (limit === undefined) return null; // LIMIT NULL is no limit
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

function frozen(f: { flight: string; blessing: string }, what: string): FrozenError {
  return new FrozenError(
    `flight ${f.flight} is ${f.blessing}: its definition is frozen; ${what} (jobs and definition runvars change only while a flight is constructing)`,
  );
}

function pgCode(e: unknown): string | undefined {
  return e instanceof pg.DatabaseError ? e.code : undefined;
}
const FOREIGN_KEY_VIOLATION = '23503';
const UNIQUE_VIOLATION = '23505';
/** serialization_failure, deadlock_detected: the transaction did nothing and may simply run again. */
const RETRYABLE = new Set(['40001', '40P01']);

/** An error from the caller's own code (a testid function), handed back untouched. */
class Foreign {
  constructor(readonly error: unknown) {}
}

type Db = pg.Pool | pg.PoolClient;

/** Says which of flight and job is missing (as jobRow does). */
function missingJob(flight: string, job: string, flightExists: boolean): NotFoundError {
  return new NotFoundError(flightExists ? `flight ${flight} has no job '${job}'` : `no flight '${flight}'`);
}

/**
 * Columns are named, never `*`: statements are prepared once per connection, and PostgreSQL refuses
 * to run a prepared `SELECT *` whose row type changed (a later migration adding a column while
 * this process runs).
 */
const FLIGHT_COLS = 'flight, seq, branch, intended, blessing, created, started';
const FLIGHT_COLS_F = 'f.flight, f.seq, f.branch, f.intended, f.blessing, f.created, f.started';
const JOB_COLS = 'flight, job, recipe, status';
const RUNVAR_COLS = 'flight, job, name, val, synth';
const STEP_COLS = 'flight, job, stepno, testcase, testid, status, started, finished, log_path';
const ALLOC_COLS = 'host, flight, job, ident, allocated';
const LOG_COLS = 'id, host, flight, job, ident, event, at';

/** Releases every allocation matching the WHERE clause, logging each release in host order; returns the rows released. */
function releaseSql(where: string, atParam: number): string {
  return `WITH d AS (DELETE FROM allocations WHERE ${where} RETURNING host, flight, job, ident)
INSERT INTO allocation_log (host, flight, job, ident, event, at)
SELECT host, flight, job, ident, 'release', $${atParam} FROM d ORDER BY host COLLATE "C"
RETURNING host`;
}

const HOST_SELECT = `SELECT h.name, h.mac, h.ip,
  COALESCE((SELECT array_agg(f.flag ORDER BY f.flag COLLATE "C") FROM host_flags f WHERE f.host = h.name), '{}') AS flags,
  COALESCE((SELECT json_object_agg(p.name, p.val ORDER BY p.name COLLATE "C") FROM host_props p WHERE p.host = h.name), '{}') AS props
FROM hosts h`;

export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  private closed = false;
  /** Statement texts get names, so each connection parses and plans them once (pg prepares named statements). */
  private readonly names = new Map<string, string>();

  readonly lab: LabStore;
  /**
   * Transactions as batches of statements, a round trip each (BEGIN going with the first, COMMIT with
   * the last), for the calls every job makes at every step: one statement per round trip made a
   * step's start five round trips and a status change four.
   */
  private readonly batched: LabDriver;

  constructor(
    private readonly pool: pg.Pool,
    /** Where the database is, for messages (never with the password). */
    readonly where: string,
  ) {
    this.batched = postgresDriver(pool, where);
    this.lab = new LabStoreImpl(this.batched);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  // ---- plumbing

  private async q<R extends pg.QueryResultRow>(db: Db, text: string, values: unknown[] = []): Promise<R[]> {
    return (await this.run<R>(db, text, values)).rows;
  }

  private async run<R extends pg.QueryResultRow>(
    db: Db,
    text: string,
    values: unknown[] = [],
  ): Promise<pg.QueryResult<R>> {
    let name = this.names.get(text);
    if (name === undefined) {
      name = `osstest_${this.names.size + 1}`;
      this.names.set(text, name);
    }
    return db.query<R>({ name, text, values });
  }

  /** Runs a public operation: refuses once closed, and turns database failures into StoreErrors naming the server. */
  private async op<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new StoreError(`${what}: the PostgreSQL store (${this.where}) is closed`);
    try {
      return await fn();
    } catch (e) {
      if (e instanceof Foreign) throw e.error;
      if (e instanceof StoreError) throw e;
      const msg = e instanceof Error ? e.message : String(e);
      throw new StoreError(`${what}: PostgreSQL ${this.where}: ${msg}`, { cause: e });
    }
  }

  /** One transaction on one connection; run again from the start if it lost a deadlock. */
  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const c = await this.pool.connect();
      let broken: Error | undefined;
      try {
        await c.query('BEGIN');
        const out = await fn(c);
        await c.query('COMMIT');
        return out;
      } catch (e) {
        try {
          await c.query('ROLLBACK');
        } catch (re) {
          // The connection is unusable: the pool must drop it, not lend it out again.
          broken = re as Error;
        }
        const code = pgCode(e);
        if (code === undefined || !RETRYABLE.has(code) || attempt >= TX_ATTEMPTS) throw e;
      } finally {
        c.release(broken);
      }
      await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
    }
  }

  // ---- lookups that refuse with NotFoundError

  private async flightRow(db: Db, flight: string, lock = ''): Promise<FlightRow> {
    const r = (
      await this.q<FlightRow>(db, `SELECT ${FLIGHT_COLS} FROM flights WHERE flight = $1 ${lock}`, [flight])
    )[0];
    if (!r) throw new NotFoundError(`no flight '${flight}'`);
    return r;
  }

  /** Says which of flight and job is missing. */
  private async jobNotFound(db: Db, flight: string, job: string): Promise<NotFoundError> {
    await this.flightRow(db, flight);
    return new NotFoundError(`flight ${flight} has no job '${job}'`);
  }

  private async jobRow(db: Db, flight: string, job: string, lock = ''): Promise<JobRow> {
    const r = (
      await this.q<JobRow>(db, `SELECT ${JOB_COLS} FROM jobs WHERE flight = $1 AND job = $2 ${lock}`, [
        flight,
        job,
      ])
    )[0];
    if (!r) throw await this.jobNotFound(db, flight, job);
    return r;
  }

  private async hostExists(db: Db, name: string, lock = ''): Promise<void> {
    const r = await this.q(db, `SELECT 1 FROM hosts WHERE name = $1 ${lock}`, [name]);
    if (r.length === 0) throw new NotFoundError(`no host '${name}'`);
  }

  private async nextCounter(c: pg.PoolClient, name: string): Promise<number> {
    const r = await this.q<{ val: number }>(
      c,
      'UPDATE counters SET val = val + 1 WHERE name = $1 RETURNING val',
      [name],
    );
    if (!r[0]) throw new StoreError(`counter ${name} is missing from the database ${this.where}`);
    return r[0].val;
  }

  // ---- flights

  async createFlight(nf: NewFlight): Promise<Flight> {
    const branch = checkLabel('branch', nf.branch);
    const intended = checkLabel('intended blessing', nf.intended);
    const blessing = checkLabel('blessing', nf.blessing ?? CONSTRUCTING);
    const named = nf.flight === undefined ? undefined : checkFlightName(nf.flight);
    return this.op('createFlight', () =>
      this.tx(async (c) => {
        const seq = await this.nextCounter(c, 'flight_seq');
        const insert = (flight: string) =>
          this.q<FlightRow>(
            c,
            `INSERT INTO flights (flight, seq, branch, intended, blessing, created, started)
             VALUES ($1, $2, $3, $4, $5, $6, NULL) ON CONFLICT (flight) DO NOTHING RETURNING ${FLIGHT_COLS}`,
            [flight, seq, branch, intended, blessing, Date.now()],
          );
        if (named !== undefined) {
          const r = (await insert(named))[0];
          if (!r) throw new ConflictError(`flight '${named}' already exists`);
          return toFlight(r);
        }
        // Numbers already taken as names (someone made flight "12" by hand) are skipped.
        for (;;) {
          const r = (await insert(String(await this.nextCounter(c, 'flight_number'))))[0];
          if (r) return toFlight(r);
        }
      }),
    );
  }

  async getFlight(flight: string): Promise<Flight | undefined> {
    return this.op('getFlight', async () => {
      const r = (
        await this.q<FlightRow>(this.pool, `SELECT ${FLIGHT_COLS} FROM flights WHERE flight = $1`, [flight])
      )[0];
      return r && toFlight(r);
    });
  }

  async listFlights(opts: { branch?: string; limit?: number } = {}): Promise<Flight[]> {
    const limit = checkLimit(opts.limit);
    return this.op('listFlights', async () => {
      const rows =
        opts.branch === undefined
          ? await this.q<FlightRow>(
              this.pool,
              `SELECT ${FLIGHT_COLS} FROM flights ORDER BY seq DESC LIMIT $1`,
              [limit],
            )
          : await this.q<FlightRow>(
              this.pool,
              `SELECT ${FLIGHT_COLS} FROM flights WHERE branch = $1 ORDER BY seq DESC LIMIT $2`,
              [opts.branch, limit],
            );
      return rows.map(toFlight);
    });
  }

  async markFlightStarted(flight: string, at?: Millis): Promise<Flight> {
    const when = checkTime('start time', at);
    return this.op('markFlightStarted', async () => {
      // One statement: a concurrent caller waits on the row, then finds `started` set and changes nothing.
      const r = (
        await this.q<FlightRow>(
          this.pool,
          `UPDATE flights SET started = $2,
             blessing = CASE WHEN blessing = '${CONSTRUCTING}' THEN 'running' ELSE blessing END
           WHERE flight = $1 AND started IS NULL RETURNING ${FLIGHT_COLS}`,
          [flight, when],
        )
      )[0];
      return toFlight(r ?? (await this.flightRow(this.pool, flight)));
    });
  }

  async setFlightBlessing(flight: string, blessing: string): Promise<void> {
    checkLabel('blessing', blessing);
    await this.op('setFlightBlessing', async () => {
      const r = await this.run(
        this.pool,
        `UPDATE flights SET blessing = $2 WHERE flight = $1 AND (started IS NULL OR $2 <> '${CONSTRUCTING}')`,
        [flight, blessing],
      );
      if (r.rowCount === 0) {
        await this.flightRow(this.pool, flight);
        throw new FrozenError(`flight ${flight} has started: it cannot go back to ${CONSTRUCTING}`);
      }
    });
  }

  async deleteFlight(flight: string): Promise<void> {
    await this.op('deleteFlight', () =>
      this.tx(async (c) => {
        await this.flightRow(c, flight, 'FOR UPDATE');
        // Waits for allocations still being made for these jobs, so each is released (and logged)
        // below rather than vanishing by cascade.
        await this.q(c, 'SELECT 1 FROM jobs WHERE flight = $1 FOR UPDATE', [flight]);
        await this.q(c, releaseSql('flight = $1', 2), [flight, Date.now()]);
        await this.q(c, 'DELETE FROM flights WHERE flight = $1', [flight]);
      }),
    );
  }

  async recordHarness(flight: string, revision: string): Promise<void> {
    checkNonEmpty('harness revision', revision);
    await this.op('recordHarness', async () => {
      try {
        await this.q(
          this.pool,
          'INSERT INTO flights_harness_touched (flight, harness, recorded) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
          [flight, revision, Date.now()],
        );
      } catch (e) {
        if (pgCode(e) === FOREIGN_KEY_VIOLATION) await this.flightRow(this.pool, flight);
        throw e;
      }
    });
  }

  async harnessRevisions(flight: string): Promise<string[]> {
    return this.op('harnessRevisions', async () => {
      const rows = await this.q<{ harness: string }>(
        this.pool,
        'SELECT harness FROM flights_harness_touched WHERE flight = $1 ORDER BY recorded, harness COLLATE "C"',
        [flight],
      );
      if (rows.length === 0) await this.flightRow(this.pool, flight);
      return rows.map((r) => r.harness);
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
    return this.op('createJob', () =>
      this.tx(async (c) => {
        const f = await this.flightRow(c, flight, 'FOR SHARE');
        if (f.blessing !== CONSTRUCTING) throw frozen(f, `cannot create job '${job}'`);
        const r = (
          await this.q<JobRow>(
            c,
            `INSERT INTO jobs (flight, job, recipe, status) VALUES ($1, $2, $3, 'queued')
             ON CONFLICT DO NOTHING RETURNING ${JOB_COLS}`,
            [flight, job, recipe],
          )
        )[0];
        if (!r) throw new ConflictError(`flight ${flight} already has a job '${job}'`);
        if (vars.length > 0) {
          await this.q(
            c,
            `INSERT INTO runvars (flight, job, name, val, synth)
             SELECT $1, $2, n, v, false FROM unnest($3::text[], $4::text[]) AS t (n, v)`,
            [flight, job, vars.map(([n]) => n), vars.map(([, v]) => v)],
          );
        }
        return toJob(r);
      }),
    );
  }

  async getJob(flight: string, job: string): Promise<Job | undefined> {
    return this.op('getJob', async () => {
      const r = (
        await this.q<JobRow>(this.pool, `SELECT ${JOB_COLS} FROM jobs WHERE flight = $1 AND job = $2`, [
          flight,
          job,
        ])
      )[0];
      return r && toJob(r);
    });
  }

  async listJobs(flight: string): Promise<Job[]> {
    return this.op('listJobs', async () => {
      const rows = await this.q<JobRow>(
        this.pool,
        `SELECT ${JOB_COLS} FROM jobs WHERE flight = $1 ORDER BY job COLLATE "C"`,
        [flight],
      );
      if (rows.length === 0) await this.flightRow(this.pool, flight);
      return rows.map(toJob);
    });
  }

  async setJobStatus(flight: string, job: string, status: JobStatus): Promise<JobStatus> {
    if (!isJobStatus(status)) throw new StoreError(`invalid job status '${status}' for ${flight}/${job}`);
    return this.op('setJobStatus', async () => {
      // One statement, one round trip (every job makes this call at its start and its end): the
      // UPDATE waits for a concurrent change of the row and then works from what that committed,
      // so a status that sticks (nextJobStatus) stays even when two changes race.
      const r = await this.q<{ status: string }>(
        this.pool,
        `UPDATE jobs SET status = CASE WHEN status = ANY($4::text[]) THEN status ELSE $3 END
         WHERE flight = $1 AND job = $2 RETURNING status`,
        [flight, job, status, stickyJobStatuses()],
      );
      if (!r[0]) throw await this.jobNotFound(this.pool, flight, job);
      return r[0].status as JobStatus;
    });
  }

  async resetJob(flight: string, job: string): Promise<void> {
    await this.op('resetJob', () =>
      this.tx(async (c) => {
        await this.jobRow(c, flight, job, 'FOR NO KEY UPDATE');
        await this.q(c, 'DELETE FROM steps WHERE flight = $1 AND job = $2', [flight, job]);
        await this.q(c, 'DELETE FROM runvars WHERE flight = $1 AND job = $2 AND synth', [flight, job]);
        await this.q(c, releaseSql('flight = $1 AND job = $2', 3), [flight, job, Date.now()]);
        await this.q(c, "UPDATE jobs SET status = 'queued' WHERE flight = $1 AND job = $2", [flight, job]);
      }),
    );
  }

  // ---- runvars

  async getRunvar(flight: string, job: string, name: string): Promise<Runvar | undefined> {
    return this.op('getRunvar', async () => {
      const r = (
        await this.q<RunvarRow>(
          this.pool,
          `SELECT ${RUNVAR_COLS} FROM runvars WHERE flight = $1 AND job = $2 AND name = $3`,
          [flight, job, name],
        )
      )[0];
      return r && toRunvar(r);
    });
  }

  async listRunvars(flight: string, job?: string): Promise<Runvar[]> {
    return this.op('listRunvars', async () => {
      if (job === undefined) {
        const rows = await this.q<RunvarRow>(
          this.pool,
          `SELECT ${RUNVAR_COLS} FROM runvars WHERE flight = $1 ORDER BY job COLLATE "C", name COLLATE "C"`,
          [flight],
        );
        if (rows.length === 0) await this.flightRow(this.pool, flight);
        return rows.map(toRunvar);
      }
      const rows = await this.q<RunvarRow>(
        this.pool,
        `SELECT ${RUNVAR_COLS} FROM runvars WHERE flight = $1 AND job = $2 ORDER BY name COLLATE "C"`,
        [flight, job],
      );
      if (rows.length === 0) await this.jobRow(this.pool, flight, job);
      return rows.map(toRunvar);
    });
  }

  /** The job's flight, locked against blessing changes until the transaction ends. */
  private async jobFlightShared(c: pg.PoolClient, flight: string, job: string): Promise<FlightRow> {
    const f = (
      await this.q<FlightRow>(
        c,
        `SELECT ${FLIGHT_COLS_F} FROM jobs j JOIN flights f ON f.flight = j.flight
         WHERE j.flight = $1 AND j.job = $2 FOR SHARE OF f`,
        [flight, job],
      )
    )[0];
    if (!f) throw await this.jobNotFound(c, flight, job);
    return f;
  }

  private static readonly UPSERT_RUNVAR =
    `INSERT INTO runvars (flight, job, name, val, synth) VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (flight, job, name) DO UPDATE SET val = excluded.val, synth = excluded.synth`;

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
    const values = [flight, job, name, val, synth];
    await this.op('setRunvar', async () => {
      if (synth) {
        // The executor's hot path: one statement; the foreign key says when the job is missing.
        try {
          await this.q(this.pool, PostgresStore.UPSERT_RUNVAR, values);
        } catch (e) {
          if (pgCode(e) === FOREIGN_KEY_VIOLATION) throw await this.jobNotFound(this.pool, flight, job);
          throw e;
        }
        return;
      }
      await this.tx(async (c) => {
        const f = await this.jobFlightShared(c, flight, job);
        if (f.blessing !== CONSTRUCTING) throw frozen(f, `cannot set definition runvar ${job} ${name}`);
        await this.q(c, PostgresStore.UPSERT_RUNVAR, values);
      });
    });
  }

  async deleteRunvar(flight: string, job: string, name: string, opts: { synth: boolean }): Promise<void> {
    checkRunvarName(name);
    await this.op('deleteRunvar', () =>
      this.tx(async (c) => {
        const f = await this.jobFlightShared(c, flight, job);
        const r = (
          await this.q<{ synth: boolean }>(
            c,
            'SELECT synth FROM runvars WHERE flight = $1 AND job = $2 AND name = $3 FOR UPDATE',
            [flight, job, name],
          )
        )[0];
        if (!r) throw new NotFoundError(`flight ${flight} job ${job} has no runvar '${name}'`);
        // Removing a definition runvar is a definition change however the caller labels it.
        const definition = !opts.synth || !r.synth;
        if (definition && f.blessing !== CONSTRUCTING)
          throw frozen(f, `cannot delete definition runvar ${job} ${name}`);
        await this.q(c, 'DELETE FROM runvars WHERE flight = $1 AND job = $2 AND name = $3', [
          flight,
          job,
          name,
        ]);
      }),
    );
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
    const got = await this.op('startStep', () =>
      this.batched.tx('startStep', function* () {
        const [jobs, flights, next] = yield* batch([
          query('SELECT 1 AS x FROM jobs WHERE flight = ? AND job = ? FOR NO KEY UPDATE', flight, job),
          query('SELECT 1 AS x FROM flights WHERE flight = ?', flight),
          // The job row's lock makes step numbering one at a time per job. This is a statement of
          // its own after the lock, so its snapshot has every step the lock's last holder committed.
          query<{ n: number }>(
            'SELECT COALESCE(MAX(stepno), 0) + 1 AS n FROM steps WHERE flight = ? AND job = ?',
            flight,
            job,
          ),
        ]);
        if (jobs.length === 0) throw missingJob(flight, job, flights.length > 0);
        const stepno = Number(next[0]!.n);
        let testid: string;
        try {
          testid = typeof s.testid === 'function' ? s.testid(stepno) : s.testid;
        } catch (e) {
          // The caller's own error, given back as it is once this (empty) transaction has ended.
          yield* batch([], { commit: true });
          return { failed: e };
        }
        checkNonEmpty(`testid of ${s.testcase}`, testid);
        yield* batch(
          [
            query(
              `INSERT INTO steps (flight, job, stepno, testcase, testid, status, started)
               VALUES (?, ?, ?, ?, ?, 'running', ?)`,
              flight,
              job,
              stepno,
              s.testcase,
              testid,
              started,
            ),
          ],
          { commit: true },
        );
        const step: Step = {
          flight,
          job,
          stepno,
          testcase: s.testcase,
          testid,
          status: 'running',
          started,
          finished: null,
          logPath: null,
        };
        return { step };
      }),
    );
    if ('failed' in got) throw got.failed;
    return got.step;
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
    if (!Number.isSafeInteger(stepno))
      throw new StoreError(`step number must be a whole number, not ${stepno}`);
    await this.op('finishStep', async () => {
      const r = await this.run(
        this.pool,
        `UPDATE steps SET status = $4, finished = $5,
           log_path = CASE WHEN $6::boolean THEN $7::text ELSE log_path END,
           testid = COALESCE($8::text, testid)
         WHERE flight = $1 AND job = $2 AND stepno = $3`,
        [
          flight,
          job,
          stepno,
          s.status,
          finished,
          s.logPath !== undefined,
          s.logPath ?? null,
          s.testid ?? null,
        ],
      );
      if (r.rowCount === 0) {
        await this.jobRow(this.pool, flight, job);
        throw new NotFoundError(`flight ${flight} job ${job} has no step ${stepno}`);
      }
    });
  }

  async listSteps(flight: string, job?: string): Promise<Step[]> {
    return this.op('listSteps', async () => {
      if (job === undefined) {
        const rows = await this.q<StepRow>(
          this.pool,
          `SELECT ${STEP_COLS} FROM steps WHERE flight = $1 ORDER BY job COLLATE "C", stepno`,
          [flight],
        );
        if (rows.length === 0) await this.flightRow(this.pool, flight);
        return rows.map(toStep);
      }
      const rows = await this.q<StepRow>(
        this.pool,
        `SELECT ${STEP_COLS} FROM steps WHERE flight = $1 AND job = $2 ORDER BY stepno`,
        [flight, job],
      );
      if (rows.length === 0) await this.jobRow(this.pool, flight, job);
      return rows.map(toStep);
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
    return this.op('stepPassedOnBranch', async () => {
      const rows = await this.q<{ one: number }>(
        this.pool,
        `SELECT 1 AS one FROM steps s JOIN flights f ON f.flight = s.flight
         WHERE s.job = $1 AND s.testid = ANY($2::text[]) AND s.status = 'pass'
           AND f.branch = $3 AND f.seq < $4 LIMIT 1`,
        [job, [...testids], branch, before],
      );
      return rows.length > 0;
    });
  }

  // ---- hosts

  private async macOwner(db: Db, mac: string, name: string): Promise<string | undefined> {
    const r = await this.q<{ name: string }>(db, 'SELECT name FROM hosts WHERE mac = $1 AND name <> $2', [
      mac,
      name,
    ]);
    return r[0]?.name;
  }

  async upsertHost(h: { name: string; mac?: string | null; ip?: string | null }): Promise<Host> {
    const name = checkHostName(h.name);
    const mac = h.mac === undefined || h.mac === null ? h.mac : normaliseMac(h.mac, name);
    if (h.ip !== undefined && h.ip !== null && isIP(h.ip) === 0) {
      throw new StoreError(`invalid IP address ${JSON.stringify(h.ip)} for host ${name}`);
    }
    const taken = (other: string) => new ConflictError(`MAC address ${mac} already belongs to host ${other}`);
    return this.op('upsertHost', async () => {
      try {
        return await this.tx(async (c) => {
          if (mac) {
            const other = await this.macOwner(c, mac, name);
            if (other !== undefined) throw taken(other);
          }
          await this.q(
            c,
            `INSERT INTO hosts (name, mac, ip) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET
               mac = CASE WHEN $4::boolean THEN excluded.mac ELSE hosts.mac END,
               ip = CASE WHEN $5::boolean THEN excluded.ip ELSE hosts.ip END`,
            [name, mac ?? null, h.ip ?? null, mac !== undefined, h.ip !== undefined],
          );
          return toHost((await this.q<HostRow>(c, `${HOST_SELECT} WHERE h.name = $1`, [name]))[0]!);
        });
      } catch (e) {
        // Another connection gave the same MAC to another host between our check and our write.
        if (mac && pgCode(e) === UNIQUE_VIOLATION) {
          const other = await this.macOwner(this.pool, mac, name);
          if (other !== undefined) throw taken(other);
        }
        throw e;
      }
    });
  }

  async getHost(name: string): Promise<Host | undefined> {
    return this.op('getHost', async () => {
      const r = (await this.q<HostRow>(this.pool, `${HOST_SELECT} WHERE h.name = $1`, [name]))[0];
      return r && toHost(r);
    });
  }

  async listHosts(): Promise<Host[]> {
    return this.op('listHosts', async () =>
      (await this.q<HostRow>(this.pool, `${HOST_SELECT} ORDER BY h.name COLLATE "C"`)).map(toHost),
    );
  }

  async deleteHost(name: string): Promise<void> {
    await this.op('deleteHost', () =>
      this.tx(async (c) => {
        // FOR UPDATE waits for allocations still being made (their foreign key check shares the row).
        await this.hostExists(c, name, 'FOR UPDATE');
        const a = (
          await this.q<AllocationRow>(c, `SELECT ${ALLOC_COLS} FROM allocations WHERE host = $1`, [name])
        )[0];
        if (a) {
          throw new ConflictError(
            `host ${name} is allocated to ${a.flight}/${a.job} (${a.ident}): release it first`,
          );
        }
        await this.q(c, 'DELETE FROM hosts WHERE name = $1', [name]);
      }),
    );
  }

  async setHostFlags(name: string, add: readonly string[], remove: readonly string[] = []): Promise<void> {
    for (const f of [...add, ...remove]) checkHostFlag(f);
    const both = add.filter((f) => remove.includes(f));
    if (both.length > 0) throw new StoreError(`host ${name}: flag ${both[0]} is both added and removed`);
    await this.op('setHostFlags', () =>
      this.tx(async (c) => {
        await this.hostExists(c, name, 'FOR KEY SHARE');
        if (add.length > 0) {
          await this.q(
            c,
            'INSERT INTO host_flags (host, flag) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING',
            [name, [...add]],
          );
        }
        if (remove.length > 0) {
          await this.q(c, 'DELETE FROM host_flags WHERE host = $1 AND flag = ANY ($2::text[])', [
            name,
            [...remove],
          ]);
        }
      }),
    );
  }

  async setHostProp(name: string, prop: string, val: string | null): Promise<void> {
    checkHostProp(prop);
    if (val !== null) checkValue(`property ${prop} of host ${name}`, val);
    await this.op('setHostProp', () =>
      this.tx(async (c) => {
        await this.hostExists(c, name, 'FOR KEY SHARE');
        if (val === null) {
          await this.q(c, 'DELETE FROM host_props WHERE host = $1 AND name = $2', [name, prop]);
        } else {
          await this.q(
            c,
            `INSERT INTO host_props (host, name, val) VALUES ($1, $2, $3)
             ON CONFLICT (host, name) DO UPDATE SET val = excluded.val`,
            [name, prop, val],
          );
        }
      }),
    );
  }

  async recordHostEvent(host: string, e: { kind: string; detail: string; at?: Millis }): Promise<HostEvent> {
    const { kind, detail } = checkHostEvent(host, e);
    const at = checkTime('host event time', e.at);
    return this.op('recordHostEvent', async () => {
      const rows = await this.q<{ id: number }>(
        this.pool,
        'INSERT INTO host_events (host, kind, detail, at) VALUES ($1, $2, $3, $4) RETURNING id',
        [host, kind, detail, at],
      );
      return { id: rows[0]!.id, host, kind, detail, at };
    });
  }

  async listHostEvents(host: string, opts: { since?: Millis } = {}): Promise<HostEvent[]> {
    const since = opts.since === undefined ? 0 : checkTime('since', opts.since);
    return this.op('listHostEvents', () =>
      this.q<HostEvent>(
        this.pool,
        'SELECT id, host, kind, detail, at FROM host_events WHERE host = $1 AND at >= $2 ORDER BY at, id',
        [host, since],
      ),
    );
  }

  // ---- allocations

  async allocateHost(host: string, owner: { flight: string; job: string; ident: string }): Promise<boolean> {
    checkHostName(host);
    checkHostIdent(owner.ident);
    const { flight, job, ident } = owner;
    return this.op('allocateHost', async () => {
      // Normally one round trip. The loop only turns when the holder let go between our two statements.
      for (let attempt = 0; attempt < 100; attempt++) {
        try {
          const won = await this.q(
            this.pool,
            `WITH a AS (
               INSERT INTO allocations (host, flight, job, ident, allocated) VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (host) DO NOTHING RETURNING host, flight, job, ident, allocated)
             INSERT INTO allocation_log (host, flight, job, ident, event, at)
             SELECT host, flight, job, ident, 'allocate', allocated FROM a RETURNING id`,
            [host, flight, job, ident, Date.now()],
          );
          if (won.length > 0) return true;
        } catch (e) {
          if (pgCode(e) === FOREIGN_KEY_VIOLATION) {
            await this.hostExists(this.pool, host);
            throw await this.jobNotFound(this.pool, flight, job);
          }
          throw e;
        }
        const r = (
          await this.q<{
            host_ok: boolean;
            job_ok: boolean;
            flight: string | null;
            job: string | null;
            ident: string | null;
          }>(
            this.pool,
            `SELECT EXISTS (SELECT 1 FROM hosts WHERE name = $1) AS host_ok,
                    EXISTS (SELECT 1 FROM jobs WHERE flight = $2 AND job = $3) AS job_ok,
                    a.flight, a.job, a.ident
             FROM (SELECT 1) AS one LEFT JOIN allocations a ON a.host = $1`,
            [host, flight, job],
          )
        )[0]!;
        if (!r.host_ok) throw new NotFoundError(`no host '${host}'`);
        if (!r.job_ok) throw await this.jobNotFound(this.pool, flight, job);
        if (r.flight !== null) return r.flight === flight && r.job === job && r.ident === ident;
      }
      throw new StoreError(
        `host ${host} was taken and released 100 times while ${flight}/${job} asked for it`,
      );
    });
  }

  async releaseHost(host: string, owner?: { flight: string; job: string }): Promise<void> {
    await this.op('releaseHost', async () => {
      const released = await this.q(
        this.pool,
        releaseSql('host = $1 AND ($2::text IS NULL OR (flight = $2 AND job = $3))', 4),
        [host, owner?.flight ?? null, owner?.job ?? null, Date.now()],
      );
      if (released.length === 0) await this.hostExists(this.pool, host);
    });
  }

  async releaseJobHosts(flight: string, job: string): Promise<void> {
    await this.op('releaseJobHosts', async () => {
      const released = await this.q(this.pool, releaseSql('flight = $1 AND job = $2', 3), [
        flight,
        job,
        Date.now(),
      ]);
      if (released.length === 0) await this.jobRow(this.pool, flight, job);
    });
  }

  async listAllocations(): Promise<Allocation[]> {
    return this.op('listAllocations', async () =>
      (
        await this.q<AllocationRow>(
          this.pool,
          `SELECT ${ALLOC_COLS} FROM allocations ORDER BY host COLLATE "C"`,
        )
      ).map(toAllocation),
    );
  }

  async allocationLog(opts: { host?: string; limit?: number } = {}): Promise<AllocationEvent[]> {
    const limit = checkLimit(opts.limit);
    return this.op('allocationLog', async () => {
      const rows =
        opts.host === undefined
          ? await this.q<LogRow>(
              this.pool,
              `SELECT ${LOG_COLS} FROM (SELECT ${LOG_COLS} FROM allocation_log ORDER BY id DESC LIMIT $1) AS l ORDER BY id`,
              [limit],
            )
          : await this.q<LogRow>(
              this.pool,
              `SELECT ${LOG_COLS} FROM (SELECT ${LOG_COLS} FROM allocation_log WHERE host = $1 ORDER BY id DESC LIMIT $2) AS l ORDER BY id`,
              [opts.host, limit],
            );
      return rows.map(toEvent);
    });
  }

  // ---- bisections (shared checks in ../bisections.ts)

  private async bisectionRow(db: Db, id: number): Promise<BisectionRow> {
    const r = (
      await this.q<BisectionRow>(db, `SELECT ${BISECTION_COLS} FROM bisections WHERE id = $1`, [id])
    )[0];
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
    return this.op('requestBisection', async () => {
      // Insert-or-read until one of them answers: the open row can be closed between the two.
      for (let attempt = 0; attempt < 100; attempt++) {
        const ins = await this.q<BisectionRow>(
          this.pool,
          `INSERT INTO bisections (branch, job, testid, requested_flight, state, trees, hosts, created)
           VALUES ($1, $2, $3, $4, 'pending', '{}', '{}', $5)
           ON CONFLICT (branch, job, testid) WHERE state <> 'done' DO NOTHING
           RETURNING ${BISECTION_COLS}`,
          [b.branch, b.job, b.testid, requested, Date.now()],
        );
        if (ins[0]) return { bisection: toBisection(ins[0]), created: true };
        const open = await this.q<BisectionRow>(
          this.pool,
          `SELECT ${BISECTION_COLS} FROM bisections WHERE branch = $1 AND job = $2 AND testid = $3 AND state <> 'done'`,
          [b.branch, b.job, b.testid],
        );
        if (open[0]) return { bisection: toBisection(open[0]), created: false };
      }
      throw new StoreError(`bisection of ${b.branch} ${b.job} ${b.testid} kept changing while requested`);
    });
  }

  async getBisection(id: number): Promise<Bisection | undefined> {
    checkBisectionId(id);
    return this.op('getBisection', async () => {
      const r = (
        await this.q<BisectionRow>(this.pool, `SELECT ${BISECTION_COLS} FROM bisections WHERE id = $1`, [id])
      )[0];
      return r && toBisection(r);
    });
  }

  async listBisections(
    opts: { branch?: string; job?: string; testid?: string; state?: BisectionState; limit?: number } = {},
  ): Promise<Bisection[]> {
    checkState(opts.state);
    const limit = checkBisectionListLimit(opts.limit) ?? null;
    return this.op('listBisections', async () =>
      (
        await this.q<BisectionRow>(
          this.pool,
          `SELECT ${BISECTION_COLS} FROM bisections
           WHERE ($1::text IS NULL OR branch = $1) AND ($2::text IS NULL OR job = $2)
             AND ($3::text IS NULL OR testid = $3) AND ($4::text IS NULL OR state = $4)
           ORDER BY id DESC LIMIT $5`,
          [opts.branch ?? null, opts.job ?? null, opts.testid ?? null, opts.state ?? null, limit],
        )
      ).map(toBisection),
    );
  }

  async updateBisection(id: number, patch: BisectionUpdate): Promise<Bisection> {
    checkBisectionId(id);
    const cols = bisectionUpdateColumns(patch);
    return this.op('updateBisection', async () => {
      if (cols.length === 0) return toBisection(await this.bisectionRow(this.pool, id));
      const set = cols.map(([c], i) => `${c} = $${i + 2}`).join(', ');
      const r = (
        await this.q<BisectionRow>(
          this.pool,
          `UPDATE bisections SET ${set} WHERE id = $1 RETURNING ${BISECTION_COLS}`,
          [id, ...cols.map(([, v]) => v)],
        )
      )[0];
      if (!r) throw bisectionNotFound(id);
      return toBisection(r);
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
    return this.op('addBisectionFlight', async () => {
      const added = Date.now();
      try {
        await this.q(
          this.pool,
          `INSERT INTO bisection_flights (bisection, flight, role, tuple, reason, result, at, added)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
          [id, c.flight, c.role, c.tuple, c.reason, c.result, c.at, added],
        );
      } catch (e) {
        if (pgCode(e) === FOREIGN_KEY_VIOLATION) throw bisectionNotFound(id);
        if (pgCode(e) === UNIQUE_VIOLATION)
          throw new ConflictError(`bisection ${id} already has flight ${c.flight}`);
        throw e;
      }
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
    await this.op('setBisectionFlightResult', async () => {
      const r = await this.run(
        this.pool,
        'UPDATE bisection_flights SET result = $1, at = $2 WHERE bisection = $3 AND flight = $4',
        [result, when, id, flight],
      );
      if (r.rowCount === 0) {
        await this.bisectionRow(this.pool, id);
        throw new NotFoundError(`bisection ${id} has no flight ${flight}`);
      }
    });
  }

  async listBisectionFlights(id: number): Promise<BisectionFlight[]> {
    checkBisectionId(id);
    return this.op('listBisectionFlights', async () => {
      const rows = await this.q<BisectionFlightRow>(
        this.pool,
        `SELECT ${BISECTION_FLIGHT_COLS} FROM bisection_flights WHERE bisection = $1 ORDER BY seq`,
        [id],
      );
      if (rows.length === 0) await this.bisectionRow(this.pool, id);
      return rows.map(toBisectionFlight);
    });
  }

  // ---- the push gate's state (shared checks in ../gate.ts)

  private async branchControlOf(db: Db, branch: string, lock = ''): Promise<BranchControl> {
    const r = (
      await this.q<BranchControlRow>(
        db,
        `SELECT ${BRANCH_CONTROL_COLS} FROM branch_controls WHERE branch = $1 ${lock}`,
        [branch],
      )
    )[0];
    return r ? toBranchControl(r) : defaultBranchControl(branch);
  }

  async getBranchControl(branch: string): Promise<BranchControl> {
    checkLabel('branch', branch);
    return this.op('getBranchControl', () => this.branchControlOf(this.pool, branch));
  }

  async listBranchControls(): Promise<BranchControl[]> {
    return this.op('listBranchControls', async () =>
      (
        await this.q<BranchControlRow>(
          this.pool,
          `SELECT ${BRANCH_CONTROL_COLS} FROM branch_controls ORDER BY branch COLLATE "C"`,
        )
      ).map(toBranchControl),
    );
  }

  async setBranchControl(branch: string, change: BranchControlChange): Promise<BranchControl> {
    checkLabel('branch', branch);
    return this.op('setBranchControl', () =>
      this.tx(async (c) => {
        // The row exists (with the defaults) before it is locked, so two changes at once take turns.
        await this.q(
          c,
          `INSERT INTO branch_controls (branch, stopped, block_push, force_push, note, updated)
           VALUES ($1, false, false, NULL, '', $2) ON CONFLICT (branch) DO NOTHING`,
          [branch, Date.now()],
        );
        const next = applyBranchControlChange(await this.branchControlOf(c, branch, 'FOR UPDATE'), change);
        const updated = Date.now();
        await this.q(
          c,
          'UPDATE branch_controls SET stopped = $2, block_push = $3, force_push = $4, note = $5, updated = $6 WHERE branch = $1',
          [branch, next.stopped, next.blockPush, next.forcePush, next.note, updated],
        );
        return { ...next, updated };
      }),
    );
  }

  async takeForcePush(branch: string, rev: string): Promise<boolean> {
    checkLabel('branch', branch);
    checkNonEmpty('force-push revision', rev);
    return this.op('takeForcePush', async () => {
      const r = await this.run(
        this.pool,
        'UPDATE branch_controls SET force_push = NULL, updated = $3 WHERE branch = $1 AND force_push = $2',
        [branch, rev, Date.now()],
      );
      return (r.rowCount ?? 0) > 0;
    });
  }

  private async gateRunRow(db: Db, id: number, lock = ''): Promise<GateRun> {
    const r = (
      await this.q<GateRunRow>(db, `SELECT ${GATE_RUN_COLS} FROM gate_runs WHERE id = $1 ${lock}`, [id])
    )[0];
    if (!r) throw gateRunNotFound(id);
    return toGateRun(r);
  }

  async startGateRun(nr: NewGateRun): Promise<GateRun> {
    const c = checkNewGateRun(nr);
    return this.op('startGateRun', async () => {
      try {
        const r = await this.q<GateRunRow>(
          this.pool,
          `INSERT INTO gate_runs (branch, tree, kind, old_rev, new_rev, revisions, flight, reruns, runner, started, finished, completed, outcome, detail)
           VALUES ($1, $2, $3, $4, $5, $6, NULL, '[]', $7, $8, NULL, false, NULL, '')
           RETURNING ${GATE_RUN_COLS}`,
          [c.branch, c.tree, c.kind, c.old, c.new, c.revisions, c.runner, c.started],
        );
        return toGateRun(r[0]!);
      } catch (e) {
        // The partial unique index on unfinished runs is what refuses a second one.
        if (pgCode(e) !== UNIQUE_VIOLATION) throw e;
        const open = (
          await this.q<GateRunRow>(
            this.pool,
            `SELECT ${GATE_RUN_COLS} FROM gate_runs WHERE branch = $1 AND finished IS NULL`,
            [c.branch],
          )
        )[0];
        throw new ConflictError(
          `branch ${c.branch} has gate run ${open?.id ?? '?'} going on (started by ${open?.runner ?? '?'}); one run of a branch at a time`,
        );
      }
    });
  }

  async updateGateRun(id: number, change: GateRunChange): Promise<GateRun> {
    checkGateRunId(id);
    return this.op('updateGateRun', () =>
      this.tx(async (c) => {
        const n = applyGateRunChange(await this.gateRunRow(c, id, 'FOR UPDATE'), change, Date.now());
        await this.q(
          c,
          'UPDATE gate_runs SET flight = $2, reruns = $3, completed = $4, outcome = $5, detail = $6, finished = $7 WHERE id = $1',
          [id, n.flight, JSON.stringify(n.reruns), n.completed, n.outcome, n.detail, n.finished],
        );
        return n;
      }),
    );
  }

  async getGateRun(id: number): Promise<GateRun | undefined> {
    checkGateRunId(id);
    return this.op('getGateRun', async () => {
      const r = (
        await this.q<GateRunRow>(this.pool, `SELECT ${GATE_RUN_COLS} FROM gate_runs WHERE id = $1`, [id])
      )[0];
      return r && toGateRun(r);
    });
  }

  async listGateRuns(opts: { branch?: string; limit?: number } = {}): Promise<GateRun[]> {
    const limit = checkListLimit(opts.limit) ?? null;
    return this.op('listGateRuns', async () =>
      (
        await this.q<GateRunRow>(
          this.pool,
          `SELECT ${GATE_RUN_COLS} FROM gate_runs WHERE ($1::text IS NULL OR branch = $1) ORDER BY id DESC LIMIT $2`,
          [opts.branch ?? null, limit],
        )
      ).map(toGateRun),
    );
  }

  async findTestedRun(branch: string, tree: string, revision: string): Promise<GateRun | undefined> {
    return this.op('findTestedRun', async () => {
      const r = (
        await this.q<GateRunRow>(
          this.pool,
          `SELECT ${GATE_RUN_COLS} FROM gate_runs WHERE branch = $1 AND tree = $2 AND new_rev = $3 AND completed
           ORDER BY id DESC LIMIT 1`,
          [branch, tree, revision],
        )
      )[0];
      return r && toGateRun(r);
    });
  }

  async recordPush(np: NewPush): Promise<PushRecord> {
    const c = checkNewPush(np);
    return this.op('recordPush', async () => {
      const r = await this.q<{ id: number }>(
        this.pool,
        `INSERT INTO gate_pushes (branch, flight, tree, url, ref, from_rev, to_rev, result, overridden, detail, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
        [c.branch, c.flight, c.tree, c.url, c.ref, c.from, c.to, c.result, c.overridden, c.detail, c.at],
      );
      return { id: Number(r[0]!.id), ...c };
    });
  }

  async listPushes(opts: { branch?: string; limit?: number } = {}): Promise<PushRecord[]> {
    const limit = checkListLimit(opts.limit) ?? null;
    return this.op('listPushes', async () =>
      (
        await this.q<PushRow>(
          this.pool,
          `SELECT ${PUSH_COLS} FROM gate_pushes WHERE ($1::text IS NULL OR branch = $1) ORDER BY id DESC LIMIT $2`,
          [opts.branch ?? null, limit],
        )
      ).map(toPush),
    );
  }
}

/**
 * Connects (see connection.ts for the accepted strings; empty means the PG* environment), brings the
 * schema up to date, and returns the store. Fails with a StoreError naming the server when it cannot.
 */
export async function openPostgresStore(connection: string): Promise<PostgresStore> {
  const cfg = connectionConfig(connection);
  const where = describeConnection(connection);
  const pool = new pg.Pool({
    connectionTimeoutMillis: 30_000,
    ...cfg,
    fallback_application_name: 'osstest',
    // A process stopped in the middle of a transaction would hold its row locks for ever.
    idle_in_transaction_session_timeout: 60_000,
    types: TYPES,
    max: POOL_SIZE,
    // Idle connections do not keep a finished command alive until they time out.
    allowExitOnIdle: true,
  });
  // An idle connection that dies (server restart) is dropped by the pool; the next query opens a
  // new one or fails loudly, so there is nothing to do here but keep the process alive.
  pool.on('error', () => undefined);
  try {
    const c = await pool.connect();
    let failed: Error | undefined;
    try {
      await migratePostgres(c, where);
    } catch (e) {
      failed = e as Error;
      throw e;
    } finally {
      c.release(failed);
    }
  } catch (e) {
    await pool.end().catch(() => undefined);
    if (e instanceof StoreError) throw e;
    throw new StoreError(`cannot open PostgreSQL database ${where}: ${(e as Error).message}`, { cause: e });
  }
  return new PostgresStore(pool, where);
}
