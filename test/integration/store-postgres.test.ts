/**
 * The store contract on a real PostgreSQL (see test/helpers/postgres.ts for where it comes from),
 * plus what only PostgreSQL has: connection strings, migrations under an advisory lock, schemas,
 * byte-order sorting whatever the database's collation, and per-call latency.
 *
 * One server and one database per run of this file; each contract test gets a fresh schema of its
 * own (`options=-c search_path=tN`), dropped afterwards — much cheaper than a database per test.
 */

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Config } from '../../src/config/config.js';
import { FrozenError, StoreError } from '../../src/db/errors.js';
import { openConfiguredStore } from '../../src/db/from-config.js';
import { batch, type LabDriver, omitted, postgresDriver, query } from '../../src/db/lab/driver.js';
import type { LabWake } from '../../src/db/lab/types.js';
import { openStore } from '../../src/db/open.js';
import { connectionConfig, describeConnection, parseKeywordValue } from '../../src/db/postgres/connection.js';
import { MIGRATION_LOCK } from '../../src/db/postgres/migrate.js';
import { openPostgresStore, PostgresStore } from '../../src/db/postgres/store.js';
import { MIGRATIONS, SCHEMA_VERSION } from '../../src/db/schema.js';
import { claimNext } from '../../src/scheduler/allocator.js';
import { WakeLedger } from '../../src/scheduler/wake-ledger.js';
import {
  connParts,
  havePostgres,
  postgresSnapshotter,
  startTestPostgres,
  type TestPostgres,
  toKeywords,
  toUrl,
  withSchema,
} from '../helpers/postgres.js';
import { defineStoreSuite, runStoreChildren } from './store-suite.js';

