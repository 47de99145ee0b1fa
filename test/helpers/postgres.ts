/**
 * A real PostgreSQL for tests, never a mock:
 * - `OSSTEST_TEST_PG` set: a connection string (URL or keyword/value) to a server on which the tests
 *   may create and drop databases;
 * - otherwise a throw-away server started here from the Debian binaries (/usr/lib/postgresql/N/bin,
 *   package `postgresql`): data and socket in a temp dir, TCP on 127.0.0.1 only at a free port,
 *   fsync off. PostgreSQL refuses to run as root, so as root the server runs as the system user
 *   `osstest-pg` (created here if missing).
 * Each test database is made with an ICU en-US default collation where the server has ICU, so a
 * query that forgets to order by bytes (as sqlite does) shows up.
 * stop() drops what was made and stops the server. If stop() never runs: the process's exit
 * handler kills the server and removes its files; if the process is killed outright, the kernel
 * stops the server (parent-death signal, via setpriv) and the next start sweeps its files away.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { connectionConfig } from '../../src/db/postgres/connection.js';
import { isRoot, prerequisites } from './env.js';

export const PG_USER = 'osstest-pg';

export interface TestPostgres {
  /** `OSSTEST_TEST_PG`, or `local PostgreSQL N on 127.0.0.1:PORT`. */
  readonly origin: string;
  /** A new, empty database; returns a connection string for it (a URL or keyword/value pairs). */
  createDatabase(): Promise<string>;
  /** Superuser/admin SQL on the maintenance database (e.g. to look at pg_stat_activity). */
  admin(sql: string, values?: unknown[]): Promise<pg.QueryResult>;
  stop(): Promise<void>;
}

/** The newest PostgreSQL server binaries on this machine, or undefined. */
export function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter(
        (v) => existsSync(join(root, v, 'bin', 'postgres')) && existsSync(join(root, v, 'bin', 'initdb')),
      )
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0] !== undefined) return join(root, versions[0], 'bin');
  }
  try {
    const initdb = execFileSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' }).trim();
    if (initdb) return join(initdb, '..');
  } catch {
    // not on PATH either
  }
  return undefined;
}

/** True when the tests can have a PostgreSQL; otherwise skips loudly, or fails under CI=true. */
export function havePostgres(what: string): boolean {
  if (process.env.OSSTEST_TEST_PG) return true;
  if (postgresBinDir() !== undefined && (!isRoot() || hasUseradd())) return true;
  return prerequisites(`${what} (install the Debian package postgresql, or set OSSTEST_TEST_PG)`, {
    commands: ['initdb', ...(isRoot() ? ['useradd'] : [])],
  });
}

function hasUseradd(): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v useradd || test -x /usr/sbin/useradd'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The uid and gid the server runs as: ours when not root, else `osstest-pg` (made if missing). */
function serverIds(): { uid: number; gid: number } | undefined {
  if (!isRoot()) return undefined;
  const ids = () => {
    try {
      return {
        uid: Number(execFileSync('id', ['-u', PG_USER], { encoding: 'utf8', stdio: 'pipe' })),
        gid: Number(execFileSync('id', ['-g', PG_USER], { encoding: 'utf8', stdio: 'pipe' })),
      };
    } catch {
      return undefined;
    }
  };
  for (let attempt = 0; attempt < 5; attempt++) {
    const got = ids();
    if (got) return got;
    try {
      const useradd = existsSync('/usr/sbin/useradd') ? '/usr/sbin/useradd' : 'useradd';
      execFileSync(
        useradd,
        [
          '--system',
          '--user-group',
          '--no-create-home',
          '--home-dir',
          '/nonexistent',
          '--shell',
          '/usr/sbin/nologin',
          PG_USER,
        ],
        { stdio: 'pipe' },
      );
    } catch {
      // Another test file may be adding the user at this moment (useradd locks /etc/passwd): look again.
      execFileSync('sleep', ['0.2']);
    }
  }
  const got = ids();
  if (!got) throw new Error(`cannot create the system user ${PG_USER} to run PostgreSQL as`);
  return got;
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? res(a.port) : rej(new Error('no port'))));
    });
  });
}

