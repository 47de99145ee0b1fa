/**
 * bench/scheduler: the planner in a simulated lab, against a lower bound and a naive allocator.
 *
 * The lab: 50 hosts — 10 build hosts (amd64, arm64, armhf; shareable), 28 amd64 test hosts
 * (Intel and AMD, three equivalence groups of 4, four with a passthrough NIC, two blessed for
 * play only), 8 arm64 (one group of 4), 4 armhf (one group of 2); one host quarantined and one
 * in maintenance. The work: 18 push-gate-like flights of 50 jobs (8 builds; 42 tests that wait for
 * their builds, 5 of them pairs) made every 90 minutes, plus 10 bisection flights of 10 jobs whose
 * tests are pinned to hosts: 1,000 jobs. Real durations are known; the planner is told estimates
 * off by a lognormal factor (σ 0.25), so holders end early and run over.
 *
 * Lower bound on the makespan: for every host set S that is some job's candidate set, or the union
 * of two such sets, or the whole lab: the jobs that can only run inside S cannot finish before
 * r + (their work released at or after r) / capacity(S), for every release time r (a test's
 * release is its flight's time plus its builds' shortest possible durations); and no job can end
 * before its release plus its own duration. Build work counts without the install a shared host
 * saves, and a build host counts as its share slots.
 *
 * Prints `result: makespan_ratio=…` (ours / lower bound), the naive allocator's beside it.
 *
 * Then the store phase (bench/scheduler-store.ts): the same lab and jobs as rows of a real store,
 * 4 worker processes claiming jobs with the real allocator (claimNext: snapshot read from the
 * store, plan, all-or-none write, re-plan on a lost race), flights queued on a scaled clock.
 * `result: p99_ms=…` is the p99 of every claimNext call on PostgreSQL (a throw-away server started
 * here), `decided_p99_ms` the same over the calls that decided (not turned away from a busy turn,
 * nor skipped because another worker's decision had seen what woke them), beside the same on sqlite (the baseline: same code, same
 * processes, no server or network) and the pure planner's own p99 in this process. PostgreSQL and
 * sqlite runs alternate. Environment: STORE_RUNS (runs per store, default 2; 0 skips the phase),
 * MS_PER_HOUR (real ms per lab hour, default 1000), CAP_SECONDS (each run's limit, default 150);
 * for diagnosis, SCHED_STORE_TIMES=1 (time in each store method, at a cost: see scheduler-worker.ts),
 * SCHED_TRACE=DIR (every call and wake-up of every worker, as JSON) and SCHED_CPU_PROFILE=DIR (a CPU
 * profile of every worker).
 */
import { loadavg } from 'node:os';
import { prng } from '../src/bisect/simulate.js';
import { HostIndex, jobCandidates } from '../src/scheduler/candidates.js';
import { greedyPlan } from '../src/scheduler/greedy.js';
import { type Plan, PlanCache, plan } from '../src/scheduler/planner.js';
import { defaultPriority } from '../src/scheduler/priority.js';
import { jobRequirements } from '../src/scheduler/requirements.js';
import { type SimJob, type SimResult, simulateLab } from '../src/scheduler/simulate.js';
import type { SchedHost } from '../src/scheduler/types.js';
import { type BenchJobDef, storePhase } from './scheduler-store.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const SLOTS = 3;
const WEAR = 10;
const rnd = prng(20261121);

function lognormal(sigma: number): number {
  // Box–Muller from two uniform draws.
  const u = Math.max(rnd(), 1e-12);
  const v = rnd();
  return Math.exp(sigma * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v));
}
const between = (lo: number, hi: number) => Math.round((lo + rnd() * (hi - lo)) * MIN);