describe('PostgreSQL connection strings', () => {
  it('parses libpq keyword/value pairs: spaces, quotes, escapes, last one wins', () => {
    const kv = parseKeywordValue(
      ` host=/run/postgresql port = 5433 dbname='my db' password='it\\'s \\\\ x' user=a\\ b options='-c search_path=s' dbname=final`,
    );
    expect(Object.fromEntries(kv)).toEqual({
      host: '/run/postgresql',
      port: '5433',
      dbname: 'final',
      password: "it's \\ x",
      user: 'a b',
      options: '-c search_path=s',
    });
    expect(Object.fromEntries(parseKeywordValue("password=''"))).toEqual({ password: '' });
  });

  it('turns keywords into pg settings', () => {
    expect(
      connectionConfig(
        "host=db.lab port=5433 dbname=osstest user=lab password=pw application_name=w1 options='-c x=y' connect_timeout=1 sslmode=disable",
      ),
    ).toEqual({
      host: 'db.lab',
      port: 5433,
      database: 'osstest',
      user: 'lab',
      password: 'pw',
      application_name: 'w1',
      options: '-c x=y',
      connectionTimeoutMillis: 2000,
      ssl: false,
    });
    expect(connectionConfig('hostaddr=127.0.0.2 host=name')).toEqual({ host: '127.0.0.2' });
    expect(connectionConfig('sslmode=require')).toEqual({ ssl: { rejectUnauthorized: false } });
    expect(connectionConfig('  ')).toEqual({});
    expect(connectionConfig('postgresql://u@h/db')).toEqual({ connectionString: 'postgresql://u@h/db' });
  });

  it.each([
    ['dbnmae=x', /unknown keyword 'dbnmae'/],
    ['host', /expected '=' after 'host'/],
    ["dbname='x", /unterminated quoted value for 'dbname'/],
    ['port=http', /port 'http'/],
    ['port=70000', /port '70000'/],
    ['host=a,b', /several hosts/],
    ['connect_timeout=soon', /connect_timeout 'soon'/],
    ['sslmode=sometimes', /sslmode 'sometimes'/],
    ['sslmode=verify-ca', /needs sslrootcert/],
    ['sslmode=require sslrootcert=/nonexistent/ca.pem', /cannot read sslrootcert \/nonexistent\/ca.pem/],
    ['=x', /value without a keyword/],
  ])('refuses %j, saying why', (bad, why) => {
    expect(() => connectionConfig(bad)).toThrow(StoreError);
    expect(() => connectionConfig(bad)).toThrow(why);
  });

  it('never repeats a password, even in a URL it cannot parse', () => {
    const e = (() => {
      try {
        connectionConfig('postgres://u:s3cret@[bad/x');
      } catch (err) {
        return err as Error;
      }
      return undefined;
    })();
    expect(e).toBeInstanceOf(StoreError);
    expect(e!.message).not.toContain('s3cret');
    expect(describeConnection('postgres://u:s3cret@h:1/d')).toBe('h:1 database d as u');
    // libpq's "user, default host" URL, which WHATWG URLs alone refuse.
    expect(connectionConfig('postgres://u@/d')).toEqual({ connectionString: 'postgres://u@/d' });
    expect(describeConnection('postgres://u@/d?host=/run/pg&port=5')).toBe(
      'socket /run/pg/.s.PGSQL.5 database d as u',
    );
  });

  it('describes where a connection goes, filling gaps from PG* as pg does', () => {
    const saved = { ...process.env };
    try {
      process.env.PGHOST = 'envhost';
      process.env.PGPORT = '6000';
      process.env.PGUSER = 'envuser';
      delete process.env.PGDATABASE;
      expect(describeConnection('')).toBe('envhost:6000 database envuser as envuser');
      expect(describeConnection('dbname=x host=/run/postgresql')).toBe(
        'socket /run/postgresql/.s.PGSQL.6000 database x as envuser',
      );
      expect(describeConnection('postgres:///d?host=/tmp/s&port=7')).toBe(
        'socket /tmp/s/.s.PGSQL.7 database d as envuser',
      );
    } finally {
      process.env = saved;
    }
  });

  it('says which server it could not reach, without the password', async () => {
    const err = await openStore({ kind: 'postgres', connection: 'postgres://u:s3cret@127.0.0.1:1/x' }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(StoreError);
    expect(err!.message).toContain('127.0.0.1:1 database x as u');
    expect(err!.message).not.toContain('s3cret');
  });
});

const ok = havePostgres('PostgreSQL store tests');

describe.skipIf(!ok)('PostgreSQL store', () => {
  let server: TestPostgres;
  let db: string;
  let admin: pg.Client;
  let schemas = 0;

  beforeAll(async () => {
    const t0 = Date.now();
    server = await startTestPostgres();
    db = await server.createDatabase();
    admin = new pg.Client(connectionConfig(db));
    await admin.connect();
    process.stderr.write(`[postgres] ${server.origin}: ready in ${Date.now() - t0} ms\n`);
  });
  afterAll(async () => {
    await admin?.end();
    await server?.stop();
  });

  /** A fresh schema in the test database, and a connection string whose tables live there. */
  async function freshSchema(): Promise<{ conn: string; schema: string; drop: () => Promise<void> }> {
    const schema = `t${++schemas}`;
    await admin.query(`CREATE SCHEMA ${schema}`);
    return {
      conn: withSchema(db, schema),
      schema,
      drop: async () => {
        await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      },
    };
  }

  defineStoreSuite('postgres', async () => {
    const { conn, drop } = await freshSchema();
    const store = await openPostgresStore(conn);
    const snap = postgresSnapshotter(conn);
    return {
      store,
      reopen: () => openPostgresStore(conn),
      cleanup: async () => {
        await snap.close();
        await drop();
      },
      spec: { kind: 'postgres', connection: conn },
      snapshot: snap.snapshot,
    };
  });

  describe('postgres store specifics', () => {
    it('a batch that fails rolls its transaction back: the pooled connection is fit for the next one', async () => {
      const pool = new pg.Pool({ ...connectionConfig(db), max: 1 });
      const d = postgresDriver(pool, 'test');
      try {
        // The batch opens the transaction (BEGIN goes with it), then a statement in it fails.
        for (const at of [0, 1]) {
          const stmts = [query('SELECT 1 AS one'), query('SELECT 1 / 0 AS boom')];
          await expect(
            d.tx('failing', function* () {
              return yield* batch(at === 0 ? stmts.reverse() : stmts);
            }),
          ).rejects.toThrow(/division by zero/);
          // One connection in the pool: the same one must now work.
          const [[row]] = await d.tx(
            'after',
            function* () {
              return yield* batch([query<{ two: number }>('SELECT 2 AS two')]);
            },
            { readOnly: true },
          );
          expect(row).toEqual({ two: 2 });
        }
        // Omitted statements are not sent and give no rows; the others keep their places.
        const got = await d.tx('omitted', function* () {
          return yield* batch([omitted(), query<{ x: number }>('SELECT 3 AS x'), omitted()]);
        });
        expect(got).toEqual([[], [{ x: 3 }], []]);
      } finally {
        await pool.end();
      }
    });

    it('runs the transactions of withConnection’s driver on its own connection, one at a time, and drops it when spoilt', async () => {
      // One pooled connection besides withConnection's: a transaction that waited for the pool
      // would wait for ever while the test holds it.
      const pool = new pg.Pool({ ...connectionConfig(db), max: 2 });
      const d = postgresDriver(pool, 'test');
      const pid = (what: string, on: LabDriver = d) =>
        on.tx(what, function* () {
          const [[r]] = yield* batch([query<{ pid: number }>('SELECT pg_backend_pid() AS pid')]);
          return r!.pid;
        });
      try {
        const blocker = await pool.connect();
        let ownPid = 0;
        let insidePids: number[] = [];
        try {
          await d.withConnection!(async (on, c) => {
            ownPid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
            insidePids = [await pid('first', on), await pid('second', on)];
          });
        } finally {
          blocker.release();
        }
        expect(insidePids).toEqual([ownPid, ownPid]);
        // Two at once: the second cannot share the connection mid-transaction, so it takes a pooled one.
        let both: number[] = [];
        await d.withConnection!(async (on, c) => {
          ownPid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
          both = await Promise.all([pid('a', on), pid('b', on)]);
        });
        expect(both).toContain(ownPid);
        expect(new Set(both).size).toBe(2);
        // Spoilt (a session lock it could not give back, say): the connection is not reused.
        await d.withConnection!(async (_on, c, spoilt) => {
          ownPid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
          await c.query('SELECT pg_advisory_lock(1, 2)');
          spoilt(new Error('could not unlock'));
        });
        for (let i = 0; i < 4; i++) expect(await pid(`after ${i}`)).not.toBe(ownPid);
        // …and PostgreSQL let its lock go with it.
        const [[free]] = await d.tx('free', function* () {
          return yield* batch([query<{ got: boolean }>('SELECT pg_try_advisory_lock(1, 2) AS got')]);
        });
        expect(free!.got).toBe(true);
      } finally {
        await pool.end();
      }
    });

    it('turns a worker asking unlessBusy away at once while another has the turn; without it, waits', async () => {
      const { conn, drop } = await freshSchema();
      const [a, b] = [await openPostgresStore(conn), await openPostgresStore(conn)];
      try {
        let release!: () => void;
        let holding = false;
        const first = a.lab.deciding(async () => {
          holding = true;
          await new Promise<void>((r) => {
            release = r;
          });
          return 'a decided';
        });
        while (!holding) await new Promise((r) => setTimeout(r, 5));
        await expect(
          b.lab.deciding(
            async () => 'b decided',
            () => 'b turned away',
          ),
        ).resolves.toBe('b turned away');
        // Without unlessBusy (a decision nobody else would make for it) it waits its turn.
        let waited = false;
        const second = b.lab.deciding(async () => {
          waited = true;
          return 'b decided';
        });
        await new Promise((r) => setTimeout(r, 100));
        expect(waited).toBe(false);
        release();
        expect(await first).toBe('a decided');
        expect(await second).toBe('b decided');
        // The turn free: the next one decides at once.
        await expect(
          a.lab.deciding(
            async () => 'a again',
            () => 'a turned away',
          ),
        ).resolves.toBe('a again');
      } finally {
        for (const s of [a, b]) await s.close();
        await drop();
      }
    });

    it('a worker turned away from a busy turn keeps its change until the deciding one announces what it saw', async () => {
      const { conn, drop } = await freshSchema();
      const [a, c] = [await openPostgresStore(conn), await openPostgresStore(conn)];
      const heard: LabWake[] = [];
      const stop = await c.lab.listen((_what, w) => heard.push(w));
      const xid = async () =>
        BigInt((await admin.query<{ x: string }>('SELECT pg_current_xact_id()::text AS x')).rows[0]!.x);
      try {
        // A queued job, so that the deciding worker asks for its idents while it holds the turn.
        await a.upsertHost({ name: 'h1' });
        await a.createFlight({ flight: 'f', branch: 'b', intended: 'play' });
        await a.createJob('f', 'j', 'rec');
        await a.lab.queueFlight('f', { by: 't' });
        await a.lab.registerWorker({ id: 'wa', host: 't', pid: 1, leaseMs: 60_000, maxJobs: 1 });
        const seen = await xid();
        const [la, lc] = [new WakeLedger(), new WakeLedger()];
        for (const l of [la, lc]) {
          l.deciding();
          l.changed(seen);
        }
        let release!: () => void;
        let inside = false;
        const gate = new Promise<void>((r) => {
          release = r;
        });
        const deciding = claimNext({
          store: a,
          config: Config.fromText(''),
          harness: null,
          worker: 'wa',
          leaseMs: 60_000,
          ledger: la,
          identsOf: async () => {
            inside = true;
            await gate;
            return ['host'];
          },
        });
        while (!inside) await new Promise((r) => setTimeout(r, 5));
        const claim = (l: WakeLedger) =>
          claimNext({
            store: c,
            config: Config.fromText(''),
            harness: null,
            worker: 'wc',
            leaseMs: 60_000,
            ledger: l,
          });
        const turnedAway = await claim(lc);
        expect(turnedAway.skipped).toBe(true);
        expect(turnedAway.claims).toEqual([]);
        // A change after the deciding worker read the lab, which both hear of.
        const unseen = await xid();
        la.changed(unseen);
        lc.changed(unseen);
        release();
        const decided = await deciding;
        expect(decided.skipped).toBe(false);
        expect(decided.claimed).toMatchObject({ job: 'j' });
        for (let i = 0; i < 300 && !heard.some((w) => w.decided); i++)
          await new Promise((r) => setTimeout(r, 10));
        const w = heard.find((h) => h.decided)!;
        expect(w.decided!.snapshot).toBe(decided.dbSnapshot);
        // It says "more": it heard of a change its read did not see.
        expect(w.decided!.more).toBe(true);
        // The turned-away worker: its first change is settled, the second is not; it looks again now.
        expect(lc.heard(w)).toBe(true);
        const again = await claim(lc);
        expect(again.skipped).toBe(false);
        expect(lc.needed).toBe(false);
        // Without a ledger (a job allocated by hand) nobody decides for the caller: it waits its turn.
        const alone = await claimNext({
          store: c,
          config: Config.fromText(''),
          harness: null,
          worker: 'wc',
          leaseMs: 60_000,
        });
        expect(alone.skipped).toBe(false);
      } finally {
        await stop();
        for (const s of [a, c]) await s.close();
        await drop();
      }
    });

    it('opens through openStore and through JobDB Executive in the config', async () => {
      const { conn, drop } = await freshSchema();
      try {
        const s1 = await openStore({ kind: 'postgres', connection: conn });
        expect(s1).toBeInstanceOf(PostgresStore);
        expect(s1.kind).toBe('postgres');
        await s1.createFlight({ flight: 'kept', branch: 'b', intended: 'play' });
        await s1.close();
        const config = Config.fromText(`JobDB Executive\nExecutiveDbConnection ${conn}\n`, 'test.config');
        const s2 = await openConfiguredStore(config);
        expect(s2.kind).toBe('postgres');
        expect((await s2.getFlight('kept'))?.flight).toBe('kept');
        await s2.close();
      } finally {
        await drop();
      }
    });

    it('applies each migration once, in the schema named by the connection, and keeps data', async () => {
      const { conn, schema, drop } = await freshSchema();
      try {
        const s1 = await openPostgresStore(conn);
        await s1.createFlight({ flight: 'kept', branch: 'b', intended: 'play' });
        await s1.close();
        const s2 = await openPostgresStore(conn);
        expect((await s2.getFlight('kept'))?.flight).toBe('kept');
        await s2.close();
        const rows = await admin.query(`SELECT id, name FROM ${schema}.schema_migrations ORDER BY id`);
        expect(rows.rows.map((r) => ({ id: Number(r.id), name: r.name }))).toEqual(
          MIGRATIONS.map((m) => ({ id: m.id, name: m.name })),
        );
        // Nothing leaked into public.
        const pub = await admin.query("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'");
        expect(pub.rows[0].n).toBe(0);
      } finally {
        await drop();
      }
    });

    it('works without options, in the default schema of a fresh database, and via keyword strings', async () => {
      const fresh = await server.createDatabase();
      const s = await openPostgresStore(fresh);
      await s.createFlight({ flight: 'p', branch: 'b', intended: 'play' });
      await s.close();
      // The same database written in the other form.
      const p = connParts(fresh);
      const other = fresh.startsWith('postgres') ? toKeywords(p) : toUrl(p);
      const s2 = await openStore({ kind: 'postgres', connection: other });
      expect((await s2.getFlight('p'))?.flight).toBe('p');
      await s2.close();
    });

    it('takes the whole connection from PG* when the string is empty', async () => {
      const { conn, drop } = await freshSchema();
      const saved = { ...process.env };
      try {
        const p = connParts(conn);
        process.env.PGHOST = p.host;
        process.env.PGPORT = String(p.port);
        process.env.PGUSER = p.user;
        process.env.PGDATABASE = p.database;
        if (p.password !== undefined) process.env.PGPASSWORD = p.password;
        process.env.PGOPTIONS = p.options ?? '';
        const s = await openStore({ kind: 'postgres', connection: '' });
        await s.createFlight({ flight: 'from-env', branch: 'b', intended: 'play' });
        await s.close();
        process.env = saved;
        const check = await openPostgresStore(conn);
        expect((await check.getFlight('from-env'))?.flight).toBe('from-env');
        await check.close();
      } finally {
        process.env = saved;
        await drop();
      }
    });

    it('refuses a database whose schema is newer than this program', async () => {
      const { conn, schema, drop } = await freshSchema();
      try {
        await (await openPostgresStore(conn)).close();
        await admin.query(
          `INSERT INTO ${schema}.schema_migrations (id, name, applied) VALUES ($1, 'future', 0)`,
          [SCHEMA_VERSION + 1],
        );
        await expect(openPostgresStore(conn)).rejects.toThrow(
          new RegExp(`schema version ${SCHEMA_VERSION + 1}`),
        );
      } finally {
        await drop();
      }
    });

    it('migrates a fresh database once when several processes open it at the same moment', async () => {
      const fresh = await server.createDatabase();
      const results = (await runStoreChildren(
        Array.from({ length: 4 }, () => ({
          mode: 'create-flight',
          spec: { kind: 'postgres', connection: fresh },
        })),
      )) as { flight: string }[];
      expect(results.map((r) => r.flight).sort()).toEqual(['1', '2', '3', '4']);
      const c = new pg.Client(connectionConfig(fresh));
      await c.connect();
      try {
        const ids = await c.query('SELECT id FROM schema_migrations ORDER BY id');
        expect(ids.rows.map((r) => Number(r.id))).toEqual(MIGRATIONS.map((m) => m.id));
      } finally {
        await c.end();
      }
    }, 60_000);

    it('waits for the migration lock: a store opened while another process migrates gets a complete schema', async () => {
      const fresh = await server.createDatabase();
      const holder = new pg.Client(connectionConfig(fresh));
      await holder.connect();
      try {
        await holder.query('BEGIN');
        await holder.query('SELECT pg_advisory_xact_lock($1, $2)', [...MIGRATION_LOCK]);
        let opened = false;
        const opening = openPostgresStore(fresh).then((s) => {
          opened = true;
          return s;
        });
        await new Promise((r) => setTimeout(r, 300));
        expect(opened).toBe(false);
        await holder.query('COMMIT');
        const s = await opening;
        expect((await s.createFlight({ branch: 'b', intended: 'play' })).flight).toBe('1');
        await s.close();
      } finally {
        await holder.end();
      }
    });

    /**
     * Another session changes a row and has not committed. A store call that decides on that row
     * must wait for the commit and decide on what was committed; one that read the old value
     * without a lock would go ahead on stale data (and these tests would see it succeed).
     */
    async function whileAnotherSessionHolds(
      conn: string,
      change: string,
      call: () => Promise<unknown>,
    ): Promise<unknown> {
      const other = new pg.Client(connectionConfig(conn));
      await other.connect();
      try {
        await other.query('BEGIN');
        await other.query(change);
        let settled = false;
        const result = call().then(
          (v) => {
            settled = true;
            return v;
          },
          (e: unknown) => {
            settled = true;
            return e;
          },
        );
        await new Promise((r) => setTimeout(r, 300));
        expect(settled, 'the call should wait for the other session').toBe(false);
        await other.query('COMMIT');
        return await result;
      } finally {
        await other.end();
      }
    }

    it('a definition change waits for a blessing change in progress, then honours it', async () => {
      const { conn, schema, drop } = await freshSchema();
      const s = await openPostgresStore(conn);
      try {
        await s.createFlight({ flight: 'f', branch: 'b', intended: 'play' });
        await s.createJob('f', 'j', 'rec', { a: '1' });
        const start = "UPDATE flights SET blessing = 'running', started = 1 WHERE flight = 'f'";
        expect(
          await whileAnotherSessionHolds(conn, start, () => s.createJob('f', 'late', 'rec')),
        ).toBeInstanceOf(FrozenError);
        const reopen = `UPDATE ${schema}.flights SET blessing = 'constructing', started = NULL`;
        await admin.query(reopen);
        expect(
          await whileAnotherSessionHolds(conn, start, () =>
            s.setRunvar('f', 'j', 'a', '2', { synth: false }),
          ),
        ).toBeInstanceOf(FrozenError);
        await admin.query(reopen);
        expect(
          await whileAnotherSessionHolds(conn, start, () => s.deleteRunvar('f', 'j', 'a', { synth: false })),
        ).toBeInstanceOf(FrozenError);
        expect(await s.listJobs('f')).toHaveLength(1);
        expect(await s.getRunvar('f', 'j', 'a')).toMatchObject({ val: '1' });
      } finally {
        await s.close();
        await drop();
      }
    });

    it('runs a transaction again when PostgreSQL picks it as a deadlock victim', async () => {
      const { conn, drop } = await freshSchema();
      const s = await openPostgresStore(conn);
      const other = new pg.Client(connectionConfig(conn));
      await other.connect();
      try {
        await s.createFlight({ flight: 'f', branch: 'b', intended: 'play' });
        await s.createJob('f', 'j', 'rec');
        // The other session checks for deadlocks only after 10 s, the store's after the default 1 s,
        // so the store's transaction is the one PostgreSQL aborts.
        await other.query("SET deadlock_timeout = '10s'");
        await other.query('BEGIN');
        await other.query("SELECT 1 FROM jobs WHERE flight = 'f' FOR UPDATE");
        // deleteFlight locks the flight, then waits for the job…
        const deleting = s.deleteFlight('f');
        await new Promise((r) => setTimeout(r, 200));
        // …which waits for the flight: a cycle.
        await other.query("SELECT 1 FROM flights WHERE flight = 'f' FOR UPDATE");
        await other.query('COMMIT');
        await deleting;
        expect(await s.getFlight('f')).toBeUndefined();
      } finally {
        await other.end();
        await s.close();
        await drop();
      }
    });

    it('a job status change waits for another in progress, so broken stays sticky', async () => {
      const { conn, drop } = await freshSchema();
      const s = await openPostgresStore(conn);
      try {
        await s.createFlight({ flight: 'f', branch: 'b', intended: 'play' });
        await s.createJob('f', 'j', 'rec');
        const got = await whileAnotherSessionHolds(
          conn,
          "UPDATE jobs SET status = 'broken' WHERE flight = 'f' AND job = 'j'",
          () => s.setJobStatus('f', 'j', 'pass'),
        );
        expect(got).toBe('broken');
        expect((await s.getJob('f', 'j'))!.status).toBe('broken');
      } finally {
        await s.close();
        await drop();
      }
    });

    it('sorts names by bytes, as sqlite does, whatever the database collation', async () => {
      const coll = await admin.query(
        'SELECT datlocprovider::text AS p, daticulocale AS icu FROM pg_database WHERE datname = current_database()',
      );
      process.stderr.write(`[postgres] test database collation: ${JSON.stringify(coll.rows[0])}\n`);
      const { conn, drop } = await freshSchema();
      const s = await openPostgresStore(conn);
      try {
        await s.createFlight({ flight: 'f', branch: 'b', intended: 'play' });
        const names = ['b', 'B-1', 'a', 'A', 'a_b', 'a-b', 'ab'];
        for (const j of names) await s.createJob('f', j, 'rec', { [j.replace(/-/g, '_')]: 'x' });
        const bytes = [...names].sort();
        expect((await s.listJobs('f')).map((j) => j.job)).toEqual(bytes);
        expect((await s.listRunvars('f')).map((r) => r.job)).toEqual(bytes);
        for (const h of ['hb', 'hB', 'ha']) await s.upsertHost({ name: h });
        await s.setHostFlags('ha', ['b', 'B', 'a-x', 'a_x']);
        await s.setHostProp('ha', 'b', '1');
        await s.setHostProp('ha', 'B', '2');
        expect((await s.listHosts()).map((h) => h.name)).toEqual(['hB', 'ha', 'hb']);
        expect((await s.getHost('ha'))!.flags).toEqual(['B', 'a-x', 'a_x', 'b']);
        expect(Object.keys((await s.getHost('ha'))!.props)).toEqual(['B', 'b']);
      } finally {
        await s.close();
        await drop();
      }
    });

    it('keeps working when another process adds columns to its tables (a newer migration)', async () => {
      const { conn, schema, drop } = await freshSchema();
      const s = await openPostgresStore(conn);
      try {
        await s.createFlight({ flight: 'f', branch: 'b', intended: 'play' });
        await s.createJob('f', 'j', 'rec', { a: '1' });
        await s.upsertHost({ name: 'h1' });
        const s1 = await s.startStep('f', 'j', { testcase: 'ts-a', testid: 'a' });
        await s.allocateHost('h1', { flight: 'f', job: 'j', ident: 'host' });
        const read = async () => ({
          f: await s.getFlight('f'),
          fs: await s.listFlights(),
          j: await s.listJobs('f'),
          r: await s.listRunvars('f'),
          st: await s.listSteps('f'),
          a: await s.listAllocations(),
          l: await s.allocationLog(),
          h: await s.listHosts(),
        });
        const before = await read();
        for (const t of ['flights', 'jobs', 'runvars', 'steps', 'allocations', 'allocation_log', 'hosts']) {
          await admin.query(`ALTER TABLE ${schema}.${t} ADD COLUMN later_${t} TEXT`);
        }
        expect(await read()).toEqual(before);
        await s.finishStep('f', 'j', s1.stepno, { status: 'pass' });
        expect((await s.markFlightStarted('f')).blessing).toBe('running');
      } finally {
        await s.close();
        await drop();
      }
    });

    it('refuses to work once closed', async () => {
      const { conn, drop } = await freshSchema();
      try {
        const s = await openPostgresStore(conn);
        await s.close();
        await s.close();
        await expect(s.listFlights()).rejects.toThrow(/closed/);
      } finally {
        await drop();
      }
    });

    it('reports a database failure as a StoreError naming the operation and the server', async () => {
      const { conn, schema, drop } = await freshSchema();
      const s = await openPostgresStore(conn);
      try {
        await admin.query(`DROP TABLE ${schema}.allocation_log`);
        const err = await s.allocationLog().then(
          () => undefined,
          (e: unknown) => e as Error,
        );
        expect(err).toBeInstanceOf(StoreError);
        expect(err!.message).toContain(`allocationLog: PostgreSQL ${describeConnection(conn)}: `);
        expect(err!.message).toContain('allocation_log');
      } finally {
        await s.close();
        await drop();
      }
    });

    it('measures per-call latency of startStep+finishStep and allocate+release', async () => {
      const { conn, drop } = await freshSchema();
      const s = await openPostgresStore(conn);
      try {
        await s.createFlight({ flight: 'f', branch: 'b', intended: 'play' });
        await s.createJob('f', 'j', 'rec');
        await s.upsertHost({ name: 'h1' });
        const n = 300;
        const stats = (xs: number[]) => {
          const sorted = [...xs].sort((a, b) => a - b);
          const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
          return {
            mean: xs.reduce((a, b) => a + b, 0) / xs.length,
            p50: at(0.5),
            p99: at(0.99),
          };
        };
        const steps: number[] = [];
        const allocs: number[] = [];
        for (let i = 0; i < n + 20; i++) {
          const t0 = performance.now();
          const st = await s.startStep('f', 'j', { testcase: 'ts-x', testid: 'x' });
          await s.finishStep('f', 'j', st.stepno, { status: 'pass', logPath: 'l' });
          const t1 = performance.now();
          expect(await s.allocateHost('h1', { flight: 'f', job: 'j', ident: 'host' })).toBe(true);
          await s.releaseHost('h1', { flight: 'f', job: 'j' });
          const t2 = performance.now();
          if (i >= 20) {
            steps.push(t1 - t0);
            allocs.push(t2 - t1);
          }
        }
        const st = stats(steps);
        const al = stats(allocs);
        const f = (x: { mean: number; p50: number; p99: number }) =>
          `mean ${x.mean.toFixed(2)} ms, p50 ${x.p50.toFixed(2)} ms, p99 ${x.p99.toFixed(2)} ms`;
        process.stderr.write(
          `[postgres] per call pair over ${n}: startStep+finishStep ${f(st)}; allocate+release ${f(al)}\n`,
        );
        // Loose: catches a lost index or a lock wait, not a slow machine.
        expect(st.mean).toBeLessThan(50);
        expect(al.mean).toBeLessThan(50);
        expect((await s.listSteps('f', 'j')).length).toBe(n + 20);
      } finally {
        await s.close();
        await drop();
      }
    });
  });
});
