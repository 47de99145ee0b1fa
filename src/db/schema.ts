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
  {
    id: 10,
    name: 'lab mode: workers, queued flights, job claims, leases, shared hosts, host health',
    sql: `
-- Workers (osstest worker). Rows are kept after a worker ends, for history; a live worker has
-- ended NULL and renews lease_until; one whose lease has passed is declared gone by any other.
CREATE TABLE workers (
  id TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  started {{millis}} NOT NULL,
  lease_until {{millis}} NOT NULL,
  draining INTEGER NOT NULL DEFAULT 0,
  max_jobs INTEGER NOT NULL,
  ended {{millis}},
  end_reason TEXT
);
CREATE INDEX workers_live ON workers (ended, lease_until);

-- Flights whose queued jobs workers take (osstest flight queue); removed once every job has ended.
CREATE TABLE queued_flights (
  flight TEXT PRIMARY KEY REFERENCES flights (flight) ON DELETE CASCADE,
  queued {{millis}} NOT NULL,
  priority INTEGER,
  queued_by TEXT NOT NULL
);

-- Which worker runs which job, until when unless renewed. The primary key makes a claim exclusive.
CREATE TABLE job_claims (
  flight TEXT NOT NULL,
  job TEXT NOT NULL,
  worker TEXT NOT NULL REFERENCES workers (id),
  claimed {{millis}} NOT NULL,
  renewed {{millis}} NOT NULL,
  lease_until {{millis}} NOT NULL,
  PRIMARY KEY (flight, job),
  FOREIGN KEY (flight, job) REFERENCES jobs (flight, job) ON DELETE CASCADE
);
CREATE INDEX job_claims_worker ON job_claims (worker);

-- Allocation leases: NULL (allocated by hand, or by a run-job outside a worker) never expires.
-- expected_end is the planner's estimate of when the holder lets go.
ALTER TABLE allocations ADD COLUMN lease_until {{millis}};
ALTER TABLE allocations ADD COLUMN expected_end {{millis}};
-- The share type for holds of a slot of a shared build host; NULL for exclusive allocations.
ALTER TABLE allocation_log ADD COLUMN share TEXT;

-- A shared build host: prepared once (prep → ready), then lent slot by slot to build jobs of one
-- share type and harness revision. Its holders are in share_holders, never in allocations: an
-- allocation and a share of one host exclude each other (the store checks, under the host's lock).
CREATE TABLE host_shares (
  host TEXT PRIMARY KEY REFERENCES hosts (name) ON DELETE CASCADE,
  type TEXT NOT NULL,
  harness TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('prep', 'ready')),
  slots INTEGER NOT NULL CHECK (slots >= 1),
  wear INTEGER NOT NULL,
  wear_limit INTEGER NOT NULL CHECK (wear_limit >= 1),
  created {{millis}} NOT NULL
);

CREATE TABLE share_holders (
  host TEXT NOT NULL REFERENCES host_shares (host) ON DELETE CASCADE,
  flight TEXT NOT NULL,
  job TEXT NOT NULL,
  ident TEXT NOT NULL,
  allocated {{millis}} NOT NULL,
  lease_until {{millis}},
  expected_end {{millis}},
  PRIMARY KEY (host, flight, job),
  FOREIGN KEY (flight, job) REFERENCES jobs (flight, job) ON DELETE CASCADE
);
CREATE INDEX share_holders_job ON share_holders (flight, job);

-- Host health; a host without a row is good. broken_streak counts jobs in a row that ended broken
-- on the host while passing elsewhere; check_* track the health check of a quarantined host.
CREATE TABLE host_health (
  host TEXT PRIMARY KEY REFERENCES hosts (name) ON DELETE CASCADE,
  state TEXT NOT NULL CHECK (state IN ('good', 'suspect', 'quarantined', 'maintenance')),
  reason TEXT NOT NULL,
  since {{millis}} NOT NULL,
  broken_streak INTEGER NOT NULL DEFAULT 0,
  check_queued {{millis}},
  check_flight TEXT
);
`,
  },
  {
    id: 20,
    name: 'push gate: branch controls, gate runs, pushes',
    sql: `
-- What \`osstest branch stop|start|block-push|unblock-push|force-push\` set for a branch (the
-- original's stop, block and force files). A branch without a row has the defaults.
CREATE TABLE branch_controls (
  branch TEXT PRIMARY KEY,
  stopped {{bool}} NOT NULL,
  block_push {{bool}} NOT NULL,
  force_push TEXT,
  note TEXT NOT NULL,
  updated {{millis}} NOT NULL
);

-- One row per daily-branch run. revisions is a JSON object (tree → revision tested), reruns a JSON
-- array of flights. No foreign keys: the gate's history outlives flights.
CREATE TABLE gate_runs (
  id {{autoinc}},
  branch TEXT NOT NULL,
  tree TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('test', 'baseline', 'nothing')),
  old_rev TEXT NOT NULL,
  new_rev TEXT NOT NULL,
  revisions TEXT NOT NULL,
  flight TEXT,
  reruns TEXT NOT NULL,
  runner TEXT NOT NULL,
  started {{millis}} NOT NULL,
  finished {{millis}},
  completed {{bool}} NOT NULL,
  outcome TEXT,
  detail TEXT NOT NULL
);
CREATE INDEX gate_runs_branch ON gate_runs (branch, id);
-- "Did a completed run test this revision?" is the question every run starts with.
CREATE INDEX gate_runs_tested ON gate_runs (branch, tree, new_rev, id);
-- At most one unfinished run per branch: what makes two daily-branch runs of one branch exclusive.
CREATE UNIQUE INDEX gate_runs_one_open ON gate_runs (branch) WHERE finished IS NULL;

CREATE TABLE gate_pushes (
  id {{autoinc}},
  branch TEXT NOT NULL,
  flight TEXT,
  tree TEXT NOT NULL,
  url TEXT NOT NULL,
  ref TEXT NOT NULL,
  from_rev TEXT NOT NULL,
  to_rev TEXT NOT NULL,
  result TEXT NOT NULL CHECK (result IN ('pushed', 'refused', 'failed')),
  overridden {{bool}} NOT NULL,
  detail TEXT NOT NULL,
  at {{millis}} NOT NULL
);
CREATE INDEX gate_pushes_branch ON gate_pushes (branch, id);
`,
  },
  {
    id: 30,
    name: 'bisections',
    sql: `
-- One row per bisection of (branch, job, testid) (OSSTEST-BEHAVIOUR §5). At most one is open
-- (pending or running) per key: the partial unique index is what makes a second request for the
-- same regression return the first. No foreign keys to flights: a bisection's history outlives them.
-- trees and hosts are JSON objects (tree → URL, ident → host); tuples are graph tuple ids;
-- parallel is how many equivalent hosts it tested on at once (k-ary bisection).
CREATE TABLE bisections (
  id {{autoinc}},
  branch TEXT NOT NULL,
  job TEXT NOT NULL,
  testid TEXT NOT NULL,
  requested_flight TEXT,
  state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done')),
  failure_flight TEXT,
  basis_flight TEXT,
  failure_tuple TEXT,
  basis_tuple TEXT,
  trees TEXT NOT NULL,
  hosts TEXT NOT NULL,
  parallel INTEGER,
  code INTEGER,
  wording TEXT,
  detail TEXT,
  culprit_tree TEXT,
  culprit_rev TEXT,
  culprit_parents TEXT,
  confidence DOUBLE PRECISION,
  confirmed {{bool}},
  created {{millis}} NOT NULL,
  started {{millis}},
  finished {{millis}}
);
CREATE UNIQUE INDEX bisections_open ON bisections (branch, job, testid) WHERE state <> 'done';
CREATE INDEX bisections_key ON bisections (branch, job, testid, id);

-- The flights a bisection looked at: the failure and the basis it started from, the flights it made
-- (test) and those of bisect verify (verify). result stays NULL while the flight runs; at orders the
-- results in time (what the engine's alternation rules read).
CREATE TABLE bisection_flights (
  seq {{autoinc}},
  bisection {{bigint}} NOT NULL REFERENCES bisections (id) ON DELETE CASCADE,
  flight TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('failure', 'basis', 'test', 'verify')),
  tuple TEXT NOT NULL,
  reason TEXT,
  result TEXT CHECK (result IN ('pass', 'fail', 'blocked', 'broken')),
  at {{millis}},
  added {{millis}} NOT NULL,
  UNIQUE (bisection, flight)
);
`,
  },
  {
    id: 35,
    name: 'lab mode: reservations (blockages, hosts taken by hand)',
    sql: `
-- A fixed booking of a host that is not a job (mg-blockage, mg-allocate): the planner books around
-- it and no job is given the host while it lasts. [starts, ends) in ms; ending one early moves ends
-- to now, so the row stays as a record. owner is who made it ($USER); label says why.
CREATE TABLE reservations (
  id {{autoinc}},
  host TEXT NOT NULL REFERENCES hosts (name) ON DELETE CASCADE,
  starts {{millis}} NOT NULL,
  ends {{millis}} NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('blockage', 'manual')),
  owner TEXT NOT NULL,
  label TEXT NOT NULL,
  created {{millis}} NOT NULL,
  CHECK (ends > starts)
);
CREATE INDEX reservations_ends ON reservations (ends);
CREATE INDEX reservations_host ON reservations (host, ends);
`,
  },
];

/** The newest schema this program knows. */
export const SCHEMA_VERSION = MIGRATIONS.reduce((m, x) => Math.max(m, x.id), 0);
