import { describe, expect, it } from 'vitest';
import { parseWake } from '../../src/db/lab/lab-store.js';
import { parseSnapshot, visibleIn, WakeLedger } from '../../src/scheduler/wake-ledger.js';

describe('snapshots', () => {
  it('reads pg_current_snapshot text and says which committed transactions it sees', () => {
    const s = parseSnapshot('100:110:100,102,105')!;
    expect(s.xmin).toBe(100n);
    expect([99n, 100n, 101n, 102n, 104n, 105n, 109n, 110n, 200n].map((x) => visibleIn(x, s))).toEqual([
      true, // before xmin: committed before the snapshot
      false, // xmin itself was in progress
      true,
      false, // in progress when taken
      true,
      false,
      true,
      false, // xmax and later: began after
      false,
    ]);
    expect(parseSnapshot('5:5:')!.inProgress.size).toBe(0);
    expect(parseSnapshot('garbage')).toBeUndefined();
  });

  it('parses the lab channel’s payloads: a change with its transaction, a decision, anything else as it is', () => {
    expect(parseWake('released 4711')).toEqual({ what: 'released', xid: 4711n });
    expect(parseWake('decided done 10:12:11')).toEqual({
      what: 'decided',
      decided: { more: false, snapshot: '10:12:11' },
    });
    expect(parseWake('decided more 10:10:')).toEqual({
      what: 'decided',
      decided: { more: true, snapshot: '10:10:' },
    });
    expect(parseWake('decided done 10:10: 1800000000000')).toEqual({
      what: 'decided',
      decided: { more: false, snapshot: '10:10:', due: 1_800_000_000_000 },
    });
    expect(parseWake('decided done 10:10: -').decided!.due).toBe(Number.POSITIVE_INFINITY);
    // With the announcing transaction; a due that was not said.
    expect(parseWake('decided more 10:12:11 ? 4712')).toEqual({
      what: 'decided',
      xid: 4712n,
      decided: { more: true, snapshot: '10:12:11' },
    });
    expect(parseWake('queue')).toEqual({ what: 'queue' });
  });
});

describe('the wake ledger', () => {
  it('needs a decision at first, after a wake of unknown cause, and for changes no finished decision saw', () => {
    const l = new WakeLedger();
    expect(l.needed).toBe(true);
    l.deciding();
    l.decided('50:50:', false);
    expect(l.needed).toBe(false);
    // A change by transaction 60, then another worker's decision whose snapshot predates it.
    l.changed(60n);
    expect(l.needed).toBe(true);
    l.decided('55:58:', false);
    expect(l.needed).toBe(true);
    // One that saw it, and found nothing more to start: nothing for us to decide.
    l.decided('61:61:', false);
    expect(l.needed).toBe(false);
    // One that saw it but left more to start: decide.
    l.changed(62n);
    l.decided('70:70:', true);
    expect(l.needed).toBe(true);
    l.deciding();
    l.decided('70:70:', false);
    expect(l.needed).toBe(false);
    // Left more, announced by transaction 72: decide, unless a later decision that saw 72 found nothing more.
    l.decided('71:71:', true, undefined, undefined, 72n);
    expect(l.needed).toBe(true);
    l.decided('72:72:', false);
    expect(l.needed).toBe(true);
    l.decided('73:73:', true, undefined, undefined, 74n);
    expect(l.needed).toBe(true);
    l.decided('75:75:', false);
    expect(l.needed).toBe(false);
    // Our own decision: what woke us is in what it reads.
    l.deciding();
    l.decided('80:80:', false);
    expect(l.needed).toBe(false);
    // A change still in progress when a decision read the lab was not seen by it.
    l.changed(71n);
    l.decided('71:75:71,73', false);
    expect(l.needed).toBe(true);
    l.decided('72:75:', false);
    expect(l.needed).toBe(false);
    // A poll or the worker's own job ending: always decide.
    l.changed();
    l.decided('100:100:', false);
    expect(l.needed).toBe(true);
  });

  it('hears notifications as the worker does: a change wakes it, a decision only when it left more', () => {
    const l = new WakeLedger();
    l.deciding();
    expect(l.heard(parseWake('release 105'))).toBe(true);
    expect(l.needed).toBe(true);
    // A decision that saw 105 and left nothing: nothing to do, and no reason to look now.
    expect(l.heard(parseWake('decided done 106:106: - 107'))).toBe(false);
    expect(l.needed).toBe(false);
    // One that left more names its transaction: look now, and until a later decision saw it.
    expect(l.heard(parseWake('decided more 107:107: - 108'))).toBe(true);
    expect(l.needed).toBe(true);
    expect(l.heard(parseWake('decided done 109:109: - 110'))).toBe(false);
    expect(l.needed).toBe(false);
  });

  it('a poll decides when the last plan has something fall due, or when the safety interval has passed', () => {
    const l = new WakeLedger(60_000);
    l.deciding();
    l.decided('5:5:', false, 10_000, 1_000);
    expect(l.needed).toBe(false);
    l.polled(5_000);
    expect(l.needed).toBe(false);
    l.polled(10_000);
    expect(l.needed).toBe(true);
    // Nothing due at all: only the safety net.
    l.deciding();
    l.decided('6:6:', false, Number.POSITIVE_INFINITY, 20_000);
    l.polled(79_999);
    expect(l.needed).toBe(false);
    l.polled(80_000);
    expect(l.needed).toBe(true);
    // A decision that did not say when: polls decide.
    l.deciding();
    l.decided('7:7:', false, undefined, 90_000);
    l.polled(90_001);
    expect(l.needed).toBe(true);
  });
});
