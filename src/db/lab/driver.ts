/**
 * One body of SQL logic for both stores. A transaction is written once as a generator that yields
 * statements and receives their rows; a driver runs it:
 * - sqlite: synchronously, inside better-sqlite3's `BEGIN IMMEDIATE` transaction, so nothing else in
 *   the process can interleave with it and no other process can write until it commits;
 * - PostgreSQL: on one pooled connection between BEGIN and COMMIT (READ COMMITTED, row locks taken
 *   by the statements themselves), run again from the start when it loses a deadlock.
 * Statements use `?` placeholders (turned into `$n` for PostgreSQL) and only SQL both understand;
 * where they differ the body asks `d.pg`.
 *
 * A body may also yield a *batch*: statements whose parameters do not depend on each other's rows.
 * On PostgreSQL a batch is one round trip (the simple query protocol, parameters sent as quoted
 * literals), with BEGIN in front when it opens the transaction and, if the body says so, COMMIT
 * behind: a decision that took ~35 round trips takes 3 (bench/scheduler). On sqlite it is the same
 * statements one after another.
 */
import type Database from 'better-sqlite3';
import type pg from 'pg';
import { StoreError } from '../errors.js';

export interface Stmt {
  sql: string;
  params: readonly unknown[];
}

/** Statements run in one round trip; `commit` ends the transaction with them (the body must then return). */
export interface Batch {
  batch: readonly Stmt[];
  commit: boolean;
}

export type TxBody<T> = Generator<Stmt | Batch, T, unknown>;

export interface TxOptions {
  /**
   * Reads only: on PostgreSQL one REPEATABLE READ READ ONLY snapshot (every statement sees the same
   * moment); on sqlite a deferred transaction, which does not wait for or block writers under WAL.
   */
  readOnly?: boolean;
}

/** What a transaction body may know about where it runs. */
export interface Dialect {
  /** True on PostgreSQL: row-lock clauses and NOTIFY are available. */
  pg: boolean;
  /** `FOR UPDATE`-style clauses on PostgreSQL, nothing on sqlite (whose transactions are serial anyway). */
  lock(clause: string): string;
  /** Byte-order collation for ORDER BY on PostgreSQL (sqlite's default already is). */
  c: string;
}

/** Runs one statement inside a transaction body: `const rows = yield* sql<Row>('SELECT …', a, b)`. */
export function* sql<R>(text: string, ...params: unknown[]): Generator<Stmt, R[], unknown> {
  return (yield { sql: text, params }) as R[];
}

/** A statement for a batch; `R` is its row type. */
export interface Query<R> extends Stmt {
  /** Only carries the row type. */
  readonly row?: R;
  /** See omitted(). */
  readonly omitted?: true;
}
export function query<R>(text: string, ...params: unknown[]): Query<R> {
  return { sql: text, params };
}

/** A batch's place for a statement the body knows it does not need this time: not sent, no rows. */
export function omitted<R>(): Query<R> {
  return { sql: '', params: [], omitted: true };
}
const isOmitted = (x: Stmt): boolean => 'omitted' in x;
type RowsOf<T extends readonly Stmt[]> = { [K in keyof T]: T[K] extends Query<infer R> ? R[] : unknown[] };

/**
 * Runs statements in one round trip: `const [a, b] = yield* batch([query<A>(…), query<B>(…)])`.
 * With `commit`, the transaction commits in the same round trip and the body must return next.
 */
export function* batch<const T extends readonly Stmt[]>(
  stmts: T,
  opts: { commit?: boolean } = {},
): Generator<Batch, RowsOf<T>, unknown> {
  return (yield { batch: stmts, commit: opts.commit ?? false }) as RowsOf<T>;
}

const isBatch = (x: Stmt | Batch): x is Batch => 'batch' in x;

