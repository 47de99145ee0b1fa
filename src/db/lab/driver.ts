/**
 * One body of SQL logic for both stores. A transaction is written once as a generator that yields
 * statements and receives their rows; a driver runs it:
 * - sqlite: synchronously, inside better-sqlite3's `BEGIN IMMEDIATE` transaction, so nothing else in
 *   the process can interleave with it and no other process can write until it commits;
 * - PostgreSQL: on one pooled connection between BEGIN and COMMIT (READ COMMITTED, row locks taken
 *   by the statements themselves), run again from the start when it loses a deadlock.
 * Statements use `?` placeholders (turned into `$n` for PostgreSQL) and only SQL both understand;
 * where they differ the body asks `d.pg`.
 */
import type Database from 'better-sqlite3';
import type pg from 'pg';
import { StoreError } from '../errors.js';

export interface Stmt {
  sql: string;
  params: readonly unknown[];
}

export type TxBody<T> = Generator<Stmt, T, unknown>;

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

export interface LabDriver {
  readonly dialect: Dialect;
  /** Where the database is, for messages. */
  readonly where: string;
  /** Runs `body` as one transaction; `what` names the operation in errors. */
  tx<T>(what: string, body: (d: Dialect) => TxBody<T>): Promise<T>;
  /** PostgreSQL: a connection that stays open for LISTEN; undefined on sqlite. */
  listenClient?(): Promise<pg.PoolClient>;
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
    while (!step.done) step = body.next(exec(step.value));
    return step.value;
  });
  return {
    dialect,
    where,
    async tx<T>(what: string, body: (d: Dialect) => TxBody<T>): Promise<T> {
      try {
        return run.immediate(body(dialect)) as T;
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
  return {
    dialect,
    where,
    async tx<T>(what: string, body: (d: Dialect) => TxBody<T>): Promise<T> {
      for (let attempt = 1; ; attempt++) {
        let c: pg.PoolClient;
        try {
          c = await pool.connect();
        } catch (e) {
          throw new StoreError(`${what}: PostgreSQL ${where}: ${(e as Error).message}`, { cause: e });
        }
        let broken: Error | undefined;
        try {
          await c.query('BEGIN');
          const gen = body(dialect);
          let step = gen.next();
          while (!step.done) {
            const r = await c.query(dollars(step.value.sql), step.value.params as unknown[]);
            step = gen.next(r.rows);
          }
          await c.query('COMMIT');
          return step.value;
        } catch (e) {
          try {
            await c.query('ROLLBACK');
          } catch (re) {
            broken = re as Error;
          }
          const code = (e as { code?: string }).code;
          if (code !== undefined && RETRYABLE.has(code) && attempt < ATTEMPTS) {
            // fall through to the retry below
          } else {
            if (e instanceof StoreError) throw e;
            throw new StoreError(`${what}: PostgreSQL ${where}: ${(e as Error).message}`, { cause: e });
          }
        } finally {
          c.release(broken);
        }
        await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
      }
    },
    listenClient: () => pool.connect(),
  };
}