// ---- the lab ----
const hosts: SchedHost[] = [];
const blessings = ['blessed-real', 'blessed-play', 'blessed-adhoc', 'blessed-real-bisect'];
function addHost(name: string, flags: string[], extra: Partial<SchedHost> = {}) {
  hosts.push({
    name,
    health: 'good',
    props: { SharedMaxTasks: String(SLOTS), SharedMaxWear: String(WEAR) },
    ...extra,
    // extra.flags, when given, replaces the blessings only.
    flags: [...(extra.flags ?? blessings), ...flags],
  });
}
for (let i = 0; i < 6; i++) addHost(`bx${i}`, ['arch-amd64', 'purpose-build', 'share-build-bookworm-amd64']);
for (let i = 0; i < 2; i++) addHost(`ba${i}`, ['arch-arm64', 'purpose-build', 'share-build-bookworm-arm64']);
for (let i = 0; i < 2; i++) addHost(`bh${i}`, ['arch-armhf', 'purpose-build', 'share-build-bookworm-armhf']);
for (let i = 0; i < 16; i++) {
  const equiv = i < 4 ? ['equiv-intel1'] : i < 8 ? ['equiv-intel2'] : [];
  const extra: Partial<SchedHost> =
    i === 15 ? { flags: ['blessed-play'] } : i === 14 ? { health: 'quarantined' } : {};
  addHost(
    `ti${String(i).padStart(2, '0')}`,
    [
      'arch-amd64',
      'purpose-test',
      'hvm-intel',
      ...equiv,
      ...(i >= 10 && i < 12 ? ['pcipassthrough-nic'] : []),
    ],
    extra,
  );
}
for (let i = 0; i < 12; i++) {
  const equiv = i < 4 ? ['equiv-amd1'] : [];
  const extra: Partial<SchedHost> =
    i === 11 ? { flags: ['blessed-play'] } : i === 10 ? { health: 'maintenance' } : {};
  addHost(
    `ta${String(i).padStart(2, '0')}`,
    ['arch-amd64', 'purpose-test', 'hvm-amd', ...equiv, ...(i >= 6 && i < 8 ? ['pcipassthrough-nic'] : [])],
    extra,
  );
}
for (let i = 0; i < 8; i++)
  addHost(`tr${i}`, ['arch-arm64', 'purpose-test', ...(i < 4 ? ['equiv-arm64'] : [])]);
for (let i = 0; i < 4; i++)
  addHost(`th${i}`, ['arch-armhf', 'purpose-test', ...(i < 2 ? ['equiv-armhf'] : [])]);
if (hosts.length !== 50) throw new Error(`lab has ${hosts.length} hosts`);

// ---- the jobs ----
interface Template {
  name: string;
  arch: string;
  runvars: Record<string, string>;
  min: number;
  max: number;
}
const PAIR = {
  host_idents: 'src_host dst_host',
  src_host_hostflags: 'equiv-1',
  dst_host_hostflags: 'equiv-1',
};
const builds: Template[] = [
  ['build-amd64', 'amd64', 40, 70],
  ['build-amd64-pvops', 'amd64', 35, 60],
  ['build-amd64-xsm', 'amd64', 40, 70],
  ['build-i386', 'amd64', 40, 65],
  ['build-arm64', 'arm64', 45, 80],
  ['build-arm64-pvops', 'arm64', 40, 70],
  ['build-armhf', 'armhf', 50, 90],
  ['build-armhf-pvops', 'armhf', 45, 80],
].map(([name, arch, min, max]) => ({
  name: name as string,
  arch: arch as string,
  min: min as number,
  max: max as number,
  runvars: { host_hostflags: `share-build-bookworm-${arch},arch-${arch},purpose-build` },
}));
const tests: Template[] = [];
const amdSingles = [
  'xl',
  'pv',
  'credit2',
  'multivcpu',
  'rtds',
  'xl-qemut-debianhvm',
  'xl-qemuu-debianhvm',
  'xl-qemuu-ovmf',
  'xl-qemut-win7',
  'xl-qemuu-win10',
  'xl-qemuu-ws16',
  'xl-rhel',
  'freebsd',
  'xl-shadow',
  'xl-xsm',
  'libvirt',
  'libvirt-xsm',
  'xl-pvhv2',
  'xl-vhd',
  'xl-raw',
  'xl-qcow2',
  'migrupgrade',
  'examine',
  'xl-qemuu-nested',
  'dom0pvh',
];
for (const [k, t] of amdSingles.entries()) {
  const win = t.includes('win') || t.includes('ws16');
  const flags = k % 7 === 3 ? ',hvm-intel' : k % 7 === 5 ? ',hvm-amd' : '';
  tests.push({
    name: `test-amd64-amd64-${t}`,
    arch: 'amd64',
    runvars: { all_hostflags: `arch-amd64,purpose-test${flags}` },
    min: win ? 150 : 45,
    max: win ? 210 : 130,
  });
}
for (const t of ['xl-pcipt-intel', 'xl-qemuu-pcipt']) {
  tests.push({
    name: `test-amd64-amd64-${t}`,
    arch: 'amd64',
    runvars: { all_hostflags: 'arch-amd64,purpose-test,pcipassthrough-nic' },
    min: 50,
    max: 90,
  });
}
for (const t of ['pair', 'libvirt-pair', 'i386-pair']) {
  tests.push({
    name: `test-amd64-amd64-${t}`,
    arch: 'amd64',
    runvars: { all_hostflags: 'arch-amd64,purpose-test', ...PAIR },
    min: 70,
    max: 130,
  });
}
for (const t of ['xl', 'xl-credit2', 'xl-xsm', 'xl-thunderx', 'libvirt-raw']) {
  tests.push({
    name: `test-arm64-arm64-${t}`,
    arch: 'arm64',
    runvars: { all_hostflags: 'arch-arm64,purpose-test' },
    min: 40,
    max: 100,
  });
}
tests.push({
  name: 'test-arm64-arm64-pair',
  arch: 'arm64',
  runvars: { all_hostflags: 'arch-arm64,purpose-test', ...PAIR },
  min: 60,
  max: 110,
});
for (const t of ['xl', 'xl-credit2', 'xl-multivcpu']) {
  tests.push({
    name: `test-armhf-armhf-${t}`,
    arch: 'armhf',
    runvars: { all_hostflags: 'arch-armhf,purpose-test' },
    min: 50,
    max: 120,
  });
}
tests.push({
  name: 'test-armhf-armhf-pair',
  arch: 'armhf',
  runvars: { all_hostflags: 'arch-armhf,purpose-test', ...PAIR },
  min: 60,
  max: 120,
});
for (const t of ['xl-arndale', 'examine']) {
  tests.push({
    name: `test-armhf-armhf-${t}`,
    arch: 'armhf',
    runvars: { all_hostflags: 'arch-armhf,purpose-test' },
    min: 30,
    max: 80,
  });
}
if (builds.length !== 8 || tests.length !== 42)
  throw new Error(`flight has ${builds.length}+${tests.length} jobs`);

