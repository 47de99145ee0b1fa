/**
 * bench/report: how long one flight's report takes over a long history, ours against the
 * original's way of judging, in the same run on the same database.
 *
 * The history (FLIGHTS = 10,000 flights × JOBS = 50 jobs × STEPS = 20 steps by default; every
 * tenth flight on another branch) is written straight into a sqlite file with better-sqlite3 —
 * one transaction, prepared statements, the steps (job, testid) index built after the rows —
 * against the schema of src/db/schema.ts, which the real store creates first (the store API, one
 * transaction per call, would take most of an hour to write ten million steps). Trees `xen` and
 * `linux` are real git repositories (fast-import), so the revision log and the people in it are
 * read for real. The new flight's failures cover every verdict: regressions (tests and a build),
 * like, never pass, failed in, blocked in, pass in (heisenbug), blocked.
 *
 * Timed, RUNS times (median):
 *  - ours: `loadReport` on a fresh store connection (the window of 40 flights, the baseline, git),
 *    judging, and rendering the email (text and RFC 5322 message), JUnit XML (log tails read),
 *    `.mro` and JSON;
 *  - the original's way, the judgement alone: per failure, the branch's candidate flights newest
 *    first (up to 1000, one query), then for each candidate the queries the original made — the
 *    test job's build job, that build's built revisions tree by tree, the step's status (and the
 *    job's, for a build) — until every question the verdict needs is answered. Run here with
 *    better-sqlite3 prepared statements in-process, which is kinder to it than the original's
 *    round trips to PostgreSQL.
 * Both must give every failure the same verdict and reference flight; the run fails otherwise.
 *
 * Then the same on PostgreSQL (lab mode): a throw-away server started as test/helpers/postgres.ts
 * starts one (a dedicated system user when run as root; stopped and removed at the end), a database
 * made by the real store's migrations, the generated history copied into it with COPY (through
 * `psql`, foreign-key triggers off for the load, the (job, testid) index built after, ANALYZE), and
 * RUNS runs again: ours through the PostgreSQL store, the original's way as one connection making
 * its round trips with named prepared statements, as the original did against its PostgreSQL.
 *
 * Prints per-run times, the medians per database, `result: sqlite_seconds=…`, `sqlite_ratio=…`,
 * `postgres_seconds=…`, `postgres_ratio=…`, and last `result: seconds=<ours>` and
 * `result: ratio=<ours/orig>`: the slower of ours over the databases measured and the larger ratio.
 * At the default size expect about 15–20 minutes on 2 busy cores (sqlite generation 5–6 min, the
 * copy to PostgreSQL about 7 min, the original's way on PostgreSQL 30–45 s a run).
 * Environment: FLIGHTS, JOBS, STEPS, RUNS (default 5); DBS (default `sqlite,postgres`);
 * BENCH_DB=path keeps (and reuses) the generated sqlite database instead of a temporary one;
 * OSSTEST_TEST_PG=connection uses that server instead of starting one.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import pg from 'pg';
import { prng } from '../src/bisect/simulate.js';
import { Config } from '../src/config/config.js';
import { connectionConfig } from '../src/db/postgres/connection.js';
import { openPostgresStore } from '../src/db/postgres/store.js';
import { openSqliteStore } from '../src/db/sqlite/store.js';
import type { Store } from '../src/db/store.js';
import type { StepStatus } from '../src/model/status.js';
import { buildMessage, renderEmail } from '../src/report/email.js';
import { renderJunit } from '../src/report/junit.js';
import { loadReport } from '../src/report/load.js';
import { formatMro, JSON_FORMAT } from '../src/report/mro.js';
import { connParts, postgresBinDir, startTestPostgres, type TestPostgres } from '../test/helpers/postgres.js';

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(`usage: bench/report
One flight's report over a generated history (FLIGHTS × JOBS × STEPS), ours against the original's
way of judging, on sqlite and on PostgreSQL. Environment: FLIGHTS (10000), JOBS (50), STEPS (20),
RUNS (5), DBS (sqlite,postgres), BENCH_DB (keep the sqlite file there), OSSTEST_TEST_PG (use that
PostgreSQL server). Ends with result: seconds=… and result: ratio=… lines.`);
  process.exit(0);
}
const FLIGHTS = Number(process.env.FLIGHTS ?? 10_000);
const JOBS = Number(process.env.JOBS ?? 50);
const STEPS = Number(process.env.STEPS ?? 20);
const RUNS = Number(process.env.RUNS ?? 5);
const BRANCH = 'xen-unstable';
const OTHER = 'linux-linus';
const ORIGINAL_CANDIDATES = 1000;

const root = mkdtempSync(join(tmpdir(), 'osstest-bench-report-'));
const dbPath = process.env.BENCH_DB ?? join(root, 'history.db');
const logsDir = join(root, 'logs');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

// ------------------------------------------------------------------ git trees

/** A linear repository of `n` commits by a few people with trailers; returns the hashes, oldest first. */
async function linearRepo(path: string, n: number, tree: string): Promise<string[]> {
  rmSync(path, { recursive: true, force: true });
  mkdirSync(path, { recursive: true });
  await execa('git', ['init', '-q', '-b', 'main', path]);
  const people = [
    'Ann Xu <ann@example.invalid>',
    'Ben Yi <ben@example.invalid>',
    'Cy Zo <cy@example.invalid>',
  ];
  const out: string[] = [];
  const data = (s: string) => `data ${Buffer.byteLength(s)}\n${s}\n`;
  for (let i = 1; i <= n; i++) {
    const who = `${people[i % 3]} ${1_600_000_000 + i * 600} +0000`;
    const msg = `${tree}: change ${i}\n\nSigned-off-by: ${people[i % 3]}\nReviewed-by: ${people[(i + 1) % 3]}\n`;
    out.push(`commit refs/heads/main\nmark :${i}\nauthor ${who}\ncommitter ${who}\n${data(msg)}`);
    if (i > 1) out.push(`from :${i - 1}\n`);
    out.push(`M 100644 inline f${i % 16}\n${data(`${i}\n`)}\n`);
  }
  const marks = join(path, '.git', 'marks');
  await execa('git', ['-C', path, 'fast-import', '--quiet', `--export-marks=${marks}`], {
    input: out.join(''),
  });
  const sha = new Map<number, string>();
  for (const line of readFileSync(marks, 'utf8').split('\n')) {
    const m = /^:(\d+) ([0-9a-f]{40})$/.exec(line);
    if (m) sha.set(Number(m[1]), m[2]!);
  }
  return Array.from({ length: n }, (_, i) => sha.get(i + 1)!);
}

