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
 * Prints per-run times, the medians, and `result: seconds=<ours>` and `result: ratio=<ours/orig>`.
 * Environment: FLIGHTS, JOBS, STEPS, RUNS (default 5); BENCH_DB=path keeps (and reuses) the
 * generated database instead of a temporary one.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { prng } from '../src/bisect/simulate.js';
import { Config } from '../src/config/config.js';
import { openSqliteStore } from '../src/db/sqlite/store.js';
import type { StepStatus } from '../src/model/status.js';
import { buildMessage, renderEmail } from '../src/report/email.js';
import { renderJunit } from '../src/report/junit.js';
import { loadReport } from '../src/report/load.js';
import { formatMro, JSON_FORMAT } from '../src/report/mro.js';

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

/**
 * Judges every failure of `flight` the way the original did: a query for the candidate flights per
 * failure, then queries per candidate. The verdict rules are the same as judge.ts's; only the way of
 * finding the answers differs.
 */
function originalWay(
  db: Database.Database,
  flight: string,
  baseline: string,
): { verdicts: Map<string, OrigVerdict>; queries: number } {
  let queries = 0;
  /** Every execution of a statement counts as one query. */
  const counted = (st: Database.Statement) => ({
    get: (...a: unknown[]) => {
      queries++;
      return st.get(...a);
    },
    all: (...a: unknown[]) => {
      queries++;
      return st.all(...a);
    },
  });
  const statements = {
    flight: db.prepare('SELECT * FROM flights WHERE flight = ?'),
    failing: db.prepare(
      "SELECT s.job, s.stepno, s.testid, s.status, j.recipe FROM steps s JOIN jobs j USING (flight, job) WHERE s.flight = ? AND s.status <> 'pass' ORDER BY s.job, s.stepno",
    ),
    candidates: db.prepare(
      "SELECT f.flight FROM flights f JOIN jobs j ON j.flight = f.flight AND j.job = ? WHERE f.branch = ? AND f.seq < ? AND f.blessing = 'real' ORDER BY f.seq DESC LIMIT ?",
    ),
    runvar: db.prepare('SELECT val FROM runvars WHERE flight = ? AND job = ? AND name = ?').pluck(),
    treeNames: db
      .prepare(
        "SELECT name FROM runvars WHERE flight = ? AND job = ? AND name LIKE 'built\\_revision\\_%' ESCAPE '\\'",
      )
      .pluck(),
    // `+testid` keeps sqlite on the primary key (flight, job): left to itself, without statistics,
    // it takes the (job, testid) index and walks that job's rows of every flight (about 40 ms a
    // lookup at 10,000 flights, against 0.01-0.04 ms) — the original's plan at its best, not its worst.
    step: db.prepare('SELECT status FROM steps WHERE flight = ? AND job = ? AND +testid = ?').pluck(),
    jobStatus: db.prepare('SELECT status FROM jobs WHERE flight = ? AND job = ?').pluck(),
  };
  const q = Object.fromEntries(Object.entries(statements).map(([k, st]) => [k, counted(st)])) as Record<
    keyof typeof statements,
    ReturnType<typeof counted>
  >;
  const f = q.flight.get(flight) as { branch: string; seq: number };
  /** The revisions a job tested in a flight: its build job's built revisions, tree by tree. */
  const revisionsOf = (fl: string, job: string, isBuild: boolean): Map<string, string> => {
    let bf = fl;
    let bj = job;
    if (!isBuild) {
      const ref = q.runvar.get(fl, job, 'buildjob') as string | undefined;
      if (ref === undefined) return new Map();
      const dot = ref.indexOf('.');
      if (dot > 0) {
        bf = ref.slice(0, dot);
        bj = ref.slice(dot + 1);
      } else bj = ref;
    }
    const revs = new Map<string, string>();
    for (const name of q.treeNames.all(bf, bj) as string[]) {
      revs.set(name.slice('built_revision_'.length), q.runvar.get(bf, bj, name) as string);
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
  const failures = q.failing.all(flight) as {
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
    const baseRevs = revisionsOf(baseline, fail.job, isBuild);
    const myRevs = revisionsOf(flight, fail.job, isBuild);
    let ever = false;
    let buildPass: string | undefined;
    let decision: OrigVerdict | undefined;
    let newestBase: string | undefined;
    let heisen: string | undefined;
    const candidates = q.candidates.all(fail.job, f.branch, f.seq, ORIGINAL_CANDIDATES) as {
      flight: string;
    }[];
    for (const { flight: c } of candidates) {
      const revs = revisionsOf(c, fail.job, isBuild);
      const st = q.step.get(c, fail.job, fail.testid) as string | undefined;
      const passed = st === 'pass' || (isBuild && q.jobStatus.get(c, fail.job) === 'pass');
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

// ------------------------------------------------------------------ the run

try {
  const g0 = performance.now();
  const plan = await generate();
  const g1 = performance.now();
  const size = statSync(dbPath).size;
  console.log(
    `history: ${FLIGHTS} flights × ${JOBS} jobs × ${STEPS} steps (+ the new flight ${plan.newFlight}), ` +
      `${(size / 1e9).toFixed(2)} GB, generated in ${((g1 - g0) / 1000).toFixed(1)} s`,
  );
  const config = Config.fromText(
    [`Logs ${logsDir}`, `Repos ${join(root, 'repos')}`, `AllowDir ${root}`, ''].join('\n'),
    'bench-config',
    root,
  );

  const ours: number[] = [];
  const orig: number[] = [];
  let failures = 0;
  for (let run = 1; run <= RUNS; run++) {
    const a0 = performance.now();
    const store = await openSqliteStore(dbPath);
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

    const db = new Database(dbPath, { readonly: true });
    const b0 = performance.now();
    const { verdicts: theirs, queries } = originalWay(db, plan.newFlight, plan.baseline);
    const b1 = performance.now();
    db.close();
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
    if (diff.length > 0) throw new Error(`verdicts differ:\n  ${diff.join('\n  ')}`);
    failures = mine.size;
    const verdicts = new Map<string, number>();
    for (const f of data.judgement.failures) verdicts.set(f.verdict, (verdicts.get(f.verdict) ?? 0) + 1);
    console.log(
      `run ${run}: ours ${(a2 - a0).toFixed(0)} ms (load+judge ${(a1 - a0).toFixed(0)}, render ${(a2 - a1).toFixed(0)}; ` +
        `email ${mail.text.length} B, junit ${junit.length} B, mro ${mro.length} B, json ${json.length} B), ` +
        `original's way ${(b1 - b0).toFixed(0)} ms (${queries} queries); ${failures} failures: ${[...verdicts].map(([v, n]) => `${v} ${n}`).join(', ')}`,
    );
  }
  console.log(`verdicts: identical for all ${failures} failures in every run`);
  console.log(`median: ours ${median(ours).toFixed(3)} s, original's way ${median(orig).toFixed(3)} s`);
  console.log(`result: seconds=${median(ours).toFixed(3)}`);
  console.log(`result: ratio=${(median(ours) / median(orig)).toFixed(3)}`);
} finally {
  rmSync(root, { recursive: true, force: true });
}