const jobs: SimJob[] = [];
/** What the store phase needs to recreate each job as a row (see bench/scheduler-store.ts). */
const defs: BenchJobDef[] = [];
function addJob(
  flight: string,
  t: Template,
  intended: string,
  release: number,
  deps: string[],
  extraRunvars: Record<string, string> = {},
): string {
  const key = `${flight}/${t.name}`;
  const actual = between(t.min, t.max);
  const isBuild = t.name.startsWith('build-');
  jobs.push({
    key,
    req: jobRequirements({
      flight,
      job: t.name,
      runvars: { ...t.runvars, ...extraRunvars },
      intended,
      harness: 'harness-1',
    }),
    actualMs: actual,
    estimateMs: Math.max(MIN, Math.round(actual * lognormal(0.25))),
    installMs: isBuild ? 15 * MIN : 0,
    deps,
    release,
    priority: defaultPriority(intended),
  });
  defs.push({
    key,
    flight,
    job: t.name,
    intended,
    runvars: { ...t.runvars, ...extraRunvars },
    deps: deps.map((d) => d.slice(d.indexOf('/') + 1)),
    release,
    actualMs: actual,
    installMs: isBuild ? 15 * MIN : 0,
  });
  return key;
}
const intendedOf = (f: number) => (f % 6 === 5 ? 'play' : f === 16 ? 'adhoc' : 'real');
for (let f = 0; f < 18; f++) {
  const flight = String(1000 + f);
  const release = f * 90 * MIN;
  const intended = intendedOf(f);
  const byArch = new Map<string, string[]>();
  for (const b of builds) {
    const k = addJob(flight, b, intended, release, []);
    byArch.set(b.arch, [...(byArch.get(b.arch) ?? []), k]);
  }
  for (const t of tests) {
    const archBuilds = byArch.get(t.arch)!;
    addJob(flight, t, intended, release, archBuilds.slice(0, 2));
  }
}
// Bisection flights: 2 builds (one amd64, one arm64) and 8 tests pinned to the failure's hosts.
const pinnable = hosts.filter((h) => h.health === 'good' && h.flags.includes('purpose-test'));
for (let b = 0; b < 10; b++) {
  const flight = String(2000 + b);
  const release = Math.round((2 + b * 2.5) * HOUR);
  const xb = addJob(flight, builds[0]!, 'real-bisect', release, []);
  const ab = addJob(flight, builds[4]!, 'real-bisect', release, []);
  for (let k = 0; k < 8; k++) {
    const t = tests[(b * 5 + k * 3) % tests.length]!;
    const pinned: Record<string, string> = {};
    if (!t.runvars.host_idents) {
      const fits = pinnable.filter((h) =>
        (t.runvars.all_hostflags ?? '').split(',').every((f) => h.flags.includes(f)),
      );
      pinned.host = fits[(b + k) % fits.length]!.name;
    }
    addJob(
      flight,
      { ...t, name: `${t.name}-b${k}` },
      'real-bisect',
      release,
      [t.arch === 'amd64' ? xb : ab],
      pinned,
    );
  }
}
if (jobs.length !== 1000) throw new Error(`${jobs.length} jobs`);

