/**
 * Connection settings for the PostgreSQL store, written the way libpq users write them:
 * - a URL, `postgres://user@host:port/db?options=...` (handed to `pg`, which parses URLs itself);
 * - keyword/value pairs, `host=/run/postgresql dbname=osstest user=lab` (parsed here: `pg` reads only URLs);
 * - the empty string: everything from the `PG*` environment (PGHOST, PGPORT, PGUSER, PGDATABASE,
 *   PGPASSWORD, PGSSLMODE), which `pg` applies to whatever a string leaves unset, as libpq does.
 * A password is never repeated in an error message or a description.
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type { ClientConfig } from 'pg';
import { StoreError } from '../errors.js';

/** The keywords understood in a keyword/value string, with what each becomes in `pg`'s settings. */
const KEYWORDS = [
  'host',
  'hostaddr',
  'port',
  'dbname',
  'user',
  'password',
  'connect_timeout',
  'application_name',
  'options',
  'sslmode',
  'sslrootcert',
  'sslcert',
  'sslkey',
] as const;
type Keyword = (typeof KEYWORDS)[number];

function err(msg: string): StoreError {
  return new StoreError(`PostgreSQL connection string: ${msg}`);
}

function isUrl(s: string): boolean {
  return /^postgres(?:ql)?:\/\//i.test(s);
}

/**
 * Parses a postgres:// URL. libpq (and pg) accept a user with no host (`postgres://me@/db`: the
 * default host), which WHATWG URLs refuse; such a URL is read with a placeholder host, reported as
 * empty. The string is never repeated in the error: it may hold a password.
 */
function parseUrl(s: string): { url: URL; host: string } {
  try {
    const url = new URL(s);
    return { url, host: decodeURIComponent(url.hostname) };
  } catch {
    try {
      return { url: new URL(s.replace('@/', '@placeholder/')), host: '' };
    } catch {
      throw err('not a valid postgres:// URL');
    }
  }
}

/**
 * Splits `a=1 b = 'two words' c=it\'s` into pairs: whitespace between pairs, optional spaces around
 * `=`, single quotes for empty values or values with spaces, and a backslash taking the next character
 * literally (the libpq rules).
 */
export function parseKeywordValue(s: string): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  const n = s.length;
  const space = (c: string | undefined) => c !== undefined && /\s/.test(c);
  while (true) {
    while (space(s[i])) i++;
    if (i >= n) break;
    const kStart = i;
    while (i < n && s[i] !== '=' && !space(s[i])) i++;
    const key = s.slice(kStart, i);
    while (space(s[i])) i++;
    if (s[i] !== '=') throw err(`expected '=' after '${key}'`);
    i++;
    while (space(s[i])) i++;
    let val = '';
    if (s[i] === "'") {
      i++;
      let closed = false;
      while (i < n) {
        const c = s[i]!;
        if (c === '\\' && i + 1 < n) {
          val += s[i + 1];
          i += 2;
        } else if (c === "'") {
          i++;
          closed = true;
          break;
        } else {
          val += c;
          i++;
        }
      }
      if (!closed) throw err(`unterminated quoted value for '${key}'`);
    } else {
      while (i < n && !space(s[i])) {
        if (s[i] === '\\' && i + 1 < n) i++;
        val += s[i];
        i++;
      }
    }
    if (key === '') throw err('a value without a keyword');
    // As in libpq, a keyword given twice takes its last value.
    out.set(key, val);
  }
  return out;
}

function readPem(keyword: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw err(`cannot read ${keyword} ${path}: ${(e as Error).message}`);
  }
}

/**
 * libpq's sslmode in `pg`'s terms. `pg` cannot fall back from TLS to plain text on one connection,
 * so `allow` and `prefer` connect without TLS (what libpq ends up doing with a server that has none).
 */