export interface LabDriver {
  readonly dialect: Dialect;
  /** Where the database is, for messages. */
  readonly where: string;
  /** Runs `body` as one transaction; `what` names the operation in errors. */
  tx<T>(what: string, body: (d: Dialect) => TxBody<T>, opts?: TxOptions): Promise<T>;
  /** PostgreSQL: a connection that stays open for LISTEN; undefined on sqlite. */
  listenClient?(): Promise<pg.PoolClient>;
  /**
   * PostgreSQL: runs `fn` with a connection of its own and a driver whose transactions run on it
   * (one at a time: one started while another is running takes a pooled connection as usual).
   * Released when `fn` ends, and dropped if `fn` threw, a transaction left it broken, or `fn` said
   * it must be (`spoilt`: a session lock it could not give back, say).
   */
  withConnection?<T>(
    fn: (on: LabDriver, c: pg.PoolClient, spoilt: (why: Error) => void) => Promise<T>,
  ): Promise<T>;
}

/** The connection withConnection gave, as its transactions see it. */
interface OwnConnection {
  client: pg.PoolClient;
  busy: boolean;
  broken?: Error;
}

// ---- sqlite

export function sqliteDriver(db: Database.Database, where: string): LabDriver {
  const dialect: Dialect = { pg: false, lock: () => '', c: '' };
  const cache = new Map<string, Database.Statement>();
  const prepare = (text: string): Database.Statement => {
    let s = cache.get(text);
    if (!s) {
      s = db.prepare(text);
      cache.set(text, s);
    }
    return s;
  };
  const exec = (st: Stmt): unknown[] => {
    const s = prepare(st.sql);
    // better-sqlite3 refuses booleans and undefined; bodies pass numbers, strings and null only.
    if (s.reader) return s.all(...st.params);
    s.run(...st.params);
    return [];
  };
  const run = db.transaction(<T>(body: TxBody<T>): T => {
    let step = body.next();
    let committed = false;
    while (!step.done) {
      // Kept to PostgreSQL's rule, so a body that works here works there.
      if (committed) throw new StoreError('a statement after the batch that committed');
      const st = step.value;
      if (isBatch(st)) {
        committed = st.commit;
        step = body.next(st.batch.map((x) => (isOmitted(x) ? [] : exec(x))));
      } else step = body.next(exec(st));
    }
    return step.value;
  });
  return {
    dialect,
    where,
    async tx<T>(what: string, body: (d: Dialect) => TxBody<T>, opts: TxOptions = {}): Promise<T> {
      try {
        // Writers take the write lock at BEGIN (no upgrade deadlocks); readers need none under WAL.
        const b = body(dialect);
        return (opts.readOnly ? run.deferred(b) : run.immediate(b)) as T;
      } catch (e) {
        if (e instanceof StoreError) throw e;
        throw new StoreError(`${what}: sqlite ${where}: ${(e as Error).message}`, { cause: e });
      }
    },
  };
}

// ---- PostgreSQL

/** serialization_failure, deadlock_detected: the transaction did nothing and may simply run again. */
const RETRYABLE = new Set(['40001', '40P01']);
const ATTEMPTS = 8;

function toDollars(text: string): string {
  let n = 0;
  return text.replace(/\?/g, () => `$${++n}`);
}

/**
 * A parameter as an SQL literal, for the simple query protocol (which has no parameters). Strings
 * go through pg's own quoting (the same as libpq's PQescapeLiteral); only the scalar types bodies use
 * are accepted.
 */
function literal(c: pg.PoolClient, v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'string') return c.escapeLiteral(v);
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new StoreError(`cannot send ${v} to PostgreSQL`);
    return v < 0 ? `(${v})` : String(v);
  }
  if (typeof v === 'bigint') return v < 0n ? `(${v})` : String(v);
  if (typeof v === 'boolean') return v ? 'TRUE' : 'FALSE';
  throw new StoreError(`a batch parameter must be a string, number or null, not ${typeof v}`);
}

/** A statement with its parameters written in, for a multi-statement (simple protocol) query. */
export function inline(c: pg.PoolClient, st: Stmt): string {
  let n = 0;
  const text = st.sql.replace(/\?/g, () => {
    if (n >= st.params.length) throw new StoreError(`too few parameters for: ${st.sql}`);
    return literal(c, st.params[n++]);
  });
  if (n !== st.params.length) throw new StoreError(`too many parameters for: ${st.sql}`);
  return text;
}