// ------------------------------------------------------------------ the history

const BUILD_JOBS = ['build-amd64', 'build-i386', 'build-armhf', 'build-arm64', 'build-amd64-pvops'];
const BUILD_STEPS = [
  'hosts-allocate',
  'host-install(2)',
  'host-build-prep',
  'xen-build',
  'kernel-build',
  'xen-build-check',
  'dist-check',
  'tools-check',
  'docs-build',
  'stubdom-build',
  'ocaml-build',
  'python-build',
  'hvmloader-build',
  'firmware-build',
  'qemu-build',
  'seabios-build',
  'ovmf-build',
  'livepatch-build',
  'stash',
  'capture-logs(20)',
];
const TEST_STEPS = [
  'build-check(1)',
  'hosts-allocate',
  'host-install(3)',
  'xen-install',
  'xen-boot',
  'leak-check/basis(6)',
  'debian-install',
  'debian-fixup',
  'guest-start',
  'migrate-support-check',
  'guest-saverestore',
  'guest-localmigrate',
  'guest-saverestore.2',
  'guest-localmigrate.2',
  'guest-localmigrate/x10',
  'guest-stop',
  'guest-start.2',
  'guest-destroy',
  'leak-check/check',
  'capture-logs(20)',
];

interface JobDef {
  job: string;
  recipe: string;
  build: boolean;
  buildjob?: string;
  steps: { testid: string; testcase: string }[];
}

function jobDefs(): JobDef[] {
  const defs: JobDef[] = [];
  const scriptOf = (testid: string) => `ts-${testid.replace(/[/(.].*$/, '')}`;
  for (let j = 0; j < JOBS; j++) {
    const build = j < BUILD_JOBS.length;
    const names = build ? BUILD_STEPS : TEST_STEPS;
    const steps = Array.from({ length: STEPS }, (_, s) => {
      const testid = names[s] ?? `extra-step-${s}`;
      return { testid, testcase: scriptOf(testid) };
    });
    if (build) defs.push({ job: BUILD_JOBS[j]!, recipe: 'build', build, steps });
    else {
      const arch = j % 2 === 0 ? 'amd64' : 'i386';
      defs.push({
        job: `test-${arch}-${arch}-xl-${String(j).padStart(2, '0')}`,
        recipe: 'test-debian',
        build,
        buildjob: `build-${arch}`,
        steps,
      });
    }
  }
  return defs;
}

/** Which tuple a flight tested, relative to the two that matter. */
type Kind = 'new' | 'base' | 'other';

