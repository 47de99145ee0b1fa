/**
 * One worker process of bench/scheduler's store phase (started by bench/scheduler-store.ts, never
 * by hand): registers as a lab worker and claims jobs with the real allocator (`claimNext`: the
 * snapshot read from the store, the planner, the all-or-none write, re-planning when it loses a
 * race), timing every call. A claimed job is "run" by sleeping its known duration on the bench's
 * clock (a ready shared build host skips the install part), with one step recorded so the
 * allocator's estimates learn from the history, then passed and closed as a worker closes a job.
 * Reports its timings to the parent over IPC when told to stop.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { Config } from '../src/config/config.js';
import { openStore, type StoreSpec } from '../src/db/open.js';
import type { Store } from '../src/db/store.js';
import { type Claimed, claimNext } from '../src/scheduler/allocator.js';
import { PlanCache } from '../src/scheduler/planner.js';
import { BUSY_RETRY_MS, WakeLedger } from '../src/scheduler/wake-ledger.js';

export interface WorkerArgs {
  spec: StoreSpec;
  id: string;
  maxJobs: number;
  /** Real milliseconds per hour of the simulated lab. */
  msPerHour: number;
  pollMs: number;
  /** Epoch ms: stop by then even if the parent's `stop` never arrives. */
  stopAt: number;
}

/**
 * Time spent in each store method while deciding (claimNext), ms: where a decision's time goes.
 * Only with SCHED_STORE_TIMES=1: on Node 20 an AsyncLocalStorage in use makes every await of the
 * process about 2.7 times dearer, so the workers measured would not be the workers the lab runs.
 */
const inStore = new Map<string, number>();
const storeTimes = process.env.SCHED_STORE_TIMES === '1';
const deciding = new AsyncLocalStorage<boolean>();
function timing<T extends object>(target: T, prefix: string): T {
  return new Proxy(target, {
    get(t, p, r) {
      const v = Reflect.get(t, p, r) as unknown;
      if (typeof v !== 'function') return v;
      return async (...args: unknown[]) => {
        const t0 = performance.now();
        try {
          return await (v as (...x: unknown[]) => Promise<unknown>).apply(t, args);
        } finally {
          if (deciding.getStore()) {
            const k = `${prefix}${String(p)}`;
            inStore.set(k, (inStore.get(k) ?? 0) + performance.now() - t0);
          }
        }
      };
    },
  });
}
function timed(store: Store): Store {
  const lab = timing(store.lab, 'lab.');
  return timing(new Proxy(store, { get: (t, p, r) => (p === 'lab' ? lab : Reflect.get(t, p, r)) }), '');
}

/** What the workers count about their claimNext calls (summed over workers by the parent). */
export interface DecisionCounts {
  /** Wall time of every claimNext call, ms. */
  calls: number[];
  /** Of those, the calls that claimed a job. */
  claims: number[];
  replans: number;
  /** Calls that made no decision: another worker's had seen what woke this one. */
  skipped: number;
  /** Jobs claimed (a decision may claim several). */
  claimed: number;
  /** Calls over 40 ms, with their phases. */
  slow: Record<string, number>[];
  /** Time in each phase of the calls (see ClaimOutcome.ms), ms summed. */
  phases: Record<string, number>;
  /** Wall times of the calls by how many times they re-planned (3 = 3 or more). */
  byReplans: number[][];
  /** Lost takes by reason (names blanked). */
  lostWhy: Record<string, number>;
  settled: number;
  ran: number;
}

export interface WorkerReport extends DecisionCounts {
  /** Store methods by total time spent in them during decisions, ms. */
  inStore: Record<string, number>;
  id: string;
  errors: string[];
}

const HOUR = 3_600_000;
const LEASE_MS = 3_600_000;