// ---- lower bound ----
function lowerBound(): number {
  const index = new HostIndex(hosts);
  const byKey = new Map(jobs.map((j) => [j.key, j]));
  const minDur = (j: SimJob) => j.actualMs - (j.installMs ?? 0);
  const releaseOf = new Map<string, number>();
  const rel = (j: SimJob): number => {
    let r = releaseOf.get(j.key);
    if (r === undefined) {
      r = j.release;
      for (const d of j.deps ?? []) {
        const dj = byKey.get(d)!;
        r = Math.max(r, rel(dj) + minDur(dj));
      }
      releaseOf.set(j.key, r);
    }
    return r;
  };
  const isShareHost = (h: string) => index.byName.get(h)!.flags.some((f) => f.startsWith('share-build-'));
  const info = jobs.map((j) => {
    const jc = jobCandidates(j.req, index);
    if (jc.impossible || jc.outOfService) throw new Error(`${j.key}: ${jc.impossible ?? jc.outOfService}`);
    const set = [...new Set(jc.idents.flatMap((c) => c.usable))].sort();
    return { j, set, key: set.join(','), work: minDur(j) * j.req.idents.length, r: rel(j) };
  });
  let lb = 0;
  for (const x of info) lb = Math.max(lb, x.r + minDur(x.j));
  const sets = new Map<string, Set<string>>();
  for (const x of info) sets.set(x.key, new Set(x.set));
  const base = [...sets.values()];
  for (let a = 0; a < base.length; a++)
    for (let b = a + 1; b < base.length; b++) {
      const u = new Set([...base[a]!, ...base[b]!]);
      sets.set([...u].sort().join(','), u);
    }
  const inService = hosts.filter((h) => h.health === 'good' || h.health === 'suspect').map((h) => h.name);
  sets.set(inService.join(','), new Set(inService));
  for (const s of sets.values()) {
    const cap = [...s].reduce((n, h) => n + (isShareHost(h) ? SLOTS : 1), 0);
    const confined = info.filter((x) => x.set.every((h) => s.has(h))).sort((p, q) => q.r - p.r);
    let work = 0;
    for (const x of confined) {
      work += x.work;
      lb = Math.max(lb, x.r + work / cap);
    }
  }
  return lb;
}

// ---- run ----
function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? 0;
}
function waits(sim: SimResult, pairsOnly: boolean): number[] {
  const out: number[] = [];
  for (const j of jobs) {
    if (pairsOnly && j.req.idents.length < 2) continue;
    const r = sim.jobs.get(j.key)!;
    if (r.start !== undefined && r.queued !== undefined) out.push(r.start - r.queued);
  }
  return out;
}
const h = (ms: number) => (ms / HOUR).toFixed(2);

const lb = lowerBound();
console.log(
  `lab: ${hosts.length} hosts; ${jobs.length} jobs (${jobs.filter((j) => j.req.idents.length > 1).length} pairs)`,
);
console.log(`lower bound on the makespan: ${h(lb)} h`);