/**
 * The planted failures, as (job index, testid) → status by kind. Test job indices count from the
 * first test job. Everything else passes, except random flakes and broken hosts.
 */
function planted(
  def: JobDef,
  jobIndex: number,
  testid: string,
  kind: Kind,
  isNew: boolean,
): StepStatus | undefined {
  const t = jobIndex - BUILD_JOBS.length;
  if (def.build) {
    if (def.job === 'build-armhf' && testid === 'xen-build' && kind === 'new') return 'fail';
    return undefined;
  }
  if (t >= 0 && t < 6 && testid === 'guest-start') return kind === 'new' ? 'fail' : 'pass';
  if (t >= 6 && t < 9 && testid === 'guest-saverestore') return isNew ? 'fail' : 'pass';
  if (t >= 10 && t < 15 && testid === 'migrate-support-check') return 'fail';
  if (t >= 20 && t < 23 && testid === 'guest-stop') return kind === 'base' || isNew ? 'fail' : 'pass';
  if (t === 30 && testid === 'guest-destroy')
    return kind === 'base' ? 'broken' : kind === 'new' ? 'fail' : 'pass';
  if (t === 31 && testid === 'leak-check/check')
    return kind === 'base' ? 'blocked' : kind === 'new' ? 'fail' : 'pass';
  if (t === 35 && testid === 'guest-localmigrate/x10' && isNew) return 'fail';
  if (t === 40 && testid === 'capture-logs(20)' && isNew) return 'blocked';
  return undefined;
}

interface Plan {
  flights: number;
  newFlight: string;
  baseline: string;
  xen: string[];
  linux: string[];
  xenUrl: string;
  linuxUrl: string;
}

