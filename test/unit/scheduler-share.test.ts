import { describe, expect, it } from 'vitest';
import { decisionFor, plan } from '../../src/scheduler/planner.js';
import { simulateLab } from '../../src/scheduler/simulate.js';
import type { Decision, HostShare, SchedHost } from '../../src/scheduler/types.js';
import { HOUR, held, host, MIN, queued, req, snap } from './scheduler-fixtures.js';

const BUILD = { host_hostflags: 'share-build-bookworm-amd64,arch-amd64,purpose-build' };
const FLAGS = ['share-build-bookworm-amd64', 'arch-amd64', 'purpose-build'];
const ready = (o: Partial<HostShare> = {}): HostShare => ({
  type: 'build-bookworm-amd64',
  harness: 'h1',
  state: 'ready',
  slots: 3,
  wear: 1,
  wearLimit: 10,
  ...o,
});
const build = (key: string, o: Parameters<typeof queued>[2] = {}) =>
  queued(key, BUILD, { harness: 'h1', ...o });

function get(ds: { decisions: Decision[] }, key: string): Decision {
  const d = ds.decisions.find((x) => x.key === key);
  if (!d) throw new Error(`no decision for ${key}`);
  return d;
}

describe('shared build hosts', () => {
  it('a build job joins a ready share of its type and harness (skipping the reinstall) before a fresh host', () => {
    const hosts = [host('fresh', FLAGS), host('shared', FLAGS, { share: ready() })];
    const p = plan(snap(0, hosts, [build('b1')], [held('shared', 'b0', 0, 2 * HOUR)]));
    expect(get(p, 'b1')).toMatchObject({
      kind: 'allocate',
      hosts: { host: 'shared' },
      share: { action: 'join', host: 'shared', type: 'build-bookworm-amd64', harness: 'h1' },
    });
    expect(get(p, 'b1')).not.toHaveProperty('dissolve');
  });

  it('no join across harness revisions, share types, in prep, with slots full or worn out', () => {
    const cases: Array<[string, SchedHost, string]> = [
      ['harness', host('shared', FLAGS, { share: ready({ harness: 'h0' }) }), 'h1'],
      ['type', host('shared', FLAGS, { share: ready({ type: 'build-trixie-amd64' }) }), 'h1'],
      ['prep', host('shared', FLAGS, { share: ready({ state: 'prep' }) }), 'h1'],
      ['slots', host('shared', FLAGS, { share: ready({ slots: 1 }) }), 'h1'],
      ['wear', host('shared', FLAGS, { share: ready({ wear: 10 }) }), 'h1'],
    ];
    for (const [why, shared, harness] of cases) {
      const p = plan(snap(0, [shared], [build('b1', { harness })], [held('shared', 'b0', 0, 2 * HOUR)]), {
        full: true,
      });
      const d = get(p, 'b1');
      expect(d.kind, why).toBe('book');
      if (d.kind === 'book') {
        expect(d.start, why).toBe(2 * HOUR);
        // After the sharers leave it is taken whole and prepared afresh.
        expect(d.share?.action, why).toBe('start');
        expect(d.dissolve, why).toEqual(['shared']);
      }
    }
  });

  it('a build job on a fresh host starts a new share sized by SharedMaxTasks / SharedMaxWear', () => {
    const hosts = [host('fresh', FLAGS, { props: { SharedMaxTasks: '4', SharedMaxWear: '7' } })];
    expect(get(plan(snap(0, hosts, [build('b1')])), 'b1')).toMatchObject({
      kind: 'allocate',
      share: { action: 'start', host: 'fresh', slots: 4, wearLimit: 7, harness: 'h1' },
    });
    const dflt = plan(snap(0, [host('fresh', FLAGS)], [build('b1')]), { shareSlots: 2, shareWearLimit: 5 });
    expect(get(dflt, 'b1')).toMatchObject({ share: { action: 'start', slots: 2, wearLimit: 5 } });
    expect(() =>
      plan(snap(0, [host('x', FLAGS, { props: { SharedMaxTasks: 'lots' } })], [build('b1')])),
    ).toThrow(/host x: property SharedMaxTasks "lots" is not a positive integer/);
    // Without a harness revision the job cannot share: an ordinary allocation.
    const noHarness = plan(snap(0, [host('fresh', FLAGS)], [queued('b1', BUILD)]));
    expect(get(noHarness, 'b1')).not.toHaveProperty('share');
  });

  it('joins in one plan respect the free slots and the wear limit', () => {
    const hosts = [host('shared', FLAGS, { share: ready({ slots: 3, wear: 8, wearLimit: 10 }) })];
    const q = ['b1', 'b2', 'b3'].map((k, i) => build(k, { waitStart: i }));
    const p = plan(snap(0, hosts, q, [held('shared', 'b0', 0, 2 * HOUR)]), { full: true });
    expect(get(p, 'b1')).toMatchObject({ kind: 'allocate', share: { action: 'join' } });
    expect(get(p, 'b2')).toMatchObject({ kind: 'allocate', share: { action: 'join' } });
    // Slots: 3 (b0, b1, b2 hold them) — and the wear limit 10 is reached too.
    expect(get(p, 'b3').kind).toBe('book');
  });

  it('a join never runs into a booking on the shared host', () => {
    const hosts = [host('shared', FLAGS, { share: ready() })];
    const res = [{ host: 'shared', start: HOUR, end: 2 * HOUR, label: 'outage' }];
    const p = plan(
      snap(
        0,
        hosts,
        [build('long', { durationMs: 90 * MIN }), build('short', { durationMs: 30 * MIN })],
        [held('shared', 'b0', 0, 40 * MIN)],
        res,
      ),
      {
        full: true,
      },
    );
    expect(get(p, 'short')).toMatchObject({ kind: 'allocate', share: { action: 'join' } });
    expect(get(p, 'long').kind).toBe('book');
  });

  it('an ordinary job keeps off an idle share while another host will do, and dissolves it when it must', () => {
    const shared = host('shared', FLAGS, { share: ready() });
    const other = host('other', FLAGS);
    const j = queued('test', { all_hostflags: 'arch-amd64' });
    expect(get(plan(snap(0, [shared, other], [j])), 'test')).toMatchObject({ hosts: { host: 'other' } });
    expect(get(plan(snap(0, [shared], [j])), 'test')).toMatchObject({
      kind: 'allocate',
      hosts: { host: 'shared' },
      dissolve: ['shared'],
    });
    // Exclusive use waits for the sharers to leave.
    const busy = plan(snap(0, [shared], [j], [held('shared', 'b0', 0, HOUR)]), { full: true });
    expect(get(busy, 'test')).toMatchObject({ kind: 'book', start: HOUR });
  });

  it('in a simulated lab, sharing saves reinstalls and the wear limit sends the host back to be reinstalled', () => {
    const hosts = [host('bh', FLAGS, { props: { SharedMaxTasks: '2', SharedMaxWear: '3' } })];
    const jobs = Array.from({ length: 6 }, (_, i) => ({
      key: `b${i}`,
      req: req(`b${i}`, BUILD, 'real', 'h1'),
      actualMs: HOUR,
      estimateMs: HOUR,
      installMs: 20 * MIN,
      release: 0,
      priority: 200,
    }));
    const sim = simulateLab(jobs, (s) => plan(s).decisions, { hosts });
    const r = [...sim.jobs.values()];
    expect(r.every((x) => x.status === 'pass')).toBe(true);
    // b0 prepares the host (ready at 20 min): b1 joins at 20, b2 at 60 (2 slots) and that is wear 3;
    // when they are gone the host is prepared afresh by b3 and b4, b5 join it.
    expect(r.filter((x) => x.joinedShare).length).toBe(4);
    const exclusive = r.filter((x) => !x.joinedShare).map((x) => x.start);
    expect(exclusive.length).toBe(2);
    // Serially with a reinstall each, six builds would take 6 hours.
    expect(sim.makespan).toBeLessThan(4 * HOUR);
    expect(decisionFor(plan(snap(0, hosts, [])), 'x')).toBeUndefined();
  });
});