/** SCHED_CPU_PROFILE=DIR: a CPU profile of each worker, written as DIR/KIND-ID.cpuprofile when it stops. */
async function profiler(dir: string | undefined): Promise<(name: string) => Promise<void>> {
  if (!dir) return async () => undefined;
  const session = new Session();
  session.connect();
  const post = (method: string) =>
    new Promise<unknown>((res, rej) => session.post(method, (e, r) => (e ? rej(e) : res(r))));
  await post('Profiler.enable');
  await post('Profiler.start');
  return async (name) => {
    const { profile } = (await post('Profiler.stop')) as { profile: unknown };
    writeFileSync(join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
  };
}

async function main(): Promise<void> {
  const a = JSON.parse(process.argv[2] ?? '') as WorkerArgs;
  const profiled = await profiler(process.env.SCHED_CPU_PROFILE);
  const opened = await openStore(a.spec);
  const store = storeTimes ? timed(opened) : opened;
  const config = Config.fromText('');
  await store.lab.registerWorker({
    id: a.id,
    host: 'bench',
    pid: process.pid,
    leaseMs: LEASE_MS,
    maxJobs: a.maxJobs,
  });
  const report: WorkerReport = {
    inStore: {},
    id: a.id,
    calls: [],
    claims: [],
    replans: 0,
    skipped: 0,
    claimed: 0,
    slow: [],
    lostWhy: {},
    byReplans: [],
    phases: {},
    settled: 0,
    ran: 0,
    errors: [],
  };
  let stopping = false;
  let pending = false;
  let wake: (() => void) | undefined;
  const poke = () => {
    pending = true;
    const w = wake;
    wake = undefined;
    w?.();
  };
  const ledger = new WakeLedger(10 * a.pollMs);
  // SCHED_TRACE=DIR: every call and wake-up with its wall-clock time, for working out what the slow calls waited behind.
  const traceDir = process.env.SCHED_TRACE;
  const trace: Record<string, unknown>[] = [];
  const unlisten = await store.lab.listen((what, w) => {
    if (traceDir) trace.push({ at: Date.now(), wake: what, more: w.decided?.more });
    if (ledger.heard(w)) poke();
  });
  process.on('message', (m) => {
    if (m === 'stop') {
      stopping = true;
      poke();
    }
  });
  // What run-job does goes through the worker's own pool, though run-job is a process of its own:
  // on the compressed clock a runner's transactions come 3,600 times denser than run-job's, and on
  // connections of their own they all ran at once beside the decisions (p99 ~120 ms instead of
  // ~85, 2026-12-03): that would measure the compression, not the allocator.
  const sleep = (simMs: number) => new Promise((r) => setTimeout(r, (simMs / HOUR) * a.msPerHour));
  const runvar = async (c: Claimed, name: string) =>
    Number((await store.getRunvar(c.flight, c.job, name))?.val ?? '0');
  const run = async (c: Claimed) => {
    const total = await runvar(c, 'bench_ms');
    const install = await runvar(c, 'bench_install_ms');
    // As run-job does: the flight has started (and its definition is frozen from now on).
    await store.markFlightStarted(c.flight);
    await store.setJobStatus(c.flight, c.job, 'running');
    const st = await store.startStep(c.flight, c.job, { testcase: 'ts-bench', testid: 'bench' });
    if (c.share?.action === 'start') {
      await sleep(install);
      await store.lab.markShareReady(c.share.host, c);
      await sleep(total - install);
    } else await sleep(c.share?.action === 'join' ? total - install : total);
    await store.finishStep(c.flight, c.job, st.stepno, { status: 'pass', logPath: 'bench' });
    await store.setJobStatus(c.flight, c.job, 'pass');
    await store.lab.closeJob({
      flight: c.flight,
      job: c.job,
      worker: a.id,
      sharesPrepared: c.share?.action === 'start',
    });
    report.ran += 1;
  };

  let running = 0;
  let retrySoon = false;
  const cache = new PlanCache();
  process.send?.('ready');
  const over = () => stopping || Date.now() >= a.stopAt;
  while (!over()) {
    pending = false;
    // On sqlite every store call is synchronous underneath: yield so the parent's `stop` is heard.
    await new Promise((r) => setImmediate(r));
    while (!over() && running < a.maxJobs && ledger.needed) {
      const t0 = performance.now();
      let out: Awaited<ReturnType<typeof claimNext>>;
      try {
        const call = () =>
          claimNext({
            store,
            config,
            harness: 'harness-1',
            cache,
            worker: a.id,
            leaseMs: LEASE_MS,
            ledger,
            maxClaims: a.maxJobs - running,
          });
        out = await (storeTimes ? deciding.run(true, call) : call());
      } catch (e) {
        report.errors.push((e as Error).message);
        break;
      }
      const ms = performance.now() - t0;
      report.calls.push(ms);
      if (traceDir)
        trace.push({ at: Date.now() - ms, ms, ...out.ms, skipped: out.skipped, claims: out.claims.length });
      if (out.skipped) {
        report.skipped += 1;
        // As the worker does: turned away with changes still unseen, look again soon.
        if (ledger.needed) retrySoon = true;
        break;
      }
      const k = Math.min(out.replans, 3);
      report.byReplans[k] = [...(report.byReplans[k] ?? []), ms];
      report.replans += out.replans;
      for (const [k, v] of Object.entries(out.ms)) report.phases[k] = (report.phases[k] ?? 0) + v;
      // The slow calls' split: which phase makes the tail.
      if (ms > 40)
        report.slow.push({ ms, ...out.ms, skipped: out.skipped ? 1 : 0, claims: out.claims.length });
      for (const w of out.lost) {
        const k = w.replace(/\S*\/\S*|host \S+/g, (m) => (m.startsWith('host') ? 'host H' : 'F/J'));
        report.lostWhy[k] = (report.lostWhy[k] ?? 0) + 1;
      }
      report.settled += out.settled.length;
      if (!out.claimed) break;
      report.claims.push(ms);
      report.claimed += out.claims.length;
      for (const c of out.claims) {
        running += 1;
        void run(c)
          // A job still running when told to stop (the run was cut short) dies with the store: no error.
          .catch((e: Error) => {
            if (!stopping) report.errors.push(`${c.flight}/${c.job}: ${e.message}`);
          })
          .finally(() => {
            running -= 1;
            // As the worker does: the job's end comes back as closeJob's NOTIFY, with its transaction.
            if (!store.lab.notifies) ledger.changed();
            poke();
          });
      }
      // As the worker does: the plan had nothing more to start now, so no decision until the lab changes.
      if (!out.more) break;
    }
    if (pending || over()) continue;
    const wait = retrySoon ? Math.min(a.pollMs, BUSY_RETRY_MS) : a.pollMs;
    retrySoon = false;
    const polled = await new Promise<boolean>((r) => {
      const t = setTimeout(() => r(true), wait);
      wake = () => {
        clearTimeout(t);
        r(false);
      };
    });
    wake = undefined;
    // Time alone changes plans (bookings fall due, jobs starve): a poll decides when they have.
    if (polled) ledger.polled();
  }
  stopping = true;
  await unlisten().catch(() => undefined);
  await store.lab.endWorker(a.id, 'bench over').catch(() => undefined);
  await store.close().catch(() => undefined);
  report.inStore = Object.fromEntries(inStore);
  await profiled(`${a.spec.kind}-${a.id}`);
  if (traceDir)
    writeFileSync(
      join(traceDir, `${a.spec.kind}-${a.id}.json`),
      JSON.stringify({ cpu: process.cpuUsage(), trace }),
    );
  process.send?.(report, () => process.exit(0));
}

main().catch((e: Error) => {
  process.stderr.write(`scheduler-worker: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