async function generate(): Promise<Plan> {
  const N = FLIGHTS;
  // Beside a kept database, since its runvars name them; fast-import makes the same hashes each time.
  const trees = process.env.BENCH_DB ? `${dbPath}.trees` : join(root, 'trees');
  const xenUrl = join(trees, 'xen');
  const linuxUrl = join(trees, 'linux');
  const xIndex = (n: number) => Math.floor(n / 3);
  const lIndex = (n: number) => Math.floor(n / 7);
  const [xen, linux] = await Promise.all([
    linearRepo(xenUrl, xIndex(N + 1) + 2, 'xen'),
    linearRepo(linuxUrl, lIndex(N + 1) + 2, 'linux'),
  ]);
  const branchOf = (n: number) => (n % 10 === 0 ? OTHER : BRANCH);
  const tupleOf = (n: number) =>
    branchOf(n) === BRANCH ? `${xIndex(n)}/${lIndex(n)}` : `${xIndex(n)}/${lIndex(n) + 1}`;
  // The new flight re-tests the newest tuple of the branch; the baseline is the newest flight of
  // the tuple before it.
  const newN = N + 1;
  let last = N;
  while (branchOf(last) !== BRANCH) last--;
  const newTuple = tupleOf(last);
  let b = last;
  while (b > 0 && (branchOf(b) !== BRANCH || tupleOf(b) === newTuple)) b--;
  const baseTuple = tupleOf(b);
  const plan: Plan = {
    flights: N + 1,
    newFlight: String(newN),
    baseline: String(b),
    xen,
    linux,
    xenUrl,
    linuxUrl,
  };
  const marker = `${N}/${JOBS}/${STEPS}/${xen.at(-1)}/${linux.at(-1)}`;
  if (process.env.BENCH_DB && existsSync(dbPath)) {
    const db = new Database(dbPath, { readonly: true });
    const have = db
      .prepare("SELECT val FROM runvars WHERE flight = '0' AND job = 'bench' AND name = 'marker'")
      .pluck()
      .get();
    db.close();
    if (have === marker) {
      console.log(`reusing ${dbPath}`);
      writeNewFlightLogs(plan);
      return plan;
    }
    rmSync(dbPath, { force: true });
  }

  (await openSqliteStore(dbPath)).close();
  const db = new Database(dbPath);
  // The store made the file in WAL mode; leave it first, or every row goes through the WAL.
  db.pragma('journal_mode = DELETE');
  db.pragma('journal_mode = OFF');
  db.pragma('synchronous = OFF');
  db.pragma('cache_size = -262144');
  db.exec('DROP INDEX steps_job_testid');
  const insFlight = db.prepare(
    'INSERT INTO flights (flight, seq, branch, intended, blessing, created, started) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  const insJob = db.prepare('INSERT INTO jobs (flight, job, recipe, status) VALUES (?, ?, ?, ?)');
  const insRunvar = db.prepare('INSERT INTO runvars (flight, job, name, val, synth) VALUES (?, ?, ?, ?, ?)');
  const insStep = db.prepare(
    'INSERT INTO steps (flight, job, stepno, testcase, testid, status, started, finished, log_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
  );
  const insHarness = db.prepare(
    'INSERT INTO flights_harness_touched (flight, harness, recorded) VALUES (?, ?, ?)',
  );
  const defs = jobDefs();
  const rnd = prng(20261122);
  const t0 = 1_600_000_000_000;
  db.transaction(() => {
    // A marker row (in its own flight) that says which parameters made this file.
    insFlight.run('0', 0, 'bench-marker', 'none', 'none', t0, t0);
    insJob.run('0', 'bench', 'none', 'pass');
    insRunvar.run('0', 'bench', 'marker', marker, 0);
    for (let n = 1; n <= newN; n++) {
      const flight = String(n);
      const isNew = n === newN;
      const branch = isNew ? BRANCH : branchOf(n);
      const tuple = isNew ? newTuple : tupleOf(n);
      const kind: Kind = tuple === newTuple ? 'new' : tuple === baseTuple ? 'base' : 'other';
      const [xi, li] = tuple.split('/').map(Number) as [number, number];
      const xrev = xen[xi]!;
      const lrev = linux[li]!;
      const started = t0 + n * 3_600_000;
      insFlight.run(flight, n, branch, 'real', 'real', started - 60_000, started);
      insHarness.run(flight, `harness-${Math.floor(n / 50)}`, started);
      defs.forEach((def, ji) => {
        let status: StepStatus = 'pass';
        const host = `host-${(n + ji) % 37}`;
        const vars: [string, string, number][] = [['host', host, 1]];
        if (def.build) {
          vars.push(
            ['tree_xen', xenUrl, 0],
            ['revision_xen', xrev, 0],
            ['tree_linux', linuxUrl, 0],
            ['revision_linux', lrev, 0],
            ['built_revision_xen', xrev, 1],
            ['built_revision_linux', lrev, 1],
            ['path_dist', 'build/dist.tar.gz', 1],
          );
        } else {
          vars.push(
            ['buildjob', def.buildjob!, 0],
            ['arch', def.job.split('-')[1]!, 0],
            ['toolstack', 'xl', 0],
            ['all_hostflags', 'arch-amd64,purpose-test', 0],
            ['revision_xen', xrev, 0],
          );
        }
        let blockedFrom = Number.POSITIVE_INFINITY;
        const rows: [number, string, string, StepStatus][] = [];
        def.steps.forEach((s, si) => {
          let st: StepStatus = planted(def, ji, s.testid, kind, isNew) ?? 'pass';
          if (!isNew && st === 'pass') {
            const r = rnd();
            if (s.testid === 'guest-localmigrate/x10' && (ji - BUILD_JOBS.length) % 5 === 0 && r < 0.03)
              st = 'fail';
            else if (s.testid.startsWith('host-install') && r < 0.002) {
              st = 'broken';
              blockedFrom = si + 1;
            }
          }
          if (si >= blockedFrom && !s.testid.startsWith('capture-logs')) st = 'blocked';
          rows.push([si + 1, s.testcase, s.testid, st]);
        });
        for (const [, , , st] of rows) {
          if (st === 'broken') status = 'broken';
          else if (st === 'fail' && status !== 'broken') status = 'fail';
        }
        insJob.run(flight, def.job, def.recipe, status);
        for (const [name, val, synth] of vars) insRunvar.run(flight, def.job, name, val, synth);
        let t = started;
        for (const [stepno, testcase, testid, st] of rows) {
          const logPath = `${flight}/${def.job}/${stepno}.${testcase}.log`;
          insStep.run(flight, def.job, stepno, testcase, testid, st, t, t + 30_000, logPath);
          t += 31_000;
        }
      });
    }
    db.prepare("UPDATE counters SET val = ? WHERE name IN ('flight_number', 'flight_seq')").run(newN);
  })();
  db.exec('CREATE INDEX steps_job_testid ON steps (job, testid)');
  db.close();
  writeNewFlightLogs(plan);
  return plan;
}

/** Step logs of the new flight, so that JUnit reads real tails. */
function writeNewFlightLogs(plan: Plan): void {
  for (const def of jobDefs()) {
    const dir = join(logsDir, plan.newFlight, def.job);
    mkdirSync(dir, { recursive: true });
    def.steps.forEach((s, si) => {
      const lines = Array.from(
        { length: 60 },
        (_, i) => `2026-11-22 00:00:${String(i).padStart(2, '0')} ${s.testid}: line ${i}`,
      );
      writeFileSync(join(dir, `${si + 1}.${s.testcase}.log`), `${lines.join('\n')}\nexit status 0\n`);
    });
  }
}

// ------------------------------------------------------------------ the original's way

const BLOCKING = ['regression', 'failed in', 'blocked in', 'baseline untested'];

interface OrigVerdict {
  verdict: string;
  ref?: string;
}

/** The queries the original's way makes, answered by sqlite or by PostgreSQL. */
interface OrigDb {
  /** First row, or its first column when `pluck`. */
  get(name: StatementName, ...args: unknown[]): Promise<unknown>;
  all(name: StatementName, ...args: unknown[]): Promise<unknown[]>;
  close(): Promise<void>;
}

/** The original's statements; `?` placeholders (numbered for PostgreSQL). */
const STATEMENTS = {
  flight: 'SELECT * FROM flights WHERE flight = ?',
  failing:
    "SELECT s.job, s.stepno, s.testid, s.status, j.recipe FROM steps s JOIN jobs j USING (flight, job) WHERE s.flight = ? AND s.status <> 'pass' ORDER BY s.job, s.stepno",
  candidates:
    "SELECT f.flight FROM flights f JOIN jobs j ON j.flight = f.flight AND j.job = ? WHERE f.branch = ? AND f.seq < ? AND f.blessing = 'real' ORDER BY f.seq DESC LIMIT ?",
  runvar: 'SELECT val FROM runvars WHERE flight = ? AND job = ? AND name = ?',
  treeNames:
    "SELECT name FROM runvars WHERE flight = ? AND job = ? AND name LIKE 'built\\_revision\\_%' ESCAPE '\\'",
  // sqlite: `+testid` keeps it on the primary key (flight, job): left to itself, without
  // statistics, it takes the (job, testid) index and walks that job's rows of every flight (about
  // 40 ms a lookup at 10,000 flights, against 0.01-0.04 ms) — the original's plan at its best, not
  // its worst. PostgreSQL (analysed) picks the primary key by itself.
  step: 'SELECT status FROM steps WHERE flight = ? AND job = ? AND +testid = ?',
  jobStatus: 'SELECT status FROM jobs WHERE flight = ? AND job = ?',
} as const;
type StatementName = keyof typeof STATEMENTS;
const PLUCKED: ReadonlySet<StatementName> = new Set(['runvar', 'treeNames', 'step', 'jobStatus']);

function sqliteOrig(path: string): OrigDb {
  const db = new Database(path, { readonly: true });
  const st = new Map<StatementName, Database.Statement>();
  for (const [name, sql] of Object.entries(STATEMENTS) as [StatementName, string][]) {
    const p = db.prepare(sql);
    st.set(name, PLUCKED.has(name) ? p.pluck() : p);
  }
  return {
    get: async (name, ...args) => st.get(name)!.get(...args),
    all: async (name, ...args) => st.get(name)!.all(...args),
    close: async () => {
      db.close();
    },
  };
}

/** One connection, named prepared statements: a round trip per query, as the original made. */
async function postgresOrig(connection: string): Promise<OrigDb> {
  const client = new pg.Client(connectionConfig(connection));
  await client.connect();
  const text = (name: StatementName) => {
    let n = 0;
    return STATEMENTS[name].replace('+testid', 'testid').replace(/\?/g, () => `$${++n}`);
  };
  const run = async (name: StatementName, args: unknown[]) => {
    const r = await client.query({ name, text: text(name), values: args });
    return PLUCKED.has(name) ? r.rows.map((row: Record<string, unknown>) => Object.values(row)[0]) : r.rows;
  };
  return {
    get: async (name, ...args) => (await run(name, args))[0],
    all: (name, ...args) => run(name, args),
    close: () => client.end(),
  };
}

/**
 * Judges every failure of `flight` the way the original did: a query for the candidate flights per
 * failure, then queries per candidate. The verdict rules are the same as judge.ts's; only the way of
 * finding the answers differs.
 */
async function originalWay(
  db: OrigDb,
  flight: string,
  baseline: string,
): Promise<{ verdicts: Map<string, OrigVerdict>; queries: number }> {
  let queries = 0;
  /** Every execution of a statement counts as one query. */
  const q = {
    get: (name: StatementName, ...a: unknown[]) => {
      queries++;
      return db.get(name, ...a);
    },
    all: (name: StatementName, ...a: unknown[]) => {
      queries++;
      return db.all(name, ...a);
    },
  };
  const f = (await q.get('flight', flight)) as { branch: string; seq: number | string };
  /** The revisions a job tested in a flight: its build job's built revisions, tree by tree. */
  const revisionsOf = async (fl: string, job: string, isBuild: boolean): Promise<Map<string, string>> => {
    let bf = fl;
    let bj = job;
    if (!isBuild) {
      const ref = (await q.get('runvar', fl, job, 'buildjob')) as string | undefined;
      if (ref === undefined) return new Map();
      const dot = ref.indexOf('.');
      if (dot > 0) {
        bf = ref.slice(0, dot);
        bj = ref.slice(dot + 1);
      } else bj = ref;
    }
    const revs = new Map<string, string>();
    for (const name of (await q.all('treeNames', bf, bj)) as string[]) {
      revs.set(name.slice('built_revision_'.length), (await q.get('runvar', bf, bj, name)) as string);
    }
    return revs;
  };
  const tuple = (m: Map<string, string>) =>
    [...m]
      .sort()
      .map(([t, r]) => `${t}=${r}`)
      .join(' ');
  const sameTuple = (a: Map<string, string>, b: Map<string, string>) => a.size > 0 && tuple(a) === tuple(b);

  const out = new Map<string, OrigVerdict>();
  const failures = (await q.all('failing', flight)) as {
    job: string;
    testid: string;
    status: string;
    recipe: string;
  }[];
  for (const fail of failures) {
    const key = `${fail.job} ${fail.testid}`;
    if (fail.status === 'blocked') {
      out.set(key, { verdict: 'blocked' });
      continue;
    }
    const isBuild = fail.recipe === 'build' || fail.job.startsWith('build-');
    const baseRevs = await revisionsOf(baseline, fail.job, isBuild);
    const myRevs = await revisionsOf(flight, fail.job, isBuild);
    let ever = false;
    let buildPass: string | undefined;
    let decision: OrigVerdict | undefined;
    let newestBase: string | undefined;
    let heisen: string | undefined;
    const candidates = (await q.all('candidates', fail.job, f.branch, f.seq, ORIGINAL_CANDIDATES)) as {
      flight: string;
    }[];
    for (const { flight: c } of candidates) {
      const revs = await revisionsOf(c, fail.job, isBuild);
      const st = (await q.get('step', c, fail.job, fail.testid)) as string | undefined;
      const passed = st === 'pass' || (isBuild && (await q.get('jobStatus', c, fail.job)) === 'pass');
      if (passed) ever = true;
      if (sameTuple(revs, baseRevs)) {
        newestBase ??= c;
        if (isBuild && passed) buildPass ??= c;
        if (decision === undefined && st !== undefined && st !== 'blocked') {
          decision =
            st === 'pass'
              ? { verdict: 'regression', ref: c }
              : st === fail.status
                ? { verdict: 'like', ref: c }
                : { verdict: 'failed in', ref: c };
        }
      }
      if (heisen === undefined && passed && sameTuple(revs, myRevs)) heisen = c;
      // Stop once the verdict is sure: it passed somewhere, the baseline decided, and a blocking
      // decision has been checked against the same revisions. Whatever stays open is searched to
      // the end of the candidates (never pass, blocked in, a regression that is no heisenbug).
      const decided = isBuild && buildPass !== undefined ? 'regression' : decision?.verdict;
      if (ever && decided !== undefined && (!BLOCKING.includes(decided) || heisen !== undefined)) break;
    }
    let v: OrigVerdict;
    if (isBuild && buildPass !== undefined) v = { verdict: 'regression', ref: buildPass };
    else if (!ever) v = { verdict: 'never pass' };
    else if (newestBase === undefined) v = { verdict: 'baseline untested' };
    else v = decision ?? { verdict: 'blocked in', ref: newestBase };
    if (BLOCKING.includes(v.verdict) && heisen !== undefined) v = { verdict: 'pass in', ref: heisen };
    out.set(key, v);
  }
  return { verdicts: out, queries };
}

// ------------------------------------------------------------------ PostgreSQL

/** The tables the history lives in, with the columns copied (in the order both schemas name them). */
const COPIED: [string, string[]][] = [
  ['flights', ['flight', 'seq', 'branch', 'intended', 'blessing', 'created', 'started']],
  ['flights_harness_touched', ['flight', 'harness', 'recorded']],
  ['jobs', ['flight', 'job', 'recipe', 'status']],
  ['runvars', ['flight', 'job', 'name', 'val', 'synth']],
  ['steps', ['flight', 'job', 'stepno', 'testcase', 'testid', 'status', 'started', 'finished', 'log_path']],
];

/** A value in COPY's text format. */
function copyField(v: unknown): string {
  if (v === null || v === undefined) return '\\N';
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  return String(v).replace(/[\\\t\n\r]/g, (c) =>
    c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r',
  );
}

/**
 * Copies the generated sqlite history into a PostgreSQL database made by the real store (its
 * migrations): each table streamed through `psql`'s COPY FROM STDIN (node-pg has no COPY of its
 * own), foreign-key triggers off for the load when we are superuser (`session_replication_role`),
 * the (job, testid) index built afterwards, then ANALYZE, as a lab's database would have had.
 */
async function copyToPostgres(sqlitePath: string, connection: string): Promise<void> {
  (await openPostgresStore(connection)).close();
  const admin = new pg.Client(connectionConfig(connection));
  await admin.connect();
  try {
    const su = await admin.query<{ s: boolean }>(
      'SELECT rolsuper AS s FROM pg_roles WHERE rolname = current_user',
    );
    await admin.query('DROP INDEX steps_job_testid');
    const db = new Database(sqlitePath, { readonly: true });
    try {
      for (const [table, cols] of COPIED) {
        const t0 = performance.now();
        const args = ['-X', '-q', '-v', 'ON_ERROR_STOP=1'];
        if (su.rows[0]?.s) args.push('-c', 'SET session_replication_role = replica');
        args.push('-c', `COPY ${table} (${cols.join(', ')}) FROM STDIN`, connection);
        const psql = execa('psql', args, { stdin: 'pipe', stdout: 'ignore', stderr: 'pipe' });
        const rows = db
          .prepare(`SELECT ${cols.join(', ')} FROM ${table}`)
          .raw()
          .iterate() as Iterable<unknown[]>;
        const stdin = psql.stdin!;
        let chunk: string[] = [];
        let n = 0;
        const flush = async () => {
          if (!stdin.write(chunk.join(''))) await new Promise((r) => stdin.once('drain', r));
          chunk = [];
        };
        for (const row of rows) {
          chunk.push(`${row.map(copyField).join('\t')}\n`);
          n++;
          if (chunk.length >= 20_000) await flush();
        }
        await flush();
        stdin.end();
        await psql;
        console.log(
          `  postgres: ${table} ${n} rows copied in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
        );
      }
      const newest = db.prepare("SELECT val FROM counters WHERE name = 'flight_number'").pluck().get();
      await admin.query("UPDATE counters SET val = $1 WHERE name IN ('flight_number', 'flight_seq')", [
        newest,
      ]);
    } finally {
      db.close();
    }
    const t0 = performance.now();
    await admin.query('CREATE INDEX steps_job_testid ON steps (job, testid)');
    await admin.query('ANALYZE');
    console.log(`  postgres: index and ANALYZE in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  } finally {
    await admin.end();
  }
}

// ------------------------------------------------------------------ the run

interface Measured {
  ours: number;
  orig: number;
}

/** RUNS alternating runs of ours and the original's way on one database; the medians. */
async function measure(
  label: string,
  plan: Plan,
  config: Config,
  openStore: () => Promise<Store>,
  openOrig: () => Promise<OrigDb>,
): Promise<Measured> {
  const ours: number[] = [];
  const orig: number[] = [];
  let failures = 0;
  for (let run = 1; run <= RUNS; run++) {
    const a0 = performance.now();
    const store = await openStore();
    const data = await loadReport(store, config, plan.newFlight, { baseline: plan.baseline });
    const a1 = performance.now();
    const mail = renderEmail(data);
    await buildMessage(mail, { from: 'osstest@localhost', to: ['list@example.invalid'] }, data);
    const junit = await renderJunit(data, { logsDir });
    const mro = formatMro(data.judgement);
    const json = JSON.stringify({ format: JSON_FORMAT, ...data.judgement });
    const a2 = performance.now();
    await store.close();
    ours.push((a2 - a0) / 1000);

    const db = await openOrig();
    const b0 = performance.now();
    const { verdicts: theirs, queries } = await originalWay(db, plan.newFlight, plan.baseline);
    const b1 = performance.now();
    await db.close();
    orig.push((b1 - b0) / 1000);

    // Same verdicts, or the comparison means nothing.
    const mine = new Map(
      data.judgement.failures.map((f) => [`${f.job} ${f.testid}`, { verdict: f.verdict, ref: f.refFlight }]),
    );
    const diff: string[] = [];
    for (const k of new Set([...mine.keys(), ...theirs.keys()])) {
      const x = mine.get(k);
      const y = theirs.get(k);
      if (x?.verdict !== y?.verdict || x?.ref !== y?.ref) {
        diff.push(`${k}: ours ${x?.verdict} ${x?.ref ?? ''} / original ${y?.verdict} ${y?.ref ?? ''}`);
      }
    }
    if (diff.length > 0) throw new Error(`${label}: verdicts differ:\n  ${diff.join('\n  ')}`);
    failures = mine.size;
    const verdicts = new Map<string, number>();
    for (const f of data.judgement.failures) verdicts.set(f.verdict, (verdicts.get(f.verdict) ?? 0) + 1);
    console.log(
      `${label} run ${run}: ours ${(a2 - a0).toFixed(0)} ms (load+judge ${(a1 - a0).toFixed(0)}, render ${(a2 - a1).toFixed(0)}; ` +
        `email ${mail.text.length} B, junit ${junit.length} B, mro ${mro.length} B, json ${json.length} B), ` +
        `original's way ${(b1 - b0).toFixed(0)} ms (${queries} queries); ${failures} failures: ${[...verdicts].map(([v, n]) => `${v} ${n}`).join(', ')}`,
    );
  }
  const m = { ours: median(ours), orig: median(orig) };
  console.log(`${label}: verdicts identical for all ${failures} failures in every run`);
  console.log(`${label} median: ours ${m.ours.toFixed(3)} s, original's way ${m.orig.toFixed(3)} s`);
  return m;
}

const DBS = (process.env.DBS ?? 'sqlite,postgres').split(',').filter(Boolean);
for (const d of DBS) {
  if (d !== 'sqlite' && d !== 'postgres') {
    console.error(`bench/report: DBS names sqlite and/or postgres, not ${JSON.stringify(d)}`);
    process.exit(2);
  }
}
let server: TestPostgres | undefined;
try {
  if (DBS.includes('postgres') && postgresBinDir() === undefined && !process.env.OSSTEST_TEST_PG) {
    throw new Error(
      'no PostgreSQL server binaries (install the Debian package postgresql, or set OSSTEST_TEST_PG, or DBS=sqlite)',
    );
  }
  const g0 = performance.now();
  const plan = await generate();
  const g1 = performance.now();
  const size = statSync(dbPath).size;
  console.log(
    `history: ${FLIGHTS} flights × ${JOBS} jobs × ${STEPS} steps (+ the new flight ${plan.newFlight}), ` +
      `sqlite ${(size / 1e9).toFixed(2)} GB, generated in ${((g1 - g0) / 1000).toFixed(1)} s`,
  );
  const config = Config.fromText(
    [`Logs ${logsDir}`, `Repos ${join(root, 'repos')}`, `AllowDir ${root}`, ''].join('\n'),
    'bench-config',
    root,
  );
  const results = new Map<string, Measured>();
  if (DBS.includes('sqlite')) {
    results.set(
      'sqlite',
      await measure(
        'sqlite',
        plan,
        config,
        () => openSqliteStore(dbPath),
        async () => sqliteOrig(dbPath),
      ),
    );
  }
  if (DBS.includes('postgres')) {
    const p0 = performance.now();
    server = await startTestPostgres();
    const conn = await server.createDatabase();
    console.log(`postgres: ${server.origin}`);
    await copyToPostgres(dbPath, conn);
    const size = (await server.admin('SELECT pg_database_size($1) AS s', [connParts(conn).database])).rows[0]
      ?.s;
    console.log(
      `postgres: history copied in ${((performance.now() - p0) / 1000).toFixed(1)} s, ${(Number(size) / 1e9).toFixed(2)} GB`,
    );
    results.set(
      'postgres',
      await measure(
        'postgres',
        plan,
        config,
        () => openPostgresStore(conn),
        () => postgresOrig(conn),
      ),
    );
  }
  for (const [db, m] of results) {
    console.log(`result: ${db}_seconds=${m.ours.toFixed(3)}`);
    console.log(`result: ${db}_ratio=${(m.ours / m.orig).toFixed(3)}`);
  }
  // The headline: the slower of ours over the databases measured, and the larger ratio.
  const all = [...results.values()];
  console.log(`result: seconds=${Math.max(...all.map((m) => m.ours)).toFixed(3)}`);
  console.log(`result: ratio=${Math.max(...all.map((m) => m.ours / m.orig)).toFixed(3)}`);
} finally {
  await server?.stop();
  rmSync(root, { recursive: true, force: true });
}