function sslSettings(kv: Map<string, string>): boolean | ConnectionOptions | undefined {
  const mode = kv.get('sslmode');
  const root = kv.get('sslrootcert');
  const cert = kv.get('sslcert');
  const key = kv.get('sslkey');
  if (mode === undefined && root === undefined && cert === undefined && key === undefined) return undefined;
  const opts: ConnectionOptions = {};
  if (root !== undefined) opts.ca = readPem('sslrootcert', root);
  if (cert !== undefined) opts.cert = readPem('sslcert', cert);
  if (key !== undefined) opts.key = readPem('sslkey', key);
  switch (mode) {
    case 'disable':
    case 'allow':
    case 'prefer':
      return false;
    case 'require':
      // libpq: with a root certificate, require checks the chain like verify-ca; without, it checks nothing.
      if (root === undefined) return { ...opts, rejectUnauthorized: false };
      return { ...opts, checkServerIdentity: () => undefined };
    case 'verify-ca':
      if (root === undefined) throw err('sslmode=verify-ca needs sslrootcert');
      return { ...opts, checkServerIdentity: () => undefined };
    case undefined:
    case 'verify-full':
      return opts;
    default:
      throw err(`sslmode '${mode}' is not one of disable, allow, prefer, require, verify-ca, verify-full`);
  }
}

function fromKeywords(s: string): ClientConfig {
  const kv = parseKeywordValue(s);
  for (const k of kv.keys()) {
    if (!(KEYWORDS as readonly string[]).includes(k)) {
      throw err(`unknown keyword '${k}' (known: ${KEYWORDS.join(', ')})`);
    }
  }
  const get = (k: Keyword) => kv.get(k);
  const cfg: ClientConfig = {};
  // libpq connects to hostaddr when both are given (host then only names the server for TLS).
  const host = get('hostaddr') || get('host');
  if (host) {
    if (host.includes(',')) throw err(`several hosts (${host}) are not supported: name one`);
    cfg.host = host;
  }
  const port = get('port');
  if (port) {
    if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
      throw err(`port '${port}' is not a TCP port number`);
    }
    cfg.port = Number(port);
  }
  const database = get('dbname');
  if (database) cfg.database = database;
  const user = get('user');
  if (user) cfg.user = user;
  const password = get('password');
  if (password !== undefined) cfg.password = password;
  const timeout = get('connect_timeout');
  if (timeout) {
    if (!/^\d+$/.test(timeout)) throw err(`connect_timeout '${timeout}' is not a whole number of seconds`);
    // libpq's minimum is 2 s (so 1 means 2) and 0 waits for ever, as pg's 0 does.
    const secs = Number(timeout) === 1 ? 2 : Number(timeout);
    cfg.connectionTimeoutMillis = secs * 1000;
  }
  const app = get('application_name');
  if (app !== undefined) cfg.application_name = app;
  const options = get('options');
  if (options !== undefined) cfg.options = options;
  const ssl = sslSettings(kv);
  if (ssl !== undefined) cfg.ssl = ssl;
  return cfg;
}

/** `pg` settings for a connection string (see the module comment for the accepted forms). */
export function connectionConfig(connection: string): ClientConfig {
  if (typeof connection !== 'string') throw err(`expected a string, not ${typeof connection}`);
  const s = connection.trim();
  if (s === '') return {};
  if (isUrl(s)) {
    parseUrl(s);
    return { connectionString: s };
  }
  return fromKeywords(s);
}

/**
 * Where a connection goes, for messages: `host:port database DB as USER`, filling what the string
 * leaves unset from the environment the way `pg` does.
 */
export function describeConnection(connection: string): string {
  const env = process.env;
  const cfg = connectionConfig(connection);
  let host = cfg.host;
  let port = cfg.port === undefined ? undefined : String(cfg.port);
  let database = cfg.database;
  let user = cfg.user;
  if (cfg.connectionString) {
    const { url: u, host: urlHost } = parseUrl(cfg.connectionString);
    host = u.searchParams.get('host') || urlHost || undefined;
    port = u.searchParams.get('port') || u.port || undefined;
    database = decodeURIComponent(u.pathname.slice(1)) || undefined;
    user = u.searchParams.get('user') || decodeURIComponent(u.username) || undefined;
  }
  host = host || env.PGHOST || 'localhost';
  port = port || env.PGPORT || '5432';
  user = user || env.PGUSER || env.USER || 'unknown user';
  database = database || env.PGDATABASE || user;
  const where = host.startsWith('/') ? `socket ${host}/.s.PGSQL.${port}` : `${host}:${port}`;
  return `${where} database ${database} as ${user}`;
}