const t0 = performance.now();
// One cache for the run, as a worker process keeps one between its decisions. The planner is
// pure, so each snapshot is planned three times: the first call's wall time is what a worker
// would see on this (shared, busy) machine; the fastest of the three is the planner's own cost.
const cache = new PlanCache();
const once: number[] = [];
const best: number[] = [];
const examined: number[] = [];
const ours = simulateLab(
  jobs,
  (s) => {
    let first: Plan | undefined;
    let fastest = Number.POSITIVE_INFINITY;
    for (let k = 0; k < 3; k++) {
      const c0 = performance.now();
      const p = plan(s, { cache });
      const ms = performance.now() - c0;
      if (k === 0) {
        first = p;
        once.push(ms);
      }
      fastest = Math.min(fastest, ms);
    }
    best.push(fastest);
    examined.push(first!.examined);
    return first!.decisions;
  },
  { hosts },
);
const t1 = performance.now();
const greedy = simulateLab(jobs, greedyPlan, { hosts });
for (const [name, sim] of [
  ['planner', ours],
  ['greedy', greedy],
] as const) {
  const notPass = [...sim.jobs.values()].filter((r) => r.status !== 'pass');
  const pw = waits(sim, true);
  const aw = waits(sim, false);
  console.log(
    `${name.padEnd(8)} makespan ${h(sim.makespan)} h  ratio ${(sim.makespan / lb).toFixed(3)}  ` +
      `wait p50/p99/max ${h(percentile(aw, 50))}/${h(percentile(aw, 99))}/${h(Math.max(...aw))} h  ` +
      `pair wait max ${h(Math.max(...pw))} h  shared joins ${[...sim.jobs.values()].filter((r) => r.joinedShare).length}  ` +
      `not passed ${notPass.length}`,
  );
}
const ms = (x: number) => `${x.toFixed(2)} ms`;
console.log(
  `planner calls ${ours.calls} (simulation ${((t1 - t0) / 1000).toFixed(1)} s, load average ${loadavg()[0]!.toFixed(1)} on this machine); ` +
    `jobs examined per call p50 ${percentile(examined, 50)}, max ${Math.max(...examined)}`,
);
console.log(
  `  one call, wall:       p50 ${ms(percentile(once, 50))}  p99 ${ms(percentile(once, 99))}  max ${ms(Math.max(...once))}`,
);
console.log(
  `  fastest of 3, wall:   p50 ${ms(percentile(best, 50))}  p99 ${ms(percentile(best, 99))}  max ${ms(Math.max(...best))}`,
);
// A full plan of the whole queue at its longest (for a plan page), timed on its own.
{
  const snapQueue = jobs.map((j) => ({
    key: j.key,
    req: j.req,
    durationMs: j.estimateMs,
    priority: j.priority,
    waitStart: j.release,
  }));
  const c0 = performance.now();
  const full = plan({ now: 0, hosts, allocations: [], reservations: [], queue: snapQueue }, { full: true });
  console.log(
    `full plan of all ${snapQueue.length} jobs at once: ${(performance.now() - c0).toFixed(1)} ms (${full.examined} placed)`,
  );
}
console.log(
  `result: makespan_ratio=${(ours.makespan / lb).toFixed(3)} greedy_makespan_ratio=${(greedy.makespan / lb).toFixed(3)}`,
);

