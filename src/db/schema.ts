/**
 * The schema, as numbered migrations shared by both stores. Each migration is applied once, in its
 * own transaction, and recorded in `schema_migrations`; an applied migration is never edited — a
 * change to the schema is a new migration appended to the list.
 *
 * The SQL is written once for both dialects; the few words that differ are placeholders that
 * `migrationSql` fills in:
 *   {{autoinc}}  an auto-numbered primary key column type
 *   {{bigint}}   a 64-bit integer
 *   {{millis}}   a time in milliseconds since the epoch (a 64-bit integer)
 *   {{bool}}     a boolean (0/1 in sqlite, which has no boolean type)
 * Everything else (ON CONFLICT, RETURNING, CHECK, ON DELETE CASCADE, composite foreign keys) is
 * common to sqlite ≥ 3.35 and PostgreSQL.
 *
 * Status lists are spelled out rather than generated from src/model/status.ts so that an applied
 * migration's text can never change under a database; the store suite sets every status, which
 * fails if the model grows a status without a migration here.
 */

export type Dialect = 'sqlite' | 'postgres';

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

const WORDS: Record<Dialect, Record<string, string>> = {
  sqlite: {
    autoinc: 'INTEGER PRIMARY KEY AUTOINCREMENT',
    bigint: 'INTEGER',
    millis: 'INTEGER',
    bool: 'INTEGER',
  },
  postgres: {
    autoinc: 'BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY',
    bigint: 'BIGINT',
    millis: 'BIGINT',
    bool: 'BOOLEAN',
  },
};

/** Fills in the dialect's words; an unknown placeholder is a programming error and throws. */
export function migrationSql(sql: string, dialect: Dialect): string {
  return sql.replace(/\{\{(\w+)\}\}/g, (_m, word: string) => {
    const w = WORDS[dialect][word];
    if (w === undefined) throw new Error(`schema: unknown placeholder {{${word}}} for ${dialect}`);
    return w;
  });
}

/** Created before any migration runs (its own shape never changes). */
export const MIGRATIONS_TABLE = `
CREATE TABLE IF NOT EXISTS schema_migrations (
  id {{bigint}} PRIMARY KEY,
  name TEXT NOT NULL,
  applied {{millis}} NOT NULL
)`;

export const MIGRATIONS: readonly Migration[] = [
  {
    id: 1,
    name: 'flights, jobs, runvars, steps, hosts, allocations',
    sql: `
CREATE TABLE counters (
  name TEXT PRIMARY KEY,
  val {{bigint}} NOT NULL
);
-- flight_number: the last number handed out to an unnamed flight; flight_seq: creation order.
INSERT INTO counters (name, val) VALUES ('flight_number', 0), ('flight_seq', 0);

CREATE TABLE flights (
  flight TEXT PRIMARY KEY,
  seq {{bigint}} NOT NULL UNIQUE,
  branch TEXT NOT NULL,
  intended TEXT NOT NULL,
  blessing TEXT NOT NULL,
  created {{millis}} NOT NULL,
  started {{millis}}
);
CREATE INDEX flights_branch_seq ON flights (branch, seq);

CREATE TABLE flights_harness_touched (
  flight TEXT NOT NULL REFERENCES flights (flight) ON DELETE CASCADE,
  harness TEXT NOT NULL,
  recorded {{millis}} NOT NULL,
  PRIMARY KEY (flight, harness)
);

CREATE TABLE jobs (
  flight TEXT NOT NULL REFERENCES flights (flight) ON DELETE CASCADE,
  job TEXT NOT NULL,
  recipe TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN
    ('queued', 'preparing', 'running', 'pass', 'fail', 'broken', 'blocked', 'aborted', 'starved')),
  PRIMARY KEY (flight, job)
);

-- The primary key serves lookups by (flight, job).
CREATE TABLE runvars (
  flight TEXT NOT NULL,
  job TEXT NOT NULL,
  name TEXT NOT NULL,
  val TEXT NOT NULL,
  synth {{bool}} NOT NULL,
  PRIMARY KEY (flight, job, name),
  FOREIGN KEY (flight, job) REFERENCES jobs (flight, job) ON DELETE CASCADE
);

-- The primary key serves lookups by (flight, job); history and regression searches go by (job, testid).
CREATE TABLE steps (
  flight TEXT NOT NULL,
  job TEXT NOT NULL,
  stepno INTEGER NOT NULL,
  testcase TEXT NOT NULL,
  testid TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN
    ('running', 'pass', 'fail', 'broken', 'blocked', 'aborted', 'starved')),
  started {{millis}},
  finished {{millis}},
  log_path TEXT,
  PRIMARY KEY (flight, job, stepno),
  FOREIGN KEY (flight, job) REFERENCES jobs (flight, job) ON DELETE CASCADE
);
CREATE INDEX steps_job_testid ON steps (job, testid);

CREATE TABLE hosts (
  name TEXT PRIMARY KEY,
  mac TEXT UNIQUE,
  ip TEXT
);

CREATE TABLE host_flags (
  host TEXT NOT NULL REFERENCES hosts (name) ON DELETE CASCADE,
  flag TEXT NOT NULL,
  PRIMARY KEY (host, flag)
);
CREATE INDEX host_flags_flag ON host_flags (flag, host);

CREATE TABLE host_props (
  host TEXT NOT NULL REFERENCES hosts (name) ON DELETE CASCADE,
  name TEXT NOT NULL,
  val TEXT NOT NULL,
  PRIMARY KEY (host, name)
);

-- One row per held host: the primary key is what makes allocation exclusive. No cascade from hosts:
-- a held host cannot be deleted. The store releases a job's hosts itself (logging it) before
-- deleting the job; the cascade from jobs is only a safety net.
CREATE TABLE allocations (
  host TEXT PRIMARY KEY REFERENCES hosts (name),
  flight TEXT NOT NULL,
  job TEXT NOT NULL,
  ident TEXT NOT NULL,
  allocated {{millis}} NOT NULL,
  FOREIGN KEY (flight, job) REFERENCES jobs (flight, job) ON DELETE CASCADE
);
CREATE INDEX allocations_job ON allocations (flight, job);

-- History: kept when hosts and flights go (no foreign keys), for host history reports.
CREATE TABLE allocation_log (
  id {{autoinc}},
  host TEXT NOT NULL,
  flight TEXT NOT NULL,
  job TEXT NOT NULL,
  ident TEXT NOT NULL,
  event TEXT NOT NULL CHECK (event IN ('allocate', 'release')),
  at {{millis}} NOT NULL
);
CREATE INDEX allocation_log_host ON allocation_log (host, id);
`,
  },
  {
    id: 2,
    name: 'host events',
    sql: `
-- What hosts did while booting and installing (DHCP leases, files fetched, progress reported, refused
-- requests). No foreign key: kept for host history after the host is deleted, like allocation_log.
CREATE TABLE host_events (
  id {{autoinc}},
  host TEXT NOT NULL,
  kind TEXT NOT NULL,
  detail TEXT NOT NULL,
  at {{millis}} NOT NULL
);
CREATE INDEX host_events_host_at ON host_events (host, at, id);
`,
  },
];

/** The newest schema this program knows. */
export const SCHEMA_VERSION = MIGRATIONS.reduce((m, x) => Math.max(m, x.id), 0);
