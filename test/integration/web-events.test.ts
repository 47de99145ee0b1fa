/**
 * The live event source on a real sqlite store and real log files, woken by hand through its
 * ChangeSignal (the part a PostgreSQL LISTEN/NOTIFY trigger will replace), so every look is
 * deterministic: what is emitted, the log tail's edge cases, and that watchers stop.
 */
import { truncateSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/db/store.js';
import {
  type ChangeSignal,
  type LiveEvent,
  type LogChunk,
  PollingFlightEvents,
} from '../../src/web/events.js';
import { FlightSeeder, TEST } from '../helpers/web-flight.js';
import { createWorkspace, type Workspace } from '../helpers/workspace.js';

/** A signal the test fires itself; records which flights are being watched. */
class ManualSignal implements ChangeSignal {
  readonly wakers = new Map<string, () => Promise<void>>();
  watch(flight: string, wake: () => Promise<void>): () => void {
    this.wakers.set(flight, wake);
    return () => this.wakers.delete(flight);
  }
}

let ws: Workspace;
let store: Store;
let seeder: FlightSeeder;

beforeAll(async () => {
  ws = createWorkspace([]);
  store = await ws.openStore();
  seeder = new FlightSeeder(store, ws.config().path('Logs'));
  await seeder.seed('e1');
});

afterAll(async () => {
  await store?.close();
  ws?.cleanup();
});

function source(o: { maxReadBytes?: number; keepLines?: number } = {}) {
  const signal = new ManualSignal();
  const events = new PollingFlightEvents(store, { logsDir: ws.config().path('Logs'), signal, ...o });
  const got: LiveEvent[] = [];
  /** Wakes the watcher and waits for the look it starts to end. */
  const look = async (): Promise<LiveEvent[]> => {
    const before = got.length;
    await signal.wakers.get('e1')?.();
    return got.slice(before);
  };
  return { signal, events, got, look };
}

describe('PollingFlightEvents', () => {
  it('emits only what changed, once, and stops watching when the last listener leaves', async () => {
    const { signal, events, got, look } = source();
    const stop = await events.subscribe('e1', (e) => got.push(e));
    expect(got.map((e) => e.type)).toEqual(['snapshot']);
    expect(events.watching()).toEqual(['e1']);
    expect(await look()).toEqual([]);

    const step = await seeder.start('e1', TEST, 'ts-install-dist', 'install-dist');
    const a = await look();
    expect(a.map((e) => e.type)).toEqual(['step', 'log']);
    expect((a[1]!.data as LogChunk).reset).toBe(true);
    expect(await look()).toEqual([]);

    await store.setFlightBlessing('e1', 'play');
    expect((await look()).map((e) => e.type)).toEqual(['flight']);

    stop?.();
    expect(events.watching()).toEqual([]);
    expect(signal.wakers.size).toBe(0);
    await seeder.finish('e1', TEST, step, 'pass');
    events.close();
  });

  it('says when the flight is deleted, and has nothing for a flight that is not there', async () => {
    await seeder.seed('e2');
    const signal = new ManualSignal();
    const events = new PollingFlightEvents(store, { logsDir: ws.config().path('Logs'), signal });
    expect(await events.subscribe('nope', () => undefined)).toBeUndefined();
    expect(events.watching()).toEqual([]);
    const got: LiveEvent[] = [];
    await events.subscribe('e2', (e) => got.push(e));
    await store.deleteFlight('e2');
    await signal.wakers.get('e2')?.();
    expect(got.map((e) => e.type)).toEqual(['snapshot', 'gone']);
    events.close();
  });

  it('log tail: partial lines wait for their end, a truncated log restarts, a flood is skipped and said', async () => {
    const { events, got, look } = source({ maxReadBytes: 64, keepLines: 3 });
    const step = await seeder.start('e1', TEST, 'ts-run-tests', 'run-tests');
    await events.subscribe('e1', (e) => got.push(e));
    const snap = got[0]!.data as { log: LogChunk };
    expect(snap.log.stepno).toBe(step.stepno);
    expect(snap.log.lines).toEqual([`osstest: step ${step.stepno} ts-run-tests (testid run-tests)`]);

    const { appendFileSync } = await import('node:fs');
    const file = seeder.logFile(step.rel);
    appendFileSync(file, 'half a li');
    expect(await look()).toEqual([]);
    appendFileSync(file, 'ne\nnext\n');
    const lines = (await look()).map((e) => (e.data as LogChunk).lines);
    expect(lines).toEqual([['half a line', 'next']]);

    truncateSync(file, 0);
    appendFileSync(file, 'after rerun\n');
    // A rerun truncates the log: the watcher is told to start afresh.
    expect((await look()).map((e) => e.data)).toMatchObject([{ lines: ['after rerun'], reset: true }]);

    appendFileSync(file, `${'x'.repeat(200)}\nlast line\n`);
    const flood = (await look()).map((e) => e.data as LogChunk);
    expect(flood).toHaveLength(1);
    expect(flood[0]!.skipped).toBeGreaterThan(100);
    // The line cut by the skip is dropped, not shown half.
    expect(flood[0]!.lines).toEqual(['last line']);

    // A new watcher gets the newest lines (at most keepLines) of the run now in the log.
    appendFileSync(file, 'one\ntwo\n');
    await look();
    const late: LiveEvent[] = [];
    await events.subscribe('e1', (e) => late.push(e));
    expect((late[0]!.data as { log: LogChunk }).log.lines).toEqual(['last line', 'one', 'two']);
    await seeder.finish('e1', TEST, step, 'pass');
    events.close();
  });
});