// ---- the store phase: 4 worker processes deciding against PostgreSQL, and sqlite as baseline ----
const pureP99 = `pure planner in process: p99 ${percentile(best, 99).toFixed(2)} ms fastest of 3, ${percentile(once, 99).toFixed(2)} ms single-shot`;
const env = (name: string, dflt: number) => {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0)
    throw new Error(`bench/scheduler: ${name} must be a number ≥ 0, not ${JSON.stringify(v)}`);
  return n;
};
const storeRuns = env('STORE_RUNS', 2);
if (storeRuns === 0) {
  console.log(`result: p99_ms=${percentile(best, 99).toFixed(2)} (${pureP99}; STORE_RUNS=0: no store phase)`);
} else {
  const opts = {
    workers: 4,
    maxJobsPerWorker: 13,
    msPerHour: env('MS_PER_HOUR', 1000),
    pollMs: 250,
    capMs: env('CAP_SECONDS', 150) * 1000,
  };
  console.log(
    `store phase: ${opts.workers} worker processes (at most ${opts.maxJobsPerWorker} jobs each) calling the real allocator; ` +
      `an hour of the lab is ${opts.msPerHour} ms; ${storeRuns} run(s) per store, PostgreSQL and sqlite alternating`,
  );
  const runs = await storePhase(hosts, defs, storeRuns, opts, (r) => {
    console.log(
      `  ${r.kind.padEnd(8)} decisions ${r.calls.length} (${r.claims.length} claimed ${r.claimed} jobs, ${r.replans} re-plans, ${r.skipped} skipped, ${r.settled} settled unrun)  ` +
        `ms p50 ${percentile(r.calls, 50).toFixed(1)} p99 ${percentile(r.calls, 99).toFixed(1)} max ${Math.max(...r.calls).toFixed(1)}; ` +
        `claiming p99 ${percentile(r.claims, 99).toFixed(1)}  passed ${r.passed}/${r.total}  ` +
        `makespan ${r.makespanH === undefined ? 'cut short' : `${r.makespanH.toFixed(2)} h (ratio ${((r.makespanH * HOUR) / lb).toFixed(3)})`}  ` +
        `wall ${r.wallS.toFixed(0)} s (+${r.populateS.toFixed(0)} s to fill the store)  load ${loadavg()[0]!.toFixed(1)}`,
    );
    console.log(
      `           by re-plans: ${r.byReplans
        .map((xs, k) =>
          xs.length === 0
            ? ''
            : `${k}${k === 3 ? '+' : ''}: ${xs.length} calls p50 ${percentile(xs, 50).toFixed(1)} p99 ${percentile(xs, 99).toFixed(1)} ms`,
        )
        .filter((x) => x)
        .join('; ')}`,
    );
    console.log(
      `           per decision, mean ms: ${Object.entries(r.phases)
        .map(([k, v]) => `${k} ${(v / r.calls.length).toFixed(1)}`)
        .join(', ')}`,
    );
    if (r.slow.length > 0) {
      const mean: Record<string, number> = {};
      for (const x of r.slow)
        for (const [k, v] of Object.entries(x)) mean[k] = (mean[k] ?? 0) + v / r.slow.length;
      console.log(
        `           ${r.slow.length} calls over 40 ms, mean: ${Object.entries(mean)
          .map(([k, v]) => `${k} ${v.toFixed(1)}`)
          .join(', ')}`,
      );
    }
    const lost = Object.entries(r.lostWhy).sort((x, y) => y[1] - x[1]);
    if (lost.length > 0)
      console.log(`           lost takes: ${lost.map(([k, v]) => `${v}× ${k}`).join('; ')}`);
    const total = r.calls.reduce((x, y) => x + y, 0);
    const parts = Object.entries(r.inStore).sort((x, y) => y[1] - x[1]);
    const stored = parts.reduce((x, [, v]) => x + v, 0);
    // Measured only with SCHED_STORE_TIMES=1 (see scheduler-worker.ts).
    if (parts.length > 0)
      console.log(
        `           time in store calls, as a share of the decisions' time (reads run at once, so shares overlap): ${((100 * stored) / total).toFixed(0)}% (${parts
          .slice(0, 6)
          .map(([k, v]) => `${k} ${((100 * v) / total).toFixed(0)}%`)
          .join(', ')})`,
      );
  });
  const pool = (kind: string, f: (r: (typeof runs)[number]) => number[]) =>
    runs.filter((r) => r.kind === kind).flatMap(f);
  const pg = pool('postgres', (r) => r.calls);
  const sq = pool('sqlite', (r) => r.calls);
  console.log(
    `all calls: postgres p50 ${percentile(pg, 50).toFixed(1)} ms p99 ${percentile(pg, 99).toFixed(1)} ms (${pg.length}); ` +
      `sqlite p50 ${percentile(sq, 50).toFixed(1)} ms p99 ${percentile(sq, 99).toFixed(1)} ms (${sq.length}); ${pureP99}`,
  );
  const short = runs.filter((r) => r.passed < r.total).map((r) => `${r.kind} ${r.passed}/${r.total}`);
  if (short.length > 0) console.log(`WARNING: not every job passed in: ${short.join(', ')}`);
  // The calls that read the lab and planned (not the ones another worker's decision stood for).
  const decided = pool('postgres', (r) => r.byReplans.flat());
  console.log(
    'p99_ms: one claimNext call (snapshot from the store, plan, all-or-none write) in 4 worker processes on PostgreSQL; ' +
      'decided_p99_ms: the same over the calls that decided (not turned away, not skipped)',
  );
  console.log(
    `result: p99_ms=${percentile(pg, 99).toFixed(1)} decided_p99_ms=${percentile(decided, 99).toFixed(1)} sqlite_p99_ms=${percentile(sq, 99).toFixed(1)} pure_planner_p99_ms=${percentile(best, 99).toFixed(2)}`,
  );
}
