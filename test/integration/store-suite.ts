/**
 * The store contract, written against the Store interface only, so that every implementation
 * (sqlite now, PostgreSQL later) runs exactly these tests: store-<kind>.test.ts calls
 * defineStoreSuite with a factory for fresh, empty stores.
 *
 * Every refused change is checked to leave the store as it was, through the interface (a dump of
 * everything it can list) and, when the factory offers one, through a raw snapshot of every table.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ConflictError,
  FrozenError,
  InvalidNameError,
  NotFoundError,
  StoreError,
} from '../../src/db/errors.js';
import type { NewGateRun } from '../../src/db/gate-types.js';
import type { StoreSpec } from '../../src/db/open.js';
import type { Store } from '../../src/db/store.js';
import type { AllocationEvent } from '../../src/db/types.js';
import { JOB_STATUSES, nextJobStatus, STEP_STATUSES } from '../../src/model/status.js';
import { defineLabStoreSuite } from './lab-store-suite.js';

export interface StoreFixture {
  /** A fresh, empty store. */
  store: Store;
  /** A second, independent connection to the same database. */
  reopen?: () => Promise<Store>;
  /** Removes the database. */
  cleanup: () => Promise<void>;
  /** How another process opens the same database (enables the multi-process test). */
  spec?: StoreSpec;
  /** Every row of every table, to prove a refused change wrote nothing at all. */
  snapshot?: () => string | Promise<string>;
}

type ErrorClass = new (...args: never[]) => Error;

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Everything the interface can show, in a stable form. */
async function dump(store: Store): Promise<unknown> {
  const flights = [];
  for (const f of await store.listFlights()) {
    flights.push({
      ...f,
      jobs: await store.listJobs(f.flight),
      runvars: await store.listRunvars(f.flight),
      steps: await store.listSteps(f.flight),
      harness: await store.harnessRevisions(f.flight),
    });
  }
  return {
    flights,
    hosts: await store.listHosts(),
    allocations: await store.listAllocations(),
    log: await store.allocationLog(),
  };
}

/** Walks a log of one host's events in order: every allocate must find the host free, every release held by the releaser. */
function checkNoOverlap(events: readonly AllocationEvent[]): { holds: number } {
  const holder = new Map<string, string>();
  let holds = 0;
  for (const e of events) {
    const who = `${e.flight}/${e.job}/${e.ident}`;
    const cur = holder.get(e.host);
    if (e.event === 'allocate') {
      if (cur !== undefined) throw new Error(`event ${e.id}: ${who} got ${e.host} while ${cur} held it`);
      holder.set(e.host, who);
      holds += 1;
    } else {
      if (cur !== who) throw new Error(`event ${e.id}: ${who} released ${e.host} held by ${cur ?? 'nobody'}`);
      holder.delete(e.host);
    }
  }
  return { holds };
}

// ---- child processes running the store from source (Node 20 cannot run .ts by itself)

const TRANSPILE = { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 };

/**
 * The store's sources compiled here, once: each child would otherwise spend a second or more
 * loading TypeScript itself. Anything not in it (a file added later) is compiled in the child.
 */
function precompiled(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const sub of ['src/db', 'src/model']) {
    for (const rel of readdirSync(join(repoRoot, sub), { recursive: true, encoding: 'utf8' })) {
      if (!rel.endsWith('.ts')) continue;
      const fileName = join(repoRoot, sub, rel);
      const src = readFileSync(fileName, 'utf8');
      out[pathToFileURL(fileName).href] = ts.transpileModule(src, {
        fileName,
        compilerOptions: TRANSPILE,
      }).outputText;
    }
  }
  return out;
}

/** An ESM loader for the children: runs .ts (precompiled, else compiled on the spot) and maps `x.js` imports to `x.ts`. */
function loaderSource(compiledFile: string): string {
  const tsUrl = pathToFileURL(createRequire(import.meta.url).resolve('typescript')).href;
  return `
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
const compiled = JSON.parse(readFileSync(${JSON.stringify(compiledFile)}, 'utf8'));
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (err) {
    if (err?.code === 'ERR_MODULE_NOT_FOUND' && specifier.endsWith('.js') && context.parentURL?.endsWith('.ts')) {
      return next(specifier.slice(0, -3) + '.ts', context);
    }
    throw err;
  }
}
export async function load(url, context, next) {
  if (!url.endsWith('.ts')) return next(url, context);
  let source = compiled[url];
  if (source === undefined) {
    const { default: ts } = await import(${JSON.stringify(tsUrl)});
    const fileName = fileURLToPath(url);
    source = ts.transpileModule(await readFile(fileName, 'utf8'), {
      fileName,
      compilerOptions: ${JSON.stringify(TRANSPILE)},
    }).outputText;
  }
  return { format: 'module', source, shortCircuit: true };
}
`;
}

/**
 * A child: opens the store, says `ready`, waits for a line on stdin (so all children start
 * together), runs its part, prints one JSON line with its result.
 */
function workerSource(loaderUrl: string): string {
  const openUrl = pathToFileURL(join(repoRoot, 'src', 'db', 'open.ts')).href;
  return `
import { register } from 'node:module';
register(${JSON.stringify(loaderUrl)});
const { openStore } = await import(${JSON.stringify(openUrl)});
const a = JSON.parse(process.argv[2]);
const store = await openStore(a.spec);
const result = {};
process.stdout.write('ready\\n');
await new Promise((r) => process.stdin.once('data', r));
if (a.mode === 'alloc') {
  result.won = 0;
  result.lost = 0;
  // [host, from, to] in ns of the system-wide monotonic clock: a window inside each hold, so two
  // windows of one host that overlap (across processes too) prove a double allocation.
  result.holds = [];
  for (let i = 0; i < a.cycles; i++) {
    const host = a.hosts[i % a.hosts.length];
    if (await store.allocateHost(host, { flight: a.flight, job: a.job, ident: 'host' })) {
      const from = process.hrtime.bigint();
      result.won++;
      // Hold it across a turn of the event loop so other processes really try while it is held.
      await new Promise((r) => setImmediate(r));
      result.holds.push([host, String(from), String(process.hrtime.bigint())]);
      await store.releaseHost(host, { flight: a.flight, job: a.job });
    } else result.lost++;
  }
} else if (a.mode === 'take') {
  // The lab's way: all of a pair of hosts or none (lab.takeHosts), released as a worker closes a job.
  result.won = 0;
  result.lost = 0;
  result.holds = [];
  const pairs = [];
  for (let x = 0; x < a.hosts.length; x++)
    for (let y = x + 1; y < a.hosts.length; y++) pairs.push([a.hosts[x], a.hosts[y]]);
  for (let i = 0; i < a.cycles; i++) {
    const [h1, h2] = pairs[i % pairs.length];
    const r = await store.lab.takeHosts({
      flight: a.flight,
      job: a.job,
      holds: [{ ident: 'src_host', host: h1 }, { ident: 'dst_host', host: h2 }],
    });
    if (r.ok) {
      const from = process.hrtime.bigint();
      result.won++;
      await new Promise((r) => setImmediate(r));
      const to = String(process.hrtime.bigint());
      result.holds.push([h1, String(from), to], [h2, String(from), to]);
      await store.lab.closeJob({ flight: a.flight, job: a.job, sharesPrepared: false });
    } else result.lost++;
  }
} else if (a.mode === 'steps') {
  result.stepnos = [];
  for (let i = 0; i < a.cycles; i++) {
    const s = await store.startStep(a.flight, a.job, { testcase: 'ts-x', testid: (n) => 'x(' + n + ')' });
    result.stepnos.push(s.stepno);
    await store.finishStep(a.flight, a.job, s.stepno, { status: 'pass' });
  }
} else if (a.mode === 'create-flight') {
  result.flight = (await store.createFlight({ branch: 'kids', intended: 'play' })).flight;
}
await store.close();
process.stdout.write(JSON.stringify(result) + '\\n');
`;
}