function quoteIdent(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

/** The same server, another database, in the form the string came in. */
export function withDatabase(connection: string, db: string): string {
  if (/^postgres(?:ql)?:\/\//i.test(connection)) {
    const u = new URL(connection);
    u.pathname = `/${encodeURIComponent(db)}`;
    return u.toString();
  }
  return `${connection} dbname='${db}'`;
}

/** The same connection with `-c search_path=SCHEMA` in its startup options (tables then live in that schema). */
export function withSchema(connection: string, schema: string): string {
  const opt = `-c search_path=${schema}`;
  if (/^postgres(?:ql)?:\/\//i.test(connection)) {
    const u = new URL(connection);
    u.searchParams.set('options', opt);
    return u.toString();
  }
  return `${connection} options='${opt}'`;
}

async function createDb(adminConn: string, admin: pg.Client, prefix: string, n: number): Promise<string> {
  const name = `${prefix}_${n}`;
  try {
    await admin.query(
      `CREATE DATABASE ${quoteIdent(name)} TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'`,
    );
  } catch {
    // A server without ICU (or older than 15): its default collation will do.
    await admin.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE template0 ENCODING 'UTF8'`);
  }
  return withDatabase(adminConn, name);
}

async function external(conn: string): Promise<TestPostgres> {
  const admin = new pg.Client(connectionConfig(conn));
  await admin.connect();
  const prefix = `osstest_test_${process.pid}_${Date.now().toString(36)}`;
  const made: string[] = [];
  return {
    origin: 'OSSTEST_TEST_PG',
    async createDatabase() {
      const url = await createDb(conn, admin, prefix, made.length + 1);
      made.push(`${prefix}_${made.length + 1}`);
      return url;
    },
    admin: (sql, values) => admin.query(sql, values),
    async stop() {
      try {
        for (const db of made.splice(0))
          await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(db)} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}

/** Tuned for throw-away data: nothing is ever flushed to disk. */
const SERVER_SETTINGS: Record<string, string> = {
  listen_addresses: '127.0.0.1',
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
  max_connections: '200',
  shared_buffers: '32MB',
  log_min_messages: 'warning',
  log_min_error_statement: 'panic',
};

const DIR_PREFIX = 'osstest-pg-';

function hasSetpriv(): boolean {
  try {
    execFileSync('setpriv', ['--help'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Removes the files of servers whose test process died without stopping them (their server then
 * died too, see setpriv below): a dir older than ten minutes with no live postmaster. Younger ones
 * may belong to a test file that is running initdb right now.
 */
function sweepStale(): void {
  const root = tmpdir();
  for (const name of readdirSync(root)) {
    if (!name.startsWith(DIR_PREFIX)) continue;
    const dir = join(root, name);
    try {
      if (Date.now() - statSync(dir).mtimeMs < 10 * 60_000) continue;
      const pidFile = join(dir, 'data', 'postmaster.pid');
      if (existsSync(pidFile)) {
        const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
        if (pid > 0 && alive(pid)) continue;
      }
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // Gone already, or not ours to read: leave it.
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Starts a throw-away server; see the module comment. */
async function local(): Promise<TestPostgres> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('no PostgreSQL server binaries (install the Debian package postgresql)');
  sweepStale();
  const ids = serverIds();
  const dir = mkdtempSync(join(tmpdir(), DIR_PREFIX));
  const data = join(dir, 'data');
  const sock = join(dir, 'sock');
  mkdirSync(sock);
  if (ids) {
    chownSync(dir, ids.uid, ids.gid);
    chownSync(sock, ids.uid, ids.gid);
  }
  const asServer = {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, TZ: 'UTC' },
    ...ids,
  };
  let child: ChildProcess | undefined;
  const cleanup = () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', cleanup);
  try {
    execFileSync(
      join(bin, 'initdb'),
      ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C'],
      { ...asServer, stdio: 'pipe' },
    );
    const version = execFileSync(join(bin, 'postgres'), ['--version'], { encoding: 'utf8' }).trim();
    let port = 0;
    let log = '';
    // A free port can be taken by someone else before the server binds it: try a few.
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      log = '';
      const args = ['-D', data, '-p', String(port), '-k', sock];
      for (const [k, v] of Object.entries(SERVER_SETTINGS)) args.push('-c', `${k}=${v}`);
      // setpriv makes the kernel stop the server (SIGINT: fast shutdown) if this process dies
      // without calling stop(), e.g. when the test runner kills its worker.
      const c = hasSetpriv()
        ? spawn('setpriv', ['--pdeathsig', 'INT', '--', join(bin, 'postgres'), ...args], {
            ...asServer,
            stdio: ['ignore', 'pipe', 'pipe'],
          })
        : spawn(join(bin, 'postgres'), args, { ...asServer, stdio: ['ignore', 'pipe', 'pipe'] });
      child = c;
      const keep = (d: Buffer) => {
        log = (log + d.toString()).slice(-8000);
      };
      c.stdout?.on('data', keep);
      c.stderr?.on('data', keep);
      if (await ready(c, port, () => log)) break;
      if (attempt >= 3 || !/could not bind|already in use/i.test(log)) {
        throw new Error(`PostgreSQL did not start on 127.0.0.1:${port}:\n${log}`);
      }
    }
    const adminConn = `postgres://postgres@127.0.0.1:${port}/postgres`;
    const admin = new pg.Client({ connectionString: adminConn });
    await admin.connect();
    const prefix = 'osstest_test';
    let n = 0;
    const server = child;
    return {
      origin: `local ${version} on 127.0.0.1:${port} (data ${data})`,
      createDatabase: () => createDb(adminConn, admin, prefix, ++n),
      admin: (sql, values) => admin.query(sql, values),
      async stop() {
        await admin.end().catch(() => undefined);
        if (server.exitCode === null && server.signalCode === null) {
          const exited = new Promise((r) => server.once('exit', r));
          server.kill('SIGINT'); // fast shutdown: disconnects clients, no checkpoint wait worth having
          const t = setTimeout(() => server.kill('SIGKILL'), 10_000);
          await exited;
          clearTimeout(t);
        }
        rmSync(dir, { recursive: true, force: true });
        process.removeListener('exit', cleanup);
      },
    };
  } catch (e) {
    cleanup();
    process.removeListener('exit', cleanup);
    throw e;
  }
}

/** Resolves true once the server takes connections, false if it exited first. */
async function ready(c: ChildProcess, port: number, log: () => string): Promise<boolean> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (c.exitCode !== null || c.signalCode !== null) return false;
    const probe = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
    try {
      await probe.connect();
      await probe.end();
      return true;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  c.kill('SIGKILL');
  throw new Error(`PostgreSQL on 127.0.0.1:${port} not ready after 30 s:\n${log()}`);
}

export async function startTestPostgres(): Promise<TestPostgres> {
  const ext = process.env.OSSTEST_TEST_PG;
  return ext ? external(ext) : local();
}

/**
 * Every row of every table in the connection's schema, sorted, to prove a refused change wrote
 * nothing. Keeps one connection for all its snapshots; close() ends it.
 */
export function postgresSnapshotter(connection: string): {
  snapshot: () => Promise<string>;
  close: () => Promise<void>;
} {
  let client: Promise<pg.Client> | undefined;
  const connect = async () => {
    const c = new pg.Client(connectionConfig(connection));
    await c.connect();
    return c;
  };
  return {
    async snapshot() {
      client ??= connect();
      const c = await client;
      const tables = await c.query<{ t: string }>(
        `SELECT table_name AS t FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1`,
      );
      const out: Record<string, string[]> = {};
      for (const { t } of tables.rows) {
        const rows = await c.query(`SELECT * FROM ${quoteIdent(t)}`);
        out[t] = rows.rows.map((r) => JSON.stringify(r)).sort();
      }
      return JSON.stringify(out);
    },
    async close() {
      if (client) await (await client).end();
    },
  };
}

/** The parts of a connection string (either form), for tests that rewrite it in the other form. */
export interface ConnParts {
  host: string;
  port: number;
  user: string;
  password?: string;
  database: string;
  options?: string;
}

export function connParts(connection: string): ConnParts {
  const cfg = connectionConfig(connection);
  if (cfg.connectionString) {
    const u = new URL(cfg.connectionString);
    const parts: ConnParts = {
      host: u.searchParams.get('host') ?? decodeURIComponent(u.hostname),
      port: Number(u.searchParams.get('port') ?? u.port ?? 5432),
      user: decodeURIComponent(u.username),
      database: decodeURIComponent(u.pathname.slice(1)),
    };
    if (u.password) parts.password = decodeURIComponent(u.password);
    const options = u.searchParams.get('options');
    if (options) parts.options = options;
    return parts;
  }
  const parts: ConnParts = {
    host: cfg.host ?? 'localhost',
    port: cfg.port ?? 5432,
    user: cfg.user ?? '',
    database: cfg.database ?? '',
  };
  if (typeof cfg.password === 'string') parts.password = cfg.password;
  if (cfg.options) parts.options = cfg.options;
  return parts;
}

/** libpq keyword/value form, every value quoted. */
export function toKeywords(p: ConnParts): string {
  const q = (v: string | number) => `'${String(v).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  const pairs = [`host=${q(p.host)}`, `port=${q(p.port)}`, `user=${q(p.user)}`, `dbname=${q(p.database)}`];
  if (p.password !== undefined) pairs.push(`password=${q(p.password)}`);
  if (p.options !== undefined) pairs.push(`options=${q(p.options)}`);
  return pairs.join(' ');
}

/** URL form; a socket directory goes in the `host` parameter, as libpq writes it. */
export function toUrl(p: ConnParts): string {
  const socket = p.host.startsWith('/');
  const q = new URLSearchParams();
  if (socket) q.set('host', p.host);
  if (socket) q.set('port', String(p.port));
  if (p.options !== undefined) q.set('options', p.options);
  const auth = `${encodeURIComponent(p.user)}${p.password === undefined ? '' : `:${encodeURIComponent(p.password)}`}`;
  const where = socket ? '' : `${auth}@${p.host}:${p.port}`;
  if (socket) q.set('user', p.user);
  if (socket && p.password !== undefined) q.set('password', p.password);
  const query = q.toString();
  return `postgres://${where}/${encodeURIComponent(p.database)}${query ? `?${query}` : ''}`;
}
