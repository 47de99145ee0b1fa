/**
 * bench/scheduler's store phase: the same lab and jobs as the simulation, but as rows of a real
 * store, scheduled by 4 worker processes (bench/scheduler-worker.ts) each calling the real
 * allocator (`claimNext`: snapshot from the store, planner, all-or-none write in one transaction,
 * re-plan on a lost race). The flights are queued on the bench's clock (an hour of the lab is
 * `msPerHour` real milliseconds) as the simulation releases them; jobs "run" for their known
 * durations on that clock. Measured: the wall time of every allocation decision (one claimNext
 * call) in the workers, on PostgreSQL (the acceptance figure) and, as the baseline in the same run,
 * the same code on sqlite (one file, no server, no network), alternating.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';
import { openStore, type StoreSpec } from '../src/db/open.js';
import { connectionConfig } from '../src/db/postgres/connection.js';
import type { Store } from '../src/db/store.js';
import type { SchedHost } from '../src/scheduler/types.js';
import type { TestPostgres } from '../test/helpers/postgres.js';
import type { DecisionCounts, WorkerArgs, WorkerReport } from './scheduler-worker.js';

export interface BenchJobDef {
  key: string;
  flight: string;
  job: string;
  intended: string;
  runvars: Record<string, string>;
  /** Same-flight jobs (names) it waits for. */
  deps: string[];
  release: number;
  actualMs: number;
  installMs: number;
}

/** One run of the store phase: the workers' counts summed (see DecisionCounts), and the run's own. */
export interface StoreRun extends DecisionCounts {
  kind: 'postgres' | 'sqlite';
  /** Jobs that passed, of all. */
  passed: number;
  total: number;
  /** From the first flight queued to the last job's end, in lab hours (undefined when cut short). */
  makespanH?: number;
  wallS: number;
  populateS: number;
  /** Store methods by time spent in them during decisions (all workers), ms. */
  inStore: Record<string, number>;
}

const HOUR = 3_600_000;

/** Creates the hosts and the (unqueued) flights; returns the store flight of each bench flight. */
async function populate(store: Store, hosts: readonly SchedHost[], defs: readonly BenchJobDef[]) {
  for (const h of hosts) {
    await store.upsertHost({ name: h.name });
    await store.setHostFlags(h.name, h.flags);
    for (const [k, v] of Object.entries(h.props ?? {})) await store.setHostProp(h.name, k, v);
    if (h.health !== 'good') await store.lab.setHostHealth(h.name, h.health, 'bench: out of service');
  }
  const flights = new Map<string, { flight: string; release: number }>();
  for (const d of defs) {
    let f = flights.get(d.flight);
    if (!f) {
      const made = await store.createFlight({ branch: 'bench', intended: d.intended });
      f = { flight: made.flight, release: d.release };
      flights.set(d.flight, f);
    }
    const rv: Record<string, string> = {
      ...d.runvars,
      bench_ms: String(d.actualMs),
      bench_install_ms: String(d.installMs),
    };
    // The allocator waits for a job's `*buildjob` runvars.
    d.deps.forEach((dep, i) => {
      rv[i === 0 ? 'buildjob' : `dep${i}_buildjob`] = dep;
    });
    await store.createJob(f.flight, d.job, d.job.startsWith('build-') ? 'build' : 'test', rv);
  }
  return [...flights.values()].sort((a, b) => a.release - b.release);
}

/**
 * Statistics for the freshly filled tables, as a lab's database has them (PostgreSQL's autovacuum
 * gathers them within a minute or so of a change; sqlite's are kept by ANALYZE). Without them,
 * PostgreSQL planned the queue's reads for empty tables and every decision cost 30 ms of server CPU
 * instead of 9 (bench/scheduler, 2026-12-03).
 */
async function analyze(spec: StoreSpec): Promise<void> {
  if (spec.kind === 'postgres') {
    const c = new pg.Client(connectionConfig(spec.connection));
    await c.connect();
    try {
      await c.query('ANALYZE');
    } finally {
      await c.end();
    }
  } else {
    const db = new Database(spec.path);
    try {
      db.exec('ANALYZE');
    } finally {
      db.close();
    }
  }
}

export interface StorePhaseOptions {
  workers: number;
  maxJobsPerWorker: number;
  msPerHour: number;
  pollMs: number;
  capMs: number;
}