export function postgresDriver(pool: pg.Pool, where: string): LabDriver {
  const dialect: Dialect = { pg: true, lock: (clause) => clause, c: ' COLLATE "C"' };
  const texts = new Map<string, string>();
  const dollars = (text: string): string => {
    let t = texts.get(text);
    if (t === undefined) {
      t = toDollars(text);
      texts.set(text, t);
    }
    return t;
  };
  // Given explicitly, not found through AsyncLocalStorage: on Node 20 that makes every await of the
  // process (a worker's) about 2.7 times dearer.
  async function tx<T>(
    what: string,
    body: (d: Dialect) => TxBody<T>,
    opts: TxOptions,
    mine: OwnConnection | undefined,
  ): Promise<T> {
    const begin = opts.readOnly ? 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' : 'BEGIN';
    for (let attempt = 1; ; attempt++) {
      let c: pg.PoolClient;
      const pinned = mine && !mine.busy && !mine.broken ? mine : undefined;
      try {
        if (pinned) {
          pinned.busy = true;
          c = pinned.client;
        } else c = await pool.connect();
      } catch (e) {
        throw new StoreError(`${what}: PostgreSQL ${where}: ${(e as Error).message}`, { cause: e });
      }
      let broken: Error | undefined;
      // BEGIN goes out with the first statement, and no transaction at all for a body with none.
      let open = false;
      let committed = false;
      try {
        const gen = body(dialect);
        let step = gen.next();
        while (!step.done) {
          if (committed) throw new StoreError(`${what}: a statement after the batch that committed`);
          const st = step.value;
          if (isBatch(st)) {
            const sent = st.batch.filter((x) => !isOmitted(x));
            const texts = sent.map((x) => inline(c, x));
            const opens = !open;
            if (opens) texts.unshift(begin);
            if (st.commit) texts.push('COMMIT');
            // Open from here on, even if a statement fails: the failed transaction must be rolled
            // back, or the pooled connection goes back aborted and fails whoever has it next.
            open = true;
            const r = texts.length === 0 ? [] : await c.query(texts.join(';\n'));
            const results = (Array.isArray(r) ? r : [r]) as pg.QueryResult[];
            const got = results.slice(opens ? 1 : 0, (opens ? 1 : 0) + sent.length);
            let next = 0;
            const rows = st.batch.map((x) => (isOmitted(x) ? [] : got[next++]!.rows));
            committed = st.commit;
            step = gen.next(rows);
          } else if (!open) {
            open = true; // as above
            const r = (await c.query(`${begin};\n${inline(c, st)}`)) as unknown as pg.QueryResult[];
            step = gen.next(r[1]!.rows);
          } else {
            const r = await c.query(dollars(st.sql), st.params as unknown[]);
            step = gen.next(r.rows);
          }
        }
        if (open && !committed) await c.query('COMMIT');
        return step.value;
      } catch (e) {
        if (open) {
          try {
            await c.query('ROLLBACK');
          } catch (re) {
            broken = re as Error;
          }
        }
        const code = (e as { code?: string }).code;
        if (code !== undefined && RETRYABLE.has(code) && attempt < ATTEMPTS) {
          // fall through to the retry below
        } else {
          if (e instanceof StoreError) throw e;
          throw new StoreError(`${what}: PostgreSQL ${where}: ${(e as Error).message}`, { cause: e });
        }
      } finally {
        if (pinned) {
          pinned.busy = false;
          if (broken) pinned.broken = broken;
        } else c.release(broken);
      }
      await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
    }
  }
  const driver: LabDriver = {
    dialect,
    where,
    tx: (what, body, opts = {}) => tx(what, body, opts, undefined),
    listenClient: () => pool.connect(),
    async withConnection<T>(
      fn: (on: LabDriver, c: pg.PoolClient, spoilt: (why: Error) => void) => Promise<T>,
    ): Promise<T> {
      const client = await pool.connect();
      const mine: OwnConnection = { client, busy: false };
      const on: LabDriver = { ...driver, tx: (what, body, opts = {}) => tx(what, body, opts, mine) };
      let failed: Error | undefined;
      try {
        return await fn(on, client, (why) => {
          mine.broken ??= why;
        });
      } catch (e) {
        failed = e as Error;
        throw e;
      } finally {
        // A connection whose state is unknown (a failed query, a broken rollback) is not reused.
        client.release(mine.broken ?? failed);
      }
    },
  };
  return driver;
}