/** Runs `args.length` children at once against the same database; resolves with their JSON results. */
export async function runStoreChildren(
  args: readonly Record<string, unknown>[],
  timeoutMs = 45_000,
): Promise<unknown[]> {
  const dir = mkdtempSync(join(tmpdir(), 'osstest-store-kids-'));
  const children: ChildProcess[] = [];
  try {
    const compiled = join(dir, 'compiled.json');
    writeFileSync(compiled, JSON.stringify(precompiled()));
    const loader = join(dir, 'loader.mjs');
    writeFileSync(loader, loaderSource(compiled));
    const worker = join(dir, 'worker.mjs');
    writeFileSync(worker, workerSource(pathToFileURL(loader).href));
    let ready = 0;
    const results = args.map(
      (a) =>
        new Promise<unknown>((res, rej) => {
          const c = spawn(process.execPath, [worker, JSON.stringify(a)], { stdio: ['pipe', 'pipe', 'pipe'] });
          children.push(c);
          let out = '';
          let err = '';
          c.stdout?.on('data', (d: Buffer) => {
            const before = out;
            out += d.toString();
            if (!before.includes('ready\n') && out.includes('ready\n')) {
              ready += 1;
              if (ready === args.length) for (const k of children) k.stdin?.end('go\n');
            }
          });
          c.stderr?.on('data', (d: Buffer) => {
            err += d.toString();
          });
          c.on('error', rej);
          c.on('close', (code, signal) => {
            const last = out.trim().split('\n').pop() ?? '';
            if (code !== 0) rej(new Error(`store child exited ${code ?? signal}: ${err.slice(-2000)}`));
            else res(JSON.parse(last));
          });
        }),
    );
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_res, rej) => {
      timer = setTimeout(
        () => rej(new Error(`store children still running after ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([Promise.all(results), timeout]);
    } finally {
      clearTimeout(timer);
    }
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

export function defineStoreSuite(label: string, makeStore: () => Promise<StoreFixture>): void {
  // Lab mode's part of the contract (workers, claims, leases, shares, health): lab-store-suite.ts.
  defineLabStoreSuite(label, makeStore);
  describe(`store contract (${label})`, () => {
    let fx: StoreFixture;
    let store: Store;
    const others: Store[] = [];

    beforeEach(async () => {
      fx = await makeStore();
      store = fx.store;
    });
    afterEach(async () => {
      for (const s of others.splice(0)) await s.close();
      await store.close();
      await fx.cleanup();
    });

    async function second(): Promise<Store | undefined> {
      if (!fx.reopen) return undefined;
      const s = await fx.reopen();
      others.push(s);
      return s;
    }

    async function snap(): Promise<unknown> {
      return { api: await dump(store), raw: fx.snapshot ? await fx.snapshot() : null };
    }

    /** The change must fail with this class, say `text`, and leave everything as it was. */
    async function refused(
      op: () => Promise<unknown>,
      cls: ErrorClass,
      text: string | RegExp,
    ): Promise<Error> {
      const before = await snap();
      const err = await op().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, 'the change should have been refused').toBeInstanceOf(cls);
      expect((err as Error).message).toMatch(text);
      expect(await snap()).toEqual(before);
      return err as Error;
    }

    async function flightWithJob(name = 'f1', runvars: Record<string, string> = {}): Promise<void> {
      await store.createFlight({ flight: name, branch: 'br', intended: 'play' });
      await store.createJob(name, 'job', 'rec', runvars);
    }

    describe('flights', () => {
      it('creates a named flight, constructing, not started, and reads it back', async () => {
        const t0 = Date.now();
        const f = await store.createFlight({
          flight: 'standalone',
          branch: 'xen-unstable',
          intended: 'real',
        });
        expect(f).toMatchObject({
          flight: 'standalone',
          branch: 'xen-unstable',
          intended: 'real',
          blessing: 'constructing',
          started: null,
        });
        expect(f.created).toBeGreaterThanOrEqual(t0);
        expect(f.created).toBeLessThanOrEqual(Date.now());
        expect(await store.getFlight('standalone')).toEqual(f);
        expect(await store.getFlight('nope')).toBeUndefined();
      });

      it('takes the given blessing', async () => {
        const f = await store.createFlight({ flight: 'x', branch: 'b', intended: 'play', blessing: 'adhoc' });
        expect(f.blessing).toBe('adhoc');
      });

      it('numbers unnamed flights from a sequence, skipping numbers used as names and never reusing one', async () => {
        await store.createFlight({ flight: '2', branch: 'b', intended: 'play' });
        expect((await store.createFlight({ branch: 'b', intended: 'play' })).flight).toBe('1');
        expect((await store.createFlight({ branch: 'b', intended: 'play' })).flight).toBe('3');
        await store.deleteFlight('3');
        expect((await store.createFlight({ branch: 'b', intended: 'play' })).flight).toBe('4');
      });

      it('lists newest first (by creation, whatever the names), by branch, with a limit', async () => {
        await store.createFlight({ flight: 'zz', branch: 'a', intended: 'play' });
        await store.createFlight({ branch: 'b', intended: 'play' });
        await store.createFlight({ flight: 'aa', branch: 'a', intended: 'play' });
        const all = await store.listFlights();
        expect(all.map((f) => f.flight)).toEqual(['aa', '1', 'zz']);
        expect(all[0]!.seq).toBeGreaterThan(all[1]!.seq);
        expect(all[1]!.seq).toBeGreaterThan(all[2]!.seq);
        expect((await store.listFlights({ branch: 'a' })).map((f) => f.flight)).toEqual(['aa', 'zz']);
        expect((await store.listFlights({ limit: 2 })).map((f) => f.flight)).toEqual(['aa', '1']);
        expect((await store.listFlights({ branch: 'a', limit: 1 })).map((f) => f.flight)).toEqual(['aa']);
        expect(await store.listFlights({ branch: 'none' })).toEqual([]);
      });

      it('refuses an existing name', async () => {
        await store.createFlight({ flight: 'dup', branch: 'b', intended: 'play' });
        await refused(
          () => store.createFlight({ flight: 'dup', branch: 'c', intended: 'real' }),
          ConflictError,
          'dup',
        );
      });

      it.each(['', 'a/b', '..', '.hidden', '-x', '_x', 'a b', 'x/../y', 'tab\t', 'ü'])(
        'refuses the flight name %j',
        async (bad) => {
          await refused(
            () => store.createFlight({ flight: bad, branch: 'b', intended: 'play' }),
            InvalidNameError,
            JSON.stringify(bad),
          );
        },
      );

      it('accepts flight names made of letters, digits, dots, dashes and underscores', async () => {
        for (const ok of ['standalone', '12345', 'my_flight-1.2', 'A']) {
          await store.createFlight({ flight: ok, branch: 'b', intended: 'play' });
        }
        expect(await store.listFlights()).toHaveLength(4);
      });

      it('refuses bad branch, intended and blessing words', async () => {
        await refused(() => store.createFlight({ branch: 'a/b', intended: 'play' }), InvalidNameError, 'a/b');
        await refused(() => store.createFlight({ branch: 'b', intended: '' }), InvalidNameError, 'intended');
        await refused(
          () => store.createFlight({ branch: 'b', intended: 'play', blessing: 'no way' }),
          InvalidNameError,
          'no way',
        );
      });

      it('markFlightStarted: constructing → running with the start time, then a no-op', async () => {
        await store.createFlight({ flight: 'f', branch: 'b', intended: 'play' });
        const f = await store.markFlightStarted('f', 1_700_000_000_000);
        expect(f).toMatchObject({ flight: 'f', blessing: 'running', started: 1_700_000_000_000 });
        expect(await store.getFlight('f')).toEqual(f);
        const again = await store.markFlightStarted('f', 1_800_000_000_000);
        expect(again).toEqual(f);
        expect(await store.getFlight('f')).toEqual(f);
      });

      it('markFlightStarted defaults the time to now and keeps a blessing that is not constructing', async () => {
        await store.createFlight({ flight: 'f', branch: 'b', intended: 'play', blessing: 'adhoc' });
        const t0 = Date.now();
        const f = await store.markFlightStarted('f');
        expect(f.blessing).toBe('adhoc');
        expect(f.started).toBeGreaterThanOrEqual(t0);
        expect(f.started).toBeLessThanOrEqual(Date.now());
      });

      it('markFlightStarted on an unknown flight names it', async () => {
        await refused(() => store.markFlightStarted('ghost'), NotFoundError, 'ghost');
      });

      it('sets the blessing, but never back to constructing once started', async () => {
        await store.createFlight({ flight: 'f', branch: 'b', intended: 'play' });
        await store.setFlightBlessing('f', 'play');
        expect((await store.getFlight('f'))!.blessing).toBe('play');
        await store.setFlightBlessing('f', 'constructing');
        expect((await store.getFlight('f'))!.blessing).toBe('constructing');
        await store.markFlightStarted('f');
        await store.setFlightBlessing('f', 'real');
        expect((await store.getFlight('f'))!.blessing).toBe('real');
        await refused(() => store.setFlightBlessing('f', 'constructing'), FrozenError, 'f');
        await refused(() => store.setFlightBlessing('f', 'bad/word'), InvalidNameError, 'bad/word');
        await refused(() => store.setFlightBlessing('ghost', 'real'), NotFoundError, 'ghost');
      });

      it('records each harness revision once, in order', async () => {
        await store.createFlight({ flight: 'f', branch: 'b', intended: 'play' });
        expect(await store.harnessRevisions('f')).toEqual([]);
        await store.recordHarness('f', 'abc123');
        await new Promise((r) => setTimeout(r, 2));
        await store.recordHarness('f', 'abc123+');
        await store.recordHarness('f', 'abc123');
        expect(await store.harnessRevisions('f')).toEqual(['abc123', 'abc123+']);
        await refused(() => store.recordHarness('ghost', 'x'), NotFoundError, 'ghost');
        await refused(() => store.harnessRevisions('ghost'), NotFoundError, 'ghost');
        await refused(() => store.recordHarness('f', ''), StoreError, 'harness');
      });

      it('deleteFlight removes the flight with its jobs, runvars, steps, harness and allocations only', async () => {
        for (const name of ['gone', 'kept']) {
          await store.createFlight({ flight: name, branch: 'b', intended: 'play' });
          await store.createJob(name, 'j1', 'rec', { a: '1' });
          await store.createJob(name, 'j2', 'rec');
          await store.recordHarness(name, 'rev');
          await store.markFlightStarted(name);
          await store.setRunvar(name, 'j1', 'out', 'x', { synth: true });
          const s = await store.startStep(name, 'j1', { testcase: 'ts-a', testid: 'a' });
          await store.finishStep(name, 'j1', s.stepno, { status: 'pass' });
          await store.upsertHost({ name: `h-${name}` });
          expect(await store.allocateHost(`h-${name}`, { flight: name, job: 'j2', ident: 'host' })).toBe(
            true,
          );
        }
        const keptBefore = {
          f: await store.getFlight('kept'),
          jobs: await store.listJobs('kept'),
          runvars: await store.listRunvars('kept'),
          steps: await store.listSteps('kept'),
        };
        await store.deleteFlight('gone');
        expect(await store.getFlight('gone')).toBeUndefined();
        expect(await store.getJob('gone', 'j1')).toBeUndefined();
        expect(await store.getRunvar('gone', 'j1', 'a')).toBeUndefined();
        await expect(store.listJobs('gone')).rejects.toThrow(NotFoundError);
        await expect(store.listSteps('gone')).rejects.toThrow(NotFoundError);
        expect((await store.listAllocations()).map((a) => a.host)).toEqual(['h-kept']);
        const log = await store.allocationLog({ host: 'h-gone' });
        expect(log.map((e) => e.event)).toEqual(['allocate', 'release']);
        expect(await store.getHost('h-gone')).toBeDefined();
        expect({
          f: await store.getFlight('kept'),
          jobs: await store.listJobs('kept'),
          runvars: await store.listRunvars('kept'),
          steps: await store.listSteps('kept'),
        }).toEqual(keptBefore);
        // The name is free again, with nothing left over from before.
        await store.createFlight({ flight: 'gone', branch: 'b', intended: 'play' });
        await store.createJob('gone', 'j1', 'rec');
        expect(await store.listRunvars('gone')).toEqual([]);
        expect(await store.harnessRevisions('gone')).toEqual([]);
        expect((await store.startStep('gone', 'j1', { testcase: 'ts-a', testid: 'a' })).stepno).toBe(1);
        await refused(() => store.deleteFlight('ghost'), NotFoundError, 'ghost');
      });
    });

    describe('jobs', () => {
      it('creates jobs queued with definition runvars, lists them by name', async () => {
        await store.createFlight({ flight: 'f', branch: 'b', intended: 'play' });
        const j = await store.createJob('f', 'test-amd64-amd64-xl', 'test-debian', {
          arch: 'amd64',
          buildjob: 'build-amd64',
        });
        expect(j).toEqual({
          flight: 'f',
          job: 'test-amd64-amd64-xl',
          recipe: 'test-debian',
          status: 'queued',
        });
        await store.createJob('f', 'build-amd64', 'build');
        expect(await store.getJob('f', 'test-amd64-amd64-xl')).toEqual(j);
        expect(await store.getJob('f', 'nope')).toBeUndefined();
        expect(await store.getJob('ghost', 'build-amd64')).toBeUndefined();
        expect((await store.listJobs('f')).map((x) => x.job)).toEqual(['build-amd64', 'test-amd64-amd64-xl']);
        expect(await store.listRunvars('f', 'test-amd64-amd64-xl')).toEqual([
          { flight: 'f', job: 'test-amd64-amd64-xl', name: 'arch', val: 'amd64', synth: false },
          { flight: 'f', job: 'test-amd64-amd64-xl', name: 'buildjob', val: 'build-amd64', synth: false },
        ]);
        await refused(() => store.listJobs('ghost'), NotFoundError, 'ghost');
      });

      it('accepts job names with dots, dashes, underscores and plus', async () => {
        await store.createFlight({ flight: 'f', branch: 'b', intended: 'play' });
        for (const ok of ['build-amd64', 'test-amd64-i386-xl-qemuu+x', 'a_b.c', '0day']) {
          await store.createJob('f', ok, 'rec');
        }
        expect(await store.listJobs('f')).toHaveLength(4);
      });

      it.each(['', 'a/b', '.hidden', '..', '-x', '+x', 'a b', 'job\n'])(
        'refuses the job name %j',
        async (bad) => {
          await store.createFlight({ flight: 'f', branch: 'b', intended: 'play' });
          await refused(() => store.createJob('f', bad, 'rec'), InvalidNameError, JSON.stringify(bad));
        },
      );

      it('refuses a bad runvar name and creates nothing', async () => {
        await store.createFlight({ flight: 'f', branch: 'b', intended: 'play' });
        await refused(
          () => store.createJob('f', 'j', 'rec', { good: '1', 'bad-name': '2' }),
          InvalidNameError,
          'bad-name',
        );
      });

      it('refuses an existing job, an unknown flight and an empty recipe', async () => {
        await flightWithJob('f');
        await refused(() => store.createJob('f', 'job', 'other'), ConflictError, 'job');
        await refused(() => store.createJob('ghost', 'job', 'rec'), NotFoundError, 'ghost');
        await refused(() => store.createJob('f', 'j2', ''), StoreError, 'recipe');
      });

      it('refuses new jobs once the flight is running, saying it is frozen', async () => {
        await flightWithJob('f');
        await store.markFlightStarted('f');
        await refused(
          () => store.createJob('f', 'late', 'rec'),
          FrozenError,
          'flight f is running: its definition is frozen',
        );
      });

      it('refuses new jobs in a flight blessed without running', async () => {
        await flightWithJob('f');
        await store.setFlightBlessing('f', 'play');
        await refused(() => store.createJob('f', 'late', 'rec'), FrozenError, 'frozen');
      });

      it('stores every job status', async () => {
        await store.createFlight({ flight: 'f', branch: 'b', intended: 'play' });
        for (const s of JOB_STATUSES) {
          await store.createJob('f', `j-${s}`, 'rec');
          expect(await store.setJobStatus('f', `j-${s}`, s)).toBe(s);
          expect((await store.getJob('f', `j-${s}`))!.status).toBe(s);
        }
      });

      it('applies the sticky rule to every pair of statuses', async () => {
        await store.createFlight({ flight: 'f', branch: 'b', intended: 'play' });
        let n = 0;
        for (const from of JOB_STATUSES) {
          for (const to of JOB_STATUSES) {
            const job = `j${n++}`;
            await store.createJob('f', job, 'rec');
            await store.setJobStatus('f', job, from);
            const want = nextJobStatus(from, to);
            expect(await store.setJobStatus('f', job, to), `${from} then ${to}`).toBe(want);
            expect((await store.getJob('f', job))!.status).toBe(want);
          }
        }
        expect(nextJobStatus('broken', 'pass')).toBe('broken');
        expect(nextJobStatus('aborted', 'fail')).toBe('aborted');
      });

      it('setJobStatus works on a running flight, refuses unknown jobs and statuses', async () => {
        await flightWithJob('f');
        await store.markFlightStarted('f');
        expect(await store.setJobStatus('f', 'job', 'running')).toBe('running');
        await refused(() => store.setJobStatus('f', 'ghost', 'pass'), NotFoundError, 'ghost');
        await refused(() => store.setJobStatus('nof', 'job', 'pass'), NotFoundError, 'nof');
        // biome-ignore lint/suspicious/noExplicitAny: a caller in plain JS can pass any word
        await refused(() => store.setJobStatus('f', 'job', 'bogus' as any), StoreError, 'bogus');
      });

      it('resetJob clears steps, execution runvars and hosts, keeps the definition, and queues the job', async () => {
        await flightWithJob('f', { arch: 'amd64' });
        await store.createJob('f', 'other', 'rec');
        await store.upsertHost({ name: 'h1' });
        await store.upsertHost({ name: 'h2' });
        await store.markFlightStarted('f');
        await store.setJobStatus('f', 'job', 'broken');
        await store.setRunvar('f', 'job', 'path_dist', 'x.tgz', { synth: true });
        await store.setRunvar('f', 'other', 'path_dist', 'y.tgz', { synth: true });
        await store.allocateHost('h1', { flight: 'f', job: 'job', ident: 'host' });
        await store.allocateHost('h2', { flight: 'f', job: 'other', ident: 'host' });
        for (const job of ['job', 'other']) {
          const s = await store.startStep('f', job, { testcase: 'ts-a', testid: 'a' });
          await store.finishStep('f', job, s.stepno, { status: 'broken' });
        }
        await store.resetJob('f', 'job');
        expect((await store.getJob('f', 'job'))!.status).toBe('queued');
        expect(await store.listSteps('f', 'job')).toEqual([]);
        expect(await store.listRunvars('f', 'job')).toEqual([
          { flight: 'f', job: 'job', name: 'arch', val: 'amd64', synth: false },
        ]);
        expect((await store.listAllocations()).map((a) => `${a.host}:${a.job}`)).toEqual(['h2:other']);
        expect((await store.allocationLog({ host: 'h1' })).map((e) => e.event)).toEqual([
          'allocate',
          'release',
        ]);
        // The other job is untouched, the flight stays running, and steps number from 1 again.
        expect(await store.listSteps('f', 'other')).toHaveLength(1);
        expect(await store.getRunvar('f', 'other', 'path_dist')).toBeDefined();
        expect((await store.getFlight('f'))!.blessing).toBe('running');
        expect((await store.startStep('f', 'job', { testcase: 'ts-a', testid: 'a' })).stepno).toBe(1);
        await refused(() => store.resetJob('f', 'ghost'), NotFoundError, 'ghost');
        await refused(() => store.resetJob('nof', 'job'), NotFoundError, 'nof');
      });
    });

    describe('runvars', () => {
      it('sets, reads and lists definition runvars while constructing', async () => {
        await flightWithJob('f');
        await store.createJob('f', 'b', 'rec');
        await store.setRunvar('f', 'job', 'tree_xen', 'git://x', { synth: false });
        await store.setRunvar('f', 'job', 'arch', 'amd64', { synth: false });
        await store.setRunvar('f', 'b', 'empty', '', { synth: false });
        await store.setRunvar('f', 'job', 'arch', 'arm64', { synth: false });
        expect(await store.getRunvar('f', 'job', 'arch')).toEqual({
          flight: 'f',
          job: 'job',
          name: 'arch',
          val: 'arm64',
          synth: false,
        });
        expect(await store.getRunvar('f', 'job', 'nope')).toBeUndefined();
        expect(await store.getRunvar('f', 'ghost', 'arch')).toBeUndefined();
        expect((await store.listRunvars('f', 'job')).map((r) => r.name)).toEqual(['arch', 'tree_xen']);
        expect((await store.listRunvars('f')).map((r) => `${r.job}.${r.name}=${r.val}`)).toEqual([
          'b.empty=',
          'job.arch=arm64',
          'job.tree_xen=git://x',
        ]);
      });

      it('writes execution runvars at any time, definition runvars only while constructing', async () => {
        await flightWithJob('f', { arch: 'amd64' });
        await store.markFlightStarted('f');
        await store.setRunvar('f', 'job', 'host', 'h1', { synth: true });
        expect(await store.getRunvar('f', 'job', 'host')).toMatchObject({ val: 'h1', synth: true });
        await store.setFlightBlessing('f', 'play');
        await store.setRunvar('f', 'job', 'host_ip', '192.0.2.1', { synth: true });
        await store.setFlightBlessing('f', 'running');
        await refused(
          () => store.setRunvar('f', 'job', 'arch', 'i386', { synth: false }),
          FrozenError,
          'flight f is running: its definition is frozen',
        );
        await refused(
          () => store.setRunvar('f', 'job', 'brandnew', 'x', { synth: false }),
          FrozenError,
          'frozen',
        );
        await refused(() => store.deleteRunvar('f', 'job', 'arch', { synth: false }), FrozenError, 'frozen');
        // Calling a definition runvar "execution" does not get it deleted behind the freeze.
        await refused(() => store.deleteRunvar('f', 'job', 'arch', { synth: true }), FrozenError, 'frozen');
        await store.deleteRunvar('f', 'job', 'host', { synth: true });
        expect(await store.getRunvar('f', 'job', 'host')).toBeUndefined();
      });

      it('keeps one value per name: a write of the other kind replaces it', async () => {
        await flightWithJob('f');
        await store.setRunvar('f', 'job', 'v', 'def', { synth: false });
        await store.setRunvar('f', 'job', 'v', 'exe', { synth: true });
        expect(await store.listRunvars('f', 'job')).toEqual([
          { flight: 'f', job: 'job', name: 'v', val: 'exe', synth: true },
        ]);
        await store.setRunvar('f', 'job', 'v', 'def2', { synth: false });
        expect(await store.listRunvars('f', 'job')).toEqual([
          { flight: 'f', job: 'job', name: 'v', val: 'def2', synth: false },
        ]);
        await store.markFlightStarted('f');
        await store.setRunvar('f', 'job', 'v', 'exe2', { synth: true });
        expect(await store.listRunvars('f', 'job')).toEqual([
          { flight: 'f', job: 'job', name: 'v', val: 'exe2', synth: true },
        ]);
      });

      it('deletes runvars while constructing; a missing one is named', async () => {
        await flightWithJob('f', { a: '1', b: '2' });
        await store.deleteRunvar('f', 'job', 'a', { synth: false });
        expect((await store.listRunvars('f', 'job')).map((r) => r.name)).toEqual(['b']);
        await refused(() => store.deleteRunvar('f', 'job', 'a', { synth: false }), NotFoundError, "'a'");
      });

      it.each(['', '1abc', 'a-b', 'a b', 'a.b', 'x$'])('refuses the runvar name %j', async (bad) => {
        await flightWithJob('f');
        await refused(
          () => store.setRunvar('f', 'job', bad, 'v', { synth: false }),
          InvalidNameError,
          JSON.stringify(bad),
        );
        await refused(
          () => store.setRunvar('f', 'job', bad, 'v', { synth: true }),
          InvalidNameError,
          JSON.stringify(bad),
        );
      });

      it('accepts identifier runvar names', async () => {
        await flightWithJob('f');
        for (const ok of ['_x', 'A1', 'pause_on_fail', 'built_revision_xen']) {
          await store.setRunvar('f', 'job', ok, 'v', { synth: true });
        }
        expect(await store.listRunvars('f', 'job')).toHaveLength(4);
      });

      it('names the unknown flight or job', async () => {
        await flightWithJob('f');
        await refused(() => store.setRunvar('f', 'ghost', 'a', 'v', { synth: true }), NotFoundError, 'ghost');
        await refused(() => store.setRunvar('nof', 'job', 'a', 'v', { synth: true }), NotFoundError, 'nof');
        await refused(() => store.deleteRunvar('f', 'ghost', 'a', { synth: true }), NotFoundError, 'ghost');
        await refused(() => store.listRunvars('f', 'ghost'), NotFoundError, 'ghost');
        await refused(() => store.listRunvars('nof'), NotFoundError, 'nof');
      });
    });

    describe('steps', () => {
      it('stepPassedOnBranch: a pass of the job and testid in an older flight of the branch', async () => {
        // old (br): run passes; mid (br): run fails; other (br2): sole passes; now (br): both fail.
        for (const [name, branch, run, sole] of [
          ['old', 'br', 'pass', 'fail'],
          ['mid', 'br', 'fail', 'fail'],
          ['other', 'br2', 'fail', 'pass'],
          ['now', 'br', 'fail', 'fail'],
        ] as const) {
          await store.createFlight({ flight: name, branch, intended: 'play' });
          await store.createJob(name, 'job', 'rec');
          const a = await store.startStep(name, 'job', { testcase: 'ts-run', testid: 'run' });
          await store.finishStep(name, 'job', a.stepno, { status: run });
          const b = await store.startStep(name, 'job', { testcase: 'ts-sole', testid: (n) => `sole(${n})` });
          await store.finishStep(name, 'job', b.stepno, { status: sole });
        }
        const now = (await store.getFlight('now'))!.seq;
        const old = (await store.getFlight('old'))!.seq;
        expect(await store.stepPassedOnBranch('br', 'job', ['run'], now)).toBe(true);
        expect(await store.stepPassedOnBranch('br', 'job', ['run'])).toBe(true);
        // Only flights before the one named count.
        expect(await store.stepPassedOnBranch('br', 'job', ['run'], old)).toBe(false);
        // Another branch's pass does not count; another job's neither.
        expect(await store.stepPassedOnBranch('br', 'job', ['sole(2)', 'sole'], now)).toBe(false);
        expect(await store.stepPassedOnBranch('br2', 'job', ['sole(2)', 'sole'])).toBe(true);
        expect(await store.stepPassedOnBranch('br2', 'job', ['sole'])).toBe(false);
        expect(await store.stepPassedOnBranch('br', 'nojob', ['run'])).toBe(false);
        expect(await store.stepPassedOnBranch('br', 'job', [])).toBe(false);
        await expect(store.stepPassedOnBranch('br', 'job', ['run'], 1.5)).rejects.toThrow(StoreError);
      });

      it('numbers steps 1, 2, 3… per job and records them running', async () => {
        await flightWithJob('f');
        await store.createJob('f', 'b', 'rec');
        await store.markFlightStarted('f');
        const s1 = await store.startStep('f', 'job', {
          testcase: 'ts-hosts-allocate',
          testid: 'hosts-allocate',
          started: 1000,
        });
        const s2 = await store.startStep('f', 'job', { testcase: 'ts-build', testid: 'build' });
        const b1 = await store.startStep('f', 'b', { testcase: 'ts-build', testid: 'build' });
        const s3 = await store.startStep('f', 'job', { testcase: 'ts-logs-capture', testid: 'logs-capture' });
        expect([s1.stepno, s2.stepno, s3.stepno, b1.stepno]).toEqual([1, 2, 3, 1]);
        expect(s1).toEqual({
          flight: 'f',
          job: 'job',
          stepno: 1,
          testcase: 'ts-hosts-allocate',
          testid: 'hosts-allocate',
          status: 'running',
          started: 1000,
          finished: null,
          logPath: null,
        });
        expect(s2.started).toBeGreaterThan(0);
        expect(await store.listSteps('f', 'job')).toEqual([s1, s2, s3]);
        expect((await store.listSteps('f')).map((s) => `${s.job}/${s.stepno}`)).toEqual([
          'b/1',
          'job/1',
          'job/2',
          'job/3',
        ]);
      });

      it('gives a testid function its step number (for `*` testids)', async () => {
        await flightWithJob('f');
        await store.startStep('f', 'job', { testcase: 'ts-a', testid: 'a' });
        const s = await store.startStep('f', 'job', {
          testcase: 'ts-host-install',
          testid: (n) => `host-install(${n})`,
        });
        expect(s.testid).toBe('host-install(2)');
        expect((await store.listSteps('f', 'job'))[1]!.testid).toBe('host-install(2)');
      });

      it('finishes a step with its status, time, log path and a corrected testid', async () => {
        await flightWithJob('f');
        const s = await store.startStep('f', 'job', { testcase: 'ts-a', testid: 'a', started: 1000 });
        await store.finishStep('f', 'job', s.stepno, {
          status: 'fail',
          finished: 2000,
          logPath: 'f/job/1.ts-a.log',
        });
        expect((await store.listSteps('f', 'job'))[0]).toMatchObject({
          status: 'fail',
          started: 1000,
          finished: 2000,
          logPath: 'f/job/1.ts-a.log',
          testid: 'a',
        });
        const t = await store.startStep('f', 'job', { testcase: 'ts-b', testid: 'b' });
        const t0 = Date.now();
        await store.finishStep('f', 'job', t.stepno, { status: 'pass', testid: 'b/x' });
        const got = (await store.listSteps('f', 'job'))[1]!;
        expect(got).toMatchObject({ status: 'pass', testid: 'b/x', logPath: null });
        expect(got.finished).toBeGreaterThanOrEqual(t0);
      });

      it('finishes steps with every final status', async () => {
        await flightWithJob('f');
        for (const status of STEP_STATUSES.filter((s) => s !== 'running')) {
          const s = await store.startStep('f', 'job', { testcase: 'ts-a', testid: status });
          await store.finishStep('f', 'job', s.stepno, { status });
        }
        expect((await store.listSteps('f', 'job')).map((s) => s.status)).toEqual(
          STEP_STATUSES.filter((s) => s !== 'running'),
        );
      });

      it('refuses unknown jobs and steps, bad statuses and empty testcase or testid', async () => {
        await flightWithJob('f');
        await store.startStep('f', 'job', { testcase: 'ts-a', testid: 'a' });
        await refused(
          () => store.startStep('f', 'ghost', { testcase: 'ts-a', testid: 'a' }),
          NotFoundError,
          'ghost',
        );
        await refused(
          () => store.startStep('nof', 'job', { testcase: 'ts-a', testid: 'a' }),
          NotFoundError,
          'nof',
        );
        await refused(() => store.finishStep('f', 'job', 9, { status: 'pass' }), NotFoundError, '9');
        await refused(() => store.finishStep('f', 'ghost', 1, { status: 'pass' }), NotFoundError, 'ghost');
        await refused(() => store.finishStep('f', 'job', 1, { status: 'running' }), StoreError, 'running');
        // biome-ignore lint/suspicious/noExplicitAny: a caller in plain JS can pass any word
        await refused(() => store.finishStep('f', 'job', 1, { status: 'meh' as any }), StoreError, 'meh');
        await refused(
          () => store.startStep('f', 'job', { testcase: '', testid: 'a' }),
          StoreError,
          'testcase',
        );
        await refused(
          () => store.startStep('f', 'job', { testcase: 'ts-a', testid: () => '' }),
          StoreError,
          'testid',
        );
        await refused(() => store.listSteps('f', 'ghost'), NotFoundError, 'ghost');
        await refused(() => store.listSteps('nof'), NotFoundError, 'nof');
      });

      it('gives back a testid function’s own error, recording no step and leaving the job free', async () => {
        await flightWithJob('f');
        class Mine extends Error {}
        const boom = new Mine('no such ident');
        await expect(
          store.startStep('f', 'job', {
            testcase: 'ts-a',
            testid: () => {
              throw boom;
            },
          }),
        ).rejects.toBe(boom);
        expect(await store.listSteps('f', 'job')).toEqual([]);
        expect((await store.startStep('f', 'job', { testcase: 'ts-a', testid: 'a' })).stepno).toBe(1);
        expect(await store.setJobStatus('f', 'job', 'running')).toBe('running');
      });

      it('numbers steps without gaps or repeats when two connections start steps at once', async () => {
        const other = await second();
        await flightWithJob('f');
        const stores = other ? [store, other] : [store, store];
        const started = await Promise.all(
          Array.from({ length: 40 }, (_v, i) =>
            stores[i % 2]!.startStep('f', 'job', { testcase: 'ts-a', testid: (n) => `a(${n})` }),
          ),
        );
        const nos = started.map((s) => s.stepno).sort((a, b) => a - b);
        expect(nos).toEqual(Array.from({ length: 40 }, (_v, i) => i + 1));
        for (const s of started) expect(s.testid).toBe(`a(${s.stepno})`);
      });
    });

    describe('hosts', () => {
      it('creates and updates hosts; omitted fields keep their value, null clears', async () => {
        const h = await store.upsertHost({ name: 'h1', mac: '52:54:00:AB:CD:EF', ip: '192.0.2.10' });
        expect(h).toEqual({ name: 'h1', mac: '52:54:00:ab:cd:ef', ip: '192.0.2.10', flags: [], props: {} });
        expect(await store.upsertHost({ name: 'h1', ip: '192.0.2.11' })).toMatchObject({
          mac: '52:54:00:ab:cd:ef',
          ip: '192.0.2.11',
        });
        expect(await store.upsertHost({ name: 'h1', mac: null })).toMatchObject({
          mac: null,
          ip: '192.0.2.11',
        });
        expect(await store.upsertHost({ name: 'h2.lab.example', ip: '::1' })).toMatchObject({
          mac: null,
          ip: '::1',
        });
        expect(await store.getHost('h1')).toEqual({
          name: 'h1',
          mac: null,
          ip: '192.0.2.11',
          flags: [],
          props: {},
        });
        expect(await store.getHost('nope')).toBeUndefined();
        expect((await store.listHosts()).map((x) => x.name)).toEqual(['h1', 'h2.lab.example']);
      });

      it.each(['', 'a_b', '-a', 'a-', 'a..b', '.a', 'a/b', 'a b', 'x'.repeat(64)])(
        'refuses the host name %j',
        async (bad) => {
          await refused(() => store.upsertHost({ name: bad }), InvalidNameError, JSON.stringify(bad));
        },
      );

      it('refuses a bad MAC or IP, and a MAC another host has', async () => {
        await store.upsertHost({ name: 'h1', mac: '52:54:00:00:00:01' });
        await refused(() => store.upsertHost({ name: 'h2', mac: '52:54:00:00:00' }), StoreError, 'h2');
        await refused(() => store.upsertHost({ name: 'h2', ip: '300.1.1.1' }), StoreError, '300.1.1.1');
        await refused(() => store.upsertHost({ name: 'h2', mac: '52-54-00-00-00-01' }), ConflictError, 'h1');
        await refused(() => store.upsertHost({ name: 'h1', ip: 'h1.example' }), StoreError, 'h1.example');
      });

      it('adds and removes flags, idempotently, sorted', async () => {
        await store.upsertHost({ name: 'h1' });
        await store.setHostFlags('h1', ['purpose-test', 'arch-amd64', 'equiv-1']);
        await store.setHostFlags('h1', ['arch-amd64', 'blessed-play'], ['equiv-1', 'not-there']);
        expect((await store.getHost('h1'))!.flags).toEqual(['arch-amd64', 'blessed-play', 'purpose-test']);
        await refused(() => store.setHostFlags('h1', ['ok', 'bad flag']), InvalidNameError, 'bad flag');
        await refused(() => store.setHostFlags('h1', ['!neg']), InvalidNameError, '!neg');
        await refused(() => store.setHostFlags('ghost', ['a']), NotFoundError, 'ghost');
        await refused(() => store.setHostFlags('h1', ['x'], ['x']), StoreError, 'x');
      });

      it('sets, replaces and deletes properties', async () => {
        await store.upsertHost({ name: 'h1' });
        await store.setHostProp('h1', 'PowerMethod', 'qemu');
        await store.setHostProp('h1', 'SshHostKey', 'ssh-ed25519 AAAA');
        await store.setHostProp('h1', 'PowerMethod', 'ipmi');
        expect((await store.getHost('h1'))!.props).toEqual({
          PowerMethod: 'ipmi',
          SshHostKey: 'ssh-ed25519 AAAA',
        });
        await store.setHostProp('h1', 'SshHostKey', null);
        await store.setHostProp('h1', 'NeverSet', null);
        expect((await store.getHost('h1'))!.props).toEqual({ PowerMethod: 'ipmi' });
        await refused(() => store.setHostProp('h1', 'bad-prop', 'x'), InvalidNameError, 'bad-prop');
        await refused(() => store.setHostProp('ghost', 'P', 'x'), NotFoundError, 'ghost');
      });

      it('lists hosts with their own flags and properties', async () => {
        await store.upsertHost({ name: 'b' });
        await store.upsertHost({ name: 'a' });
        await store.setHostFlags('a', ['f1']);
        await store.setHostFlags('b', ['f2', 'f1']);
        await store.setHostProp('b', 'P', 'v');
        expect(await store.listHosts()).toEqual([
          { name: 'a', mac: null, ip: null, flags: ['f1'], props: {} },
          { name: 'b', mac: null, ip: null, flags: ['f1', 'f2'], props: { P: 'v' } },
        ]);
      });

      it('deletes a free host with its flags and properties, keeps its allocation history, refuses a held one', async () => {
        await flightWithJob('f');
        await store.upsertHost({ name: 'h1' });
        await store.setHostFlags('h1', ['x']);
        await store.setHostProp('h1', 'P', 'v');
        await store.allocateHost('h1', { flight: 'f', job: 'job', ident: 'host' });
        await refused(() => store.deleteHost('h1'), ConflictError, 'f/job');
        await store.releaseHost('h1');
        await store.deleteHost('h1');
        expect(await store.getHost('h1')).toBeUndefined();
        expect(await store.listHosts()).toEqual([]);
        expect((await store.allocationLog({ host: 'h1' })).map((e) => e.event)).toEqual([
          'allocate',
          'release',
        ]);
        // Recreated, it starts bare.
        expect(await store.upsertHost({ name: 'h1' })).toEqual({
          name: 'h1',
          mac: null,
          ip: null,
          flags: [],
          props: {},
        });
        await refused(() => store.deleteHost('ghost'), NotFoundError, 'ghost');
      });

      it('records host events; lists them oldest first, per host, since a time; keeps them after the host goes', async () => {
        await store.upsertHost({ name: 'h1' });
        const a = await store.recordHostEvent('h1', { kind: 'dhcp', detail: 'ack 10.215.0.10', at: 1000 });
        const other = await store.recordHostEvent('h2', { kind: 'fetch', detail: 'http vmlinuz', at: 1500 });
        const b = await store.recordHostEvent('h1', { kind: 'progress', detail: 'booted', at: 2000 });
        const c = await store.recordHostEvent('h1', { kind: 'progress', detail: 'ssh-ready', at: 2000 });
        expect(a).toEqual({ id: a.id, host: 'h1', kind: 'dhcp', detail: 'ack 10.215.0.10', at: 1000 });
        expect(b.id).toBeGreaterThan(a.id);
        expect(c.id).toBeGreaterThan(b.id);
        expect(await store.listHostEvents('h1')).toEqual([a, b, c]);
        expect(await store.listHostEvents('h1', { since: 2000 })).toEqual([b, c]);
        expect(await store.listHostEvents('h1', { since: 2001 })).toEqual([]);
        expect(await store.listHostEvents('h2')).toEqual([other]);
        const t0 = Date.now();
        const d = await store.recordHostEvent('h1', { kind: 'refused', detail: 'x'.repeat(5000) });
        expect(d.at).toBeGreaterThanOrEqual(t0);
        expect(d.detail.length).toBeLessThan(2100);
        await store.deleteHost('h1');
        expect(await store.listHostEvents('h1')).toEqual([a, b, c, d]);
        const s2 = await second();
        if (s2) expect(await s2.listHostEvents('h1', { since: 1500 })).toEqual([b, c, d]);
      });

      it('refuses a host event with a bad host name, kind or time, saying which', async () => {
        await expect(store.recordHostEvent('bad name', { kind: 'dhcp', detail: '' })).rejects.toThrow(
          /host name/,
        );
        await expect(store.recordHostEvent('h1', { kind: 'Bad Kind', detail: '' })).rejects.toThrow(
          /host event kind/,
        );
        await expect(store.recordHostEvent('h1', { kind: 'dhcp', detail: '', at: -1 })).rejects.toThrow(
          /milliseconds/,
        );
        expect(await store.listHostEvents('h1')).toEqual([]);
      });
    });

    describe('allocations', () => {
      beforeEach(async () => {
        await store.createFlight({ flight: 'f', branch: 'b', intended: 'play' });
        for (const j of ['a', 'b']) await store.createJob('f', j, 'rec');
        for (const h of ['h1', 'h2', 'h3']) await store.upsertHost({ name: h });
      });

      it('gives a free host to one job; the holder may ask again, nobody else gets it', async () => {
        const t0 = Date.now();
        expect(await store.allocateHost('h1', { flight: 'f', job: 'a', ident: 'host' })).toBe(true);
        expect(await store.allocateHost('h1', { flight: 'f', job: 'a', ident: 'host' })).toBe(true);
        expect(await store.allocateHost('h1', { flight: 'f', job: 'b', ident: 'host' })).toBe(false);
        expect(await store.allocateHost('h1', { flight: 'f', job: 'a', ident: 'src_host' })).toBe(false);
        const all = await store.listAllocations();
        expect(all).toEqual([
          { host: 'h1', flight: 'f', job: 'a', ident: 'host', allocated: all[0]!.allocated },
        ]);
        expect(all[0]!.allocated).toBeGreaterThanOrEqual(t0);
        const log = await store.allocationLog();
        expect(log).toHaveLength(1);
        expect(log[0]).toMatchObject({ host: 'h1', flight: 'f', job: 'a', ident: 'host', event: 'allocate' });
      });

      it('releases only for the holder, or for anyone when no owner is given, logging each release', async () => {
        await store.allocateHost('h1', { flight: 'f', job: 'a', ident: 'host' });
        await store.releaseHost('h1', { flight: 'f', job: 'b' });
        expect(await store.listAllocations()).toHaveLength(1);
        await store.releaseHost('h1', { flight: 'f', job: 'a' });
        expect(await store.listAllocations()).toEqual([]);
        await store.releaseHost('h1');
        expect(await store.allocateHost('h1', { flight: 'f', job: 'b', ident: 'host' })).toBe(true);
        await store.releaseHost('h1');
        expect(await store.listAllocations()).toEqual([]);
        expect((await store.allocationLog()).map((e) => `${e.event} ${e.job}`)).toEqual([
          'allocate a',
          'release a',
          'allocate b',
          'release b',
        ]);
      });

      it('releases all of one job’s hosts', async () => {
        await store.allocateHost('h1', { flight: 'f', job: 'a', ident: 'src_host' });
        await store.allocateHost('h2', { flight: 'f', job: 'a', ident: 'dst_host' });
        await store.allocateHost('h3', { flight: 'f', job: 'b', ident: 'host' });
        await store.releaseJobHosts('f', 'a');
        expect((await store.listAllocations()).map((a) => a.host)).toEqual(['h3']);
        await store.releaseJobHosts('f', 'a');
        expect((await store.allocationLog()).filter((e) => e.event === 'release').map((e) => e.host)).toEqual(
          ['h1', 'h2'],
        );
        await refused(() => store.releaseJobHosts('f', 'ghost'), NotFoundError, 'ghost');
      });

      it('refuses unknown hosts and jobs and bad idents', async () => {
        await refused(
          () => store.allocateHost('ghost', { flight: 'f', job: 'a', ident: 'host' }),
          NotFoundError,
          'ghost',
        );
        await refused(
          () => store.allocateHost('h1', { flight: 'f', job: 'ghost', ident: 'host' }),
          NotFoundError,
          'ghost',
        );
        await refused(
          () => store.allocateHost('h1', { flight: 'nof', job: 'a', ident: 'host' }),
          NotFoundError,
          'nof',
        );
        await refused(
          () => store.allocateHost('h1', { flight: 'f', job: 'a', ident: 'bad ident' }),
          InvalidNameError,
          'bad ident',
        );
        await refused(() => store.releaseHost('ghost'), NotFoundError, 'ghost');
      });

      it('shows the log oldest first, by host, and the newest N with a limit', async () => {
        for (let i = 0; i < 3; i++) {
          await store.allocateHost('h1', { flight: 'f', job: 'a', ident: 'host' });
          await store.allocateHost('h2', { flight: 'f', job: 'b', ident: 'host' });
          await store.releaseHost('h1');
          await store.releaseHost('h2');
        }
        const all = await store.allocationLog();
        expect(all).toHaveLength(12);
        expect(all.map((e) => e.id)).toEqual([...all.map((e) => e.id)].sort((x, y) => x - y));
        expect(all[0]!.at).toBeLessThanOrEqual(all[11]!.at);
        expect(await store.allocationLog({ limit: 3 })).toEqual(all.slice(9));
        expect(await store.allocationLog({ host: 'h2' })).toEqual(all.filter((e) => e.host === 'h2'));
        expect(await store.allocationLog({ host: 'h2', limit: 2 })).toEqual(
          all.filter((e) => e.host === 'h2').slice(4),
        );
        expect(await store.allocationLog({ host: 'nobody' })).toEqual([]);
        expect(checkNoOverlap(all).holds).toBe(6);
      });
    });

    describe('bisections', () => {
      const key = { branch: 'br', job: 'test-x', testid: 'run-tests' };

      it('a request makes one pending bisection per open (branch, job, testid); a finished one makes room for the next', async () => {
        const t0 = Date.now();
        const a = await store.requestBisection({ ...key, requestedFlight: '12' });
        expect(a.created).toBe(true);
        expect(a.bisection).toMatchObject({
          ...key,
          requestedFlight: '12',
          state: 'pending',
          failureFlight: null,
          trees: {},
          hosts: {},
          code: null,
          culpritParents: [],
          confirmed: null,
          started: null,
        });
        expect(a.bisection.created).toBeGreaterThanOrEqual(t0);
        const again = await store.requestBisection({ ...key, requestedFlight: '13' });
        expect(again).toEqual({ bisection: a.bisection, created: false });
        const other = await store.requestBisection({ ...key, testid: 'other' });
        expect(other.created).toBe(true);
        expect(other.bisection.id).not.toBe(a.bisection.id);
        await store.updateBisection(a.bisection.id, { state: 'running' });
        expect((await store.requestBisection(key)).bisection.id).toBe(a.bisection.id);
        await store.updateBisection(a.bisection.id, { state: 'done', code: 4 });
        const next = await store.requestBisection(key);
        expect(next.created).toBe(true);
        expect(next.bisection.requestedFlight).toBeNull();
        expect((await store.listBisections(key)).map((b) => b.id)).toEqual([
          next.bisection.id,
          a.bisection.id,
        ]);
        expect((await store.listBisections({ state: 'pending' })).map((b) => b.id)).toEqual([
          next.bisection.id,
          other.bisection.id,
        ]);
        expect(await store.listBisections({ limit: 1 })).toHaveLength(1);
        expect(await store.listBisections({ branch: 'nope' })).toEqual([]);
      });

      it('two connections asking at once get the same bisection', async () => {
        const other = (await second()) ?? store;
        const got = await Promise.all(
          Array.from({ length: 6 }, (_v, i) => (i % 2 ? other : store).requestBisection(key)),
        );
        expect(new Set(got.map((g) => g.bisection.id)).size).toBe(1);
        expect(got.filter((g) => g.created)).toHaveLength(1);
      });

      it('records the ends, the verdict and the confirmation, and reads them back', async () => {
        const { bisection: b } = await store.requestBisection(key);
        const u = await store.updateBisection(b.id, {
          state: 'done',
          failureFlight: '20',
          basisFlight: '18',
          failureTuple: 'linux=bb,xen=aa',
          basisTuple: 'linux=b0,xen=a0',
          trees: { xen: '/srv/xen.git', linux: 'https://example.invalid/linux.git' },
          hosts: { host: 'h1' },
          parallel: 2,
          code: 4,
          wording: 'Found and reproduced problem changeset',
          detail: 'bug introduced in xen at aa',
          culpritTree: 'xen',
          culpritRev: 'aa',
          culpritParents: ['a9', 'a8'],
          confidence: 0.987654321,
          started: 1000,
          finished: 2000,
        });
        expect(u).toMatchObject({
          state: 'done',
          failureFlight: '20',
          hosts: { host: 'h1' },
          parallel: 2,
          code: 4,
          culpritParents: ['a9', 'a8'],
          confidence: 0.987654321,
          confirmed: null,
          finished: 2000,
        });
        expect(await store.getBisection(b.id)).toEqual(u);
        expect((await store.updateBisection(b.id, { confirmed: false })).confirmed).toBe(false);
        expect((await store.updateBisection(b.id, { confirmed: true })).confirmed).toBe(true);
        expect(
          (await store.updateBisection(b.id, { confirmed: null, culpritParents: [] })).confirmed,
        ).toBeNull();
        expect(await store.getBisection(b.id + 1000)).toBeUndefined();
      });

      it('refuses bad updates and unknown bisections, changing nothing', async () => {
        const { bisection: b } = await store.requestBisection(key);
        await refused(() => store.updateBisection(b.id, { code: 5 }), StoreError, /code must be one of 4, 8/);
        await refused(() => store.updateBisection(b.id, { confidence: 1.5 }), StoreError, /between 0 and 1/);
        await refused(() => store.updateBisection(b.id, { parallel: 0 }), StoreError, /parallel/);
        await refused(
          () => store.updateBisection(b.id, { state: 'finished' as never }),
          StoreError,
          /invalid bisection state/,
        );
        await refused(
          () => store.updateBisection(b.id, { bogus: 1 } as never),
          StoreError,
          /no field "bogus"/,
        );
        await refused(
          () => store.updateBisection(b.id + 7, { state: 'done' }),
          NotFoundError,
          /no bisection/,
        );
        await refused(() => store.requestBisection({ ...key, job: 'a/b' }), InvalidNameError, /job name/);
        await refused(
          () => store.addBisectionFlight(b.id + 7, { flight: '1', role: 'test', tuple: 'x=1' }),
          NotFoundError,
          /no bisection/,
        );
      });

      it('keeps the flights of a bisection with their tuples and results, in the order added', async () => {
        const { bisection: b } = await store.requestBisection(key);
        await store.addBisectionFlight(b.id, {
          flight: '18',
          role: 'basis',
          tuple: 'xen=a0',
          result: 'pass',
          at: 100,
        });
        await store.addBisectionFlight(b.id, {
          flight: '20',
          role: 'failure',
          tuple: 'xen=aa',
          result: 'fail',
          at: 200,
        });
        const t = await store.addBisectionFlight(b.id, {
          flight: '21',
          role: 'test',
          tuple: 'xen=a5',
          reason: 'bisect',
        });
        expect(t).toMatchObject({ bisection: b.id, flight: '21', result: null, at: null, reason: 'bisect' });
        await refused(
          () => store.addBisectionFlight(b.id, { flight: '21', role: 'test', tuple: 'xen=a6' }),
          ConflictError,
          /already has flight 21/,
        );
        await refused(
          () => store.addBisectionFlight(b.id, { flight: '22', role: 'boss' as never, tuple: 'xen=a6' }),
          StoreError,
          /role/,
        );
        await refused(
          () => store.setBisectionFlightResult(b.id, '21', 'maybe' as never),
          StoreError,
          /invalid bisection result/,
        );
        await refused(
          () => store.setBisectionFlightResult(b.id, '99', 'pass'),
          NotFoundError,
          /no flight 99/,
        );
        await store.setBisectionFlightResult(b.id, '21', 'fail', 300);
        const list = await store.listBisectionFlights(b.id);
        expect(list.map((f) => [f.flight, f.role, f.tuple, f.result, f.at])).toEqual([
          ['18', 'basis', 'xen=a0', 'pass', 100],
          ['20', 'failure', 'xen=aa', 'fail', 200],
          ['21', 'test', 'xen=a5', 'fail', 300],
        ]);
        const { bisection: empty } = await store.requestBisection({ ...key, testid: 'z' });
        expect(await store.listBisectionFlights(empty.id)).toEqual([]);
        await expect(store.listBisectionFlights(empty.id + 50)).rejects.toThrow(NotFoundError);
      });
    });

    describe('push gate state', () => {
      const run = (over: Partial<NewGateRun> = {}): NewGateRun => ({
        branch: 'xen-unstable',
        tree: 'xen',
        kind: 'test',
        old: 'a'.repeat(40),
        new: 'b'.repeat(40),
        revisions: { xen: 'b'.repeat(40), linux: 'c'.repeat(40) },
        runner: '1@here',
        ...over,
      });

      it('branch controls: defaults, changes field by field, listed by branch, force-push taken once', async () => {
        expect(await store.getBranchControl('xen-unstable')).toEqual({
          branch: 'xen-unstable',
          stopped: false,
          blockPush: false,
          forcePush: null,
          note: '',
          updated: null,
        });
        expect(await store.listBranchControls()).toEqual([]);
        const t0 = Date.now();
        const stopped = await store.setBranchControl('xen-unstable', { stopped: true, note: 'lab move' });
        expect(stopped).toMatchObject({ stopped: true, blockPush: false, forcePush: null, note: 'lab move' });
        expect(stopped.updated).toBeGreaterThanOrEqual(t0);
        await store.setBranchControl('xen-unstable', { blockPush: true, forcePush: 'f'.repeat(40) });
        await store.setBranchControl('linux', { blockPush: true });
        expect(await store.getBranchControl('xen-unstable')).toMatchObject({
          stopped: true,
          blockPush: true,
          forcePush: 'f'.repeat(40),
          note: 'lab move',
        });
        expect((await store.listBranchControls()).map((c) => c.branch)).toEqual(['linux', 'xen-unstable']);
        expect(await store.takeForcePush('xen-unstable', 'e'.repeat(40))).toBe(false);
        expect(await store.takeForcePush('xen-unstable', 'f'.repeat(40))).toBe(true);
        expect(await store.takeForcePush('xen-unstable', 'f'.repeat(40))).toBe(false);
        expect((await store.getBranchControl('xen-unstable')).forcePush).toBeNull();
        expect(await store.takeForcePush('never-set', 'f'.repeat(40))).toBe(false);
        await refused(
          () => store.setBranchControl('bad branch', { stopped: true }),
          InvalidNameError,
          'bad branch',
        );
        await refused(
          () => store.setBranchControl('xen-unstable', { forcePush: 'two words' }),
          StoreError,
          'force-push revision',
        );
        await refused(
          () => store.setBranchControl('xen-unstable', { colour: 'red' } as never),
          StoreError,
          'colour',
        );
      });

      it('gate runs: one open run per branch, changes until finished, newest first, tested revisions found', async () => {
        const r1 = await store.startGateRun(run());
        expect(r1).toMatchObject({
          branch: 'xen-unstable',
          kind: 'test',
          flight: null,
          reruns: [],
          finished: null,
          completed: false,
          outcome: null,
          detail: '',
          revisions: { xen: 'b'.repeat(40), linux: 'c'.repeat(40) },
        });
        await refused(
          () => store.startGateRun(run({ runner: '2@there' })),
          ConflictError,
          /gate run \d+ going on/,
        );
        // Other branches are not held up.
        const other = await store.startGateRun(run({ branch: 'linux', tree: 'linux' }));
        await store.updateGateRun(r1.id, { flight: '17' });
        await store.updateGateRun(r1.id, { addRerun: '18' });
        await store.updateGateRun(r1.id, { addRerun: '19', completed: true });
        expect(await store.findTestedRun('xen-unstable', 'xen', 'b'.repeat(40))).toMatchObject({ id: r1.id });
        const done = await store.updateGateRun(r1.id, {
          outcome: 'pushed',
          detail: 'fast-forward',
          finished: true,
        });
        expect(done).toMatchObject({
          flight: '17',
          reruns: ['18', '19'],
          completed: true,
          outcome: 'pushed',
        });
        expect(done.finished).toBeGreaterThanOrEqual(done.started);
        expect(await store.getGateRun(r1.id)).toEqual(done);
        await refused(() => store.updateGateRun(r1.id, { detail: 'again' }), StoreError, 'has finished');
        await refused(
          () => store.updateGateRun(other.id, { finished: true }),
          StoreError,
          'needs an outcome',
        );
        await refused(() => store.updateGateRun(9999, { detail: 'x' }), NotFoundError, 'no gate run 9999');
        await refused(() => store.startGateRun(run({ kind: 'odd' as never })), StoreError, 'kind');

        // Now the branch may run again; a run that did not complete does not count as tested.
        const r2 = await store.startGateRun(run({ kind: 'baseline', new: 'a'.repeat(40) }));
        await store.updateGateRun(r2.id, { outcome: 'error', finished: true });
        expect(await store.findTestedRun('xen-unstable', 'xen', 'a'.repeat(40))).toBeUndefined();
        expect(await store.findTestedRun('xen-unstable', 'linux', 'b'.repeat(40))).toBeUndefined();
        expect(await store.findTestedRun('other', 'xen', 'b'.repeat(40))).toBeUndefined();
        expect((await store.listGateRuns({ branch: 'xen-unstable' })).map((r) => r.id)).toEqual([
          r2.id,
          r1.id,
        ]);
        expect((await store.listGateRuns()).map((r) => r.id)).toEqual([r2.id, other.id, r1.id]);
        expect((await store.listGateRuns({ limit: 1 })).map((r) => r.id)).toEqual([r2.id]);
        expect(await store.getGateRun(4242)).toBeUndefined();
      });

      it('pushes: recorded with their result, listed newest first per branch', async () => {
        const p = {
          branch: 'xen-unstable',
          flight: '17',
          tree: 'xen',
          url: '/srv/git/xen.git',
          ref: 'master',
          from: 'a'.repeat(40),
          to: 'b'.repeat(40),
          result: 'pushed' as const,
          overridden: false,
          detail: 'fast-forward',
        };
        const t0 = Date.now();
        const a = await store.recordPush(p);
        expect(a).toMatchObject(p);
        expect(a.at).toBeGreaterThanOrEqual(t0);
        const b = await store.recordPush({ ...p, flight: null, result: 'refused', overridden: true, at: 5 });
        await store.recordPush({ ...p, branch: 'linux' });
        expect(await store.listPushes({ branch: 'xen-unstable' })).toEqual([b, a]);
        expect(await store.listPushes({ limit: 1 })).toHaveLength(1);
        await refused(() => store.recordPush({ ...p, result: 'forced' as never }), StoreError, 'push result');
        await refused(() => store.recordPush({ ...p, to: '' }), StoreError, 'push to revision');
      });
    });

    describe('several connections', () => {
      it('a second connection sees the first one’s writes, and the other way round', async () => {
        const other = await second();
        if (!other) return;
        await flightWithJob('f', { a: '1' });
        await store.upsertHost({ name: 'h1' });
        await store.setHostFlags('h1', ['x']);
        expect(await other.getFlight('f')).toEqual(await store.getFlight('f'));
        expect(await other.listRunvars('f')).toEqual(await store.listRunvars('f'));
        expect(await other.getHost('h1')).toEqual(await store.getHost('h1'));
        await other.markFlightStarted('f');
        await other.setRunvar('f', 'job', 'out', 'v', { synth: true });
        const s = await other.startStep('f', 'job', { testcase: 'ts-a', testid: 'a' });
        expect(await other.allocateHost('h1', { flight: 'f', job: 'job', ident: 'host' })).toBe(true);
        expect((await store.getFlight('f'))!.blessing).toBe('running');
        expect(await store.getRunvar('f', 'job', 'out')).toMatchObject({ val: 'v', synth: true });
        expect(await store.listSteps('f', 'job')).toEqual([s]);
        expect((await store.listAllocations()).map((a) => a.host)).toEqual(['h1']);
        // A rule is enforced whichever connection asks.
        await expect(store.setRunvar('f', 'job', 'a', '2', { synth: false })).rejects.toThrow(FrozenError);
        expect((await store.startStep('f', 'job', { testcase: 'ts-b', testid: 'b' })).stepno).toBe(2);
      });

      it('never gives one host to two jobs when two connections race for it', async () => {
        const other = (await second()) ?? store;
        await store.createFlight({ flight: 'f', branch: 'b', intended: 'play' });
        const jobs = ['j0', 'j1', 'j2', 'j3'];
        for (const j of jobs) await store.createJob('f', j, 'rec');
        const hosts = ['h1', 'h2', 'h3'];
        for (const h of hosts) await store.upsertHost({ name: h });
        const rounds = 40;
        for (let round = 0; round < rounds; round++) {
          // Every job asks for every host at once, half of them through each connection.
          const tries = hosts.flatMap((host) =>
            jobs.map(async (job, i) => ({
              host,
              job,
              won: await (i % 2 === 0 ? store : other).allocateHost(host, {
                flight: 'f',
                job,
                ident: 'host',
              }),
            })),
          );
          const results = await Promise.all(tries);
          for (const host of hosts) {
            const winners = results.filter((r) => r.host === host && r.won);
            expect(winners, `round ${round} host ${host}`).toHaveLength(1);
          }
          const held = await other.listAllocations();
          expect(held.map((a) => `${a.host}:${a.job}`).sort()).toEqual(
            results
              .filter((r) => r.won)
              .map((r) => `${r.host}:${r.job}`)
              .sort(),
          );
          await Promise.all(
            results
              .filter((r) => r.won)
              .map((r, i) => (i % 2 ? store : other).releaseHost(r.host, { flight: 'f', job: r.job })),
          );
        }
        expect(await store.listAllocations()).toEqual([]);
        for (const h of hosts)
          expect(checkNoOverlap(await store.allocationLog({ host: h })).holds).toBe(rounds);
      });

      it('allocates without double holds across 4 processes doing 200 cycles each on 2 hosts', async () => {
        if (!fx.spec) return;
        await store.createFlight({ flight: 'kids', branch: 'b', intended: 'play' });
        const hosts = ['h1', 'h2'];
        for (const h of hosts) await store.upsertHost({ name: h });
        const n = 4;
        const cycles = 200;
        for (let i = 0; i < n; i++) await store.createJob('kids', `w${i}`, 'rec');
        const t0 = Date.now();
        const results = (await runStoreChildren(
          Array.from({ length: n }, (_v, i) => ({
            mode: 'alloc',
            spec: fx.spec,
            flight: 'kids',
            job: `w${i}`,
            hosts,
            cycles,
          })),
        )) as { won: number; lost: number }[];
        const ms = Date.now() - t0;
        const won = results.reduce((s, r) => s + r.won, 0);
        const lost = results.reduce((s, r) => s + r.lost, 0);
        expect(won + lost).toBe(n * cycles);
        let holds = 0;
        for (const h of hosts) holds += checkNoOverlap(await store.allocationLog({ host: h })).holds;
        expect(holds).toBe(won);
        expect(await store.listAllocations()).toEqual([]);
        process.stderr.write(
          `[${label}] 4 processes × ${cycles} allocate cycles: ${won} holds, ${lost} refusals, ${ms} ms\n`,
        );
      }, 60_000);

      it('numbers steps without repeats across processes', async () => {
        if (!fx.spec) return;
        await flightWithJob('f');
        const results = (await runStoreChildren(
          Array.from({ length: 3 }, () => ({
            mode: 'steps',
            spec: fx.spec,
            flight: 'f',
            job: 'job',
            cycles: 30,
          })),
        )) as { stepnos: number[] }[];
        const all = results.flatMap((r) => r.stepnos).sort((a, b) => a - b);
        expect(all).toEqual(Array.from({ length: 90 }, (_v, i) => i + 1));
        const steps = await store.listSteps('f', 'job');
        expect(steps.map((s) => s.testid)).toEqual(all.map((k) => `x(${k})`));
        expect(steps.every((s) => s.status === 'pass')).toBe(true);
      }, 60_000);
    });
  });
}