async function oneRun(
  kind: 'postgres' | 'sqlite',
  spec: StoreSpec,
  hosts: readonly SchedHost[],
  defs: readonly BenchJobDef[],
  o: StorePhaseOptions,
): Promise<StoreRun> {
  const store = await openStore(spec);
  const children: ReturnType<typeof fork>[] = [];
  try {
    const p0 = performance.now();
    const flights = await populate(store, hosts, defs);
    await analyze(spec);
    const populateS = (performance.now() - p0) / 1000;
    const script = join(dirname(fileURLToPath(import.meta.url)), 'scheduler-worker.js');
    const reports: Promise<WorkerReport>[] = [];
    const ready: Promise<void>[] = [];
    for (let i = 0; i < o.workers; i++) {
      const args: WorkerArgs = {
        spec,
        id: `bench-w${i}`,
        maxJobs: o.maxJobsPerWorker,
        msPerHour: o.msPerHour,
        pollMs: o.pollMs,
        // The populate step is done; the run itself is capped, plus a margin for the stop.
        stopAt: Date.now() + o.capMs + 60_000,
      };
      const child = fork(script, [JSON.stringify(args)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      children.push(child);
      ready.push(
        new Promise((res, rej) => {
          child.once('message', () => res());
          child.once('exit', (c) => rej(new Error(`worker ${i} exited (${c}) before it was ready`)));
        }),
      );
      const report = new Promise<WorkerReport>((res, rej) => {
        child.on('message', (m) => {
          if (typeof m === 'object' && m !== null) res(m as WorkerReport);
        });
        child.once('exit', (c) => rej(new Error(`worker ${i} exited (${c}) without a report`)));
      });
      report.catch(() => undefined); // awaited below; this only keeps an early death from being unhandled
      reports.push(report);
    }
    await Promise.all(ready);
    const t0 = Date.now();
    const simNow = () => ((Date.now() - t0) / o.msPerHour) * HOUR;
    let next = 0;
    let completed = 0;
    let makespanH: number | undefined;
    while (Date.now() - t0 < o.capMs) {
      while (next < flights.length && flights[next]!.release <= simNow()) {
        await store.lab.queueFlight(flights[next]!.flight, { by: 'bench' });
        next += 1;
      }
      // Counted, not read back with labQueue: reading the whole queue ten times a second took CPU
      // from the workers being measured.
      completed += (await store.lab.completeFlights()).length;
      if (completed === flights.length) {
        makespanH = simNow() / HOUR;
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const wallS = (Date.now() - t0) / 1000;
    for (const c of children) c.send('stop');
    const got = await Promise.race([
      Promise.all(reports),
      new Promise<never>((_r, rej) =>
        setTimeout(
          () => rej(new Error(`${kind}: workers did not report within 90 s of stop`)),
          90_000,
        ).unref(),
      ),
    ]);
    const errors = got.flatMap((r) => r.errors.map((e) => `${r.id}: ${e}`));
    if (errors.length > 0) throw new Error(`${kind}: worker errors:\n${errors.slice(0, 10).join('\n')}`);
    let passed = 0;
    for (const f of flights)
      passed += (await store.listJobs(f.flight)).filter((j) => j.status === 'pass').length;
    const run: StoreRun = {
      kind,
      calls: got.flatMap((r) => r.calls),
      claims: got.flatMap((r) => r.claims),
      replans: got.reduce((n, r) => n + r.replans, 0),
      skipped: got.reduce((n, r) => n + r.skipped, 0),
      claimed: got.reduce((n, r) => n + r.claimed, 0),
      slow: got.flatMap((r) => r.slow),
      lostWhy: {},
      phases: {},
      byReplans: [0, 1, 2, 3].map((k) => got.flatMap((r) => r.byReplans[k] ?? [])),
      settled: got.reduce((n, r) => n + r.settled, 0),
      ran: got.reduce((n, r) => n + r.ran, 0),
      passed,
      total: defs.length,
      wallS,
      populateS,
      inStore: {},
    };
    for (const r of got) {
      for (const [k, v] of Object.entries(r.inStore)) run.inStore[k] = (run.inStore[k] ?? 0) + v;
      for (const [k, v] of Object.entries(r.lostWhy)) run.lostWhy[k] = (run.lostWhy[k] ?? 0) + v;
      for (const [k, v] of Object.entries(r.phases)) run.phases[k] = (run.phases[k] ?? 0) + v;
    }
    if (makespanH !== undefined) run.makespanH = makespanH;
    return run;
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await store.close();
  }
}

/**
 * Runs the store phase `runs` times on each store, PostgreSQL first, alternating. Starts its own
 * throw-away PostgreSQL (or uses OSSTEST_TEST_PG) and removes everything it made.
 */
export async function storePhase(
  hosts: readonly SchedHost[],
  defs: readonly BenchJobDef[],
  runs: number,
  o: StorePhaseOptions,
  report: (r: StoreRun) => void,
): Promise<StoreRun[]> {
  // Loaded here so the pure phase runs on machines without the test helpers' needs.
  const { startTestPostgres } = await import('../test/helpers/postgres.js');
  const server: TestPostgres = await startTestPostgres();
  const dir = mkdtempSync(join(tmpdir(), 'osstest-bench-sched-'));
  const out: StoreRun[] = [];
  try {
    for (let k = 0; k < runs; k++) {
      const pg = await oneRun(
        'postgres',
        { kind: 'postgres', connection: await server.createDatabase() },
        hosts,
        defs,
        o,
      );
      report(pg);
      out.push(pg);
      const sq = await oneRun('sqlite', { kind: 'sqlite', path: join(dir, `run${k}.db`) }, hosts, defs, o);
      report(sq);
      out.push(sq);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await server.stop();
  }
  return out;
}
