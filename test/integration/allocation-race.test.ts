/**
 * The allocation race, on both stores: 8 separate OS processes each run 500 allocate/release
 * cycles over the same 4 hosts, all starting at the same moment. Double allocations (two holders
 * of one host at once) are counted two ways and must both be zero:
 * - from the store's allocation log, walked per host in id order: an `allocate` while the host is
 *   held, or a `release` by someone who does not hold it;
 * - from the children's own reports: each child notes a window (system-wide monotonic clock)
 *   inside every hold it got; two windows of one host that overlap mean two holders at once.
 * The second check does not trust the store's log at all.
 * Run twice per store: single hosts through the core store, and pairs of hosts (all or none)
 * through the lab's takeHosts/closeJob, the path workers use.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoreSpec } from '../../src/db/open.js';
import { openStore } from '../../src/db/open.js';
import type { AllocationEvent } from '../../src/db/types.js';
import { havePostgres, startTestPostgres, type TestPostgres } from '../helpers/postgres.js';
import { runStoreChildren } from './store-suite.js';

const PROCESSES = 8;
const CYCLES = 500;
const HOSTS = ['h1', 'h2', 'h3', 'h4'];
/** Bound on the whole race; measured here at a few seconds (see the printed timings). */
const RACE_TIMEOUT_MS = 150_000;

interface ChildReport {
  won: number;
  lost: number;
  holds: [string, string, string][];
}

/** Walks the log; counts allocations of a held host and releases by a non-holder. */
function doublesInLog(events: readonly AllocationEvent[]): {
  doubles: number;
  strays: number;
  holds: number;
} {
  const holder = new Map<string, string>();
  let doubles = 0;
  let strays = 0;
  let holds = 0;
  for (const e of events) {
    const who = `${e.flight}/${e.job}/${e.ident}`;
    if (e.event === 'allocate') {
      if (holder.has(e.host)) doubles++;
      holder.set(e.host, who);
      holds++;
    } else {
      if (holder.get(e.host) !== who) strays++;
      holder.delete(e.host);
    }
  }
  return { doubles, strays, holds };
}

/** Counts pairs of overlapping hold windows per host (sorted by start: each must begin after all earlier ones ended). */
function doublesInReports(reports: readonly ChildReport[]): number {
  const byHost = new Map<string, [bigint, bigint][]>();
  for (const r of reports) {
    for (const [host, from, to] of r.holds) {
      const list = byHost.get(host) ?? [];
      list.push([BigInt(from), BigInt(to)]);
      byHost.set(host, list);
    }
  }
  let overlaps = 0;
  for (const windows of byHost.values()) {
    windows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    let lastEnd = -1n;
    for (const [from, to] of windows) {
      if (from <= lastEnd) overlaps++;
      if (to > lastEnd) lastEnd = to;
    }
  }
  return overlaps;
}

/**
 * `alloc`: one host per cycle through the core store (allocateHost/releaseHost); `take`: a pair of
 * hosts per cycle, all or none, through the lab's takeHosts and closeJob, as workers take them.
 */
async function race(label: string, spec: StoreSpec, mode: 'alloc' | 'take' = 'alloc'): Promise<void> {
  const perWin = mode === 'take' ? 2 : 1;
  const store = await openStore(spec);
  try {
    await store.createFlight({ flight: 'race', branch: 'b', intended: 'play' });
    for (let i = 0; i < PROCESSES; i++) await store.createJob('race', `w${i}`, 'rec');
    for (const h of HOSTS) await store.upsertHost({ name: h });

    const t0 = Date.now();
    const reports = (await runStoreChildren(
      Array.from({ length: PROCESSES }, (_v, i) => ({
        mode,
        spec,
        flight: 'race',
        job: `w${i}`,
        hosts: HOSTS,
        cycles: CYCLES,
      })),
      RACE_TIMEOUT_MS,
    )) as ChildReport[];
    const ms = Date.now() - t0;

    const won = reports.reduce((s, r) => s + r.won, 0);
    const lost = reports.reduce((s, r) => s + r.lost, 0);
    const log = await store.allocationLog();
    const fromLog = doublesInLog(log);
    const fromReports = doublesInReports(reports);
    process.stderr.write(
      `[race ${label} ${mode}] ${PROCESSES} processes × ${CYCLES} cycles on ${HOSTS.length} hosts: ${won} holds, ${lost} refusals, ` +
        `double allocations: ${fromLog.doubles} in the log, ${fromReports} in the children's reports; ` +
        `stray releases ${fromLog.strays}; ${ms} ms\n`,
    );
    expect(won + lost).toBe(PROCESSES * CYCLES);
    expect(won, 'some allocations must succeed for the race to mean anything').toBeGreaterThan(0);
    expect(lost, 'the processes must actually collide').toBeGreaterThan(0);
    expect(fromLog.doubles).toBe(0);
    expect(fromLog.strays).toBe(0);
    expect(fromReports).toBe(0);
    expect(fromLog.holds).toBe(won * perWin);
    expect(reports.reduce((s, r) => s + r.holds.length, 0)).toBe(won * perWin);
    expect(log.filter((e) => e.event === 'release')).toHaveLength(won * perWin);
    expect(await store.listAllocations()).toEqual([]);
  } finally {
    await store.close();
  }
}

describe(`allocation race: ${PROCESSES} processes × ${CYCLES} cycles on ${HOSTS.length} hosts`, () => {
  it(
    'sqlite: zero double allocations',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'osstest-race-'));
      try {
        await race('sqlite', { kind: 'sqlite', path: join(dir, 'race.db') });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    RACE_TIMEOUT_MS + 10_000,
  );

  it(
    'sqlite, pairs of hosts through the lab (takeHosts, all or none): zero double allocations',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'osstest-race-'));
      try {
        await race('sqlite', { kind: 'sqlite', path: join(dir, 'race.db') }, 'take');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    RACE_TIMEOUT_MS + 10_000,
  );

  describe.skipIf(!havePostgres('allocation race on PostgreSQL'))('postgres', () => {
    let server: TestPostgres;
    beforeAll(async () => {
      server = await startTestPostgres();
    });
    afterAll(async () => {
      await server?.stop();
    });

    it(
      'postgres: zero double allocations',
      async () => {
        await race('postgres', { kind: 'postgres', connection: await server.createDatabase() });
      },
      RACE_TIMEOUT_MS + 10_000,
    );

    it(
      'postgres, pairs of hosts through the lab (takeHosts, all or none): zero double allocations',
      async () => {
        await race('postgres', { kind: 'postgres', connection: await server.createDatabase() }, 'take');
      },
      RACE_TIMEOUT_MS + 10_000,
    );
  });
});
