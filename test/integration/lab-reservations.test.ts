/**
 * Reservations in lab mode on sqlite, through the real store, allocator and command line:
 * - `osstest blockage FROM TO FLAG`: a job whose only host is blocked now is not given it and is
 *   booked after the blockage; a blockage far enough ahead leaves room for a job now; one close
 *   ahead makes the job wait for its end; bad input is refused and changes nothing;
 * - `osstest allocate [DURATION] [!]HOST…`: hosts taken by hand are not given to jobs, a host a job
 *   holds or someone else took is refused (nothing taken), only the taker gives one back.
 * The same store code runs on PostgreSQL (the store suite covers reservations on both).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabReservation } from '../../src/db/lab/types.js';
import type { Store } from '../../src/db/store.js';
import { claimNext } from '../../src/scheduler/allocator.js';
import { createWorkspace, type Workspace } from '../helpers/workspace.js';

let ws: Workspace;
let store: Store;
const ME = { USER: 'tester' };
const H = 3600_000;

beforeAll(async () => {
  ws = createWorkspace();
  store = await ws.openStore();
  const hosts: Record<string, string[]> = {
    only: ['purpose-only'],
    pool1: ['purpose-pool'],
    pool2: ['purpose-pool'],
  };
  for (const [h, flags] of Object.entries(hosts)) {
    await store.upsertHost({ name: h, ip: '127.0.0.1' });
    await store.setHostFlags(h, flags);
  }
  await store.lab.registerWorker({ id: 'w', host: 'test', pid: 1, leaseMs: 600_000, maxJobs: 1 });
});

afterAll(async () => {
  await store?.close();
  ws?.cleanup();
});

const claim = () => claimNext({ store, config: ws.config(), harness: null, worker: 'w', leaseMs: 600_000 });

async function queueJob(branch: string, flags: string): Promise<string> {
  const f = (await store.createFlight({ branch, intended: 'play' })).flight;
  await store.createJob(f, 'j', 'build', { host_hostflags: flags });
  await store.lab.queueFlight(f, { by: 'test' });
  return f;
}

async function cliJson<T>(args: string[], env: Record<string, string> = ME): Promise<T> {
  const r = await ws.cli([...args, '--json'], env);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as T;
}

interface PlanJson {
  decisions: { key: string; kind: string; hosts?: Record<string, string>; start?: number }[];
  spans: Record<string, { start: number; end: number; owner: string }[]>;
}

describe('osstest blockage', () => {
  it('keeps a job off its only host while the blockage lasts, books it after, and lets it run once removed', async () => {
    const before = Date.now();
    const made = await cliJson<LabReservation[]>([
      'blockage',
      'now',
      '+2h',
      'purpose-only',
      '--label',
      'rack move',
    ]);
    expect(made).toMatchObject([{ host: 'only', kind: 'blockage', owner: 'tester', label: 'rack move' }]);
    expect(made[0]!.end - made[0]!.start).toBeGreaterThanOrEqual(2 * H - 5000);
    expect(made[0]!.start).toBeGreaterThanOrEqual(before - 1000);
    const f = await queueJob('blocked', 'purpose-only');

    const out = await claim();
    expect(out.claimed).toBeUndefined();
    expect(out.settled).toEqual([]);
    const p = await cliJson<PlanJson>(['plan']);
    const d = p.decisions.find((x) => x.key === `${f}/j`);
    expect(d).toMatchObject({ kind: 'book', hosts: { host: 'only' } });
    expect(d!.start).toBeGreaterThanOrEqual(made[0]!.end);
    expect(p.spans.only!.some((s) => s.owner.includes('rack move') && s.end === made[0]!.end)).toBe(true);
    // takeHosts itself refuses the host too (whoever asks without the planner).
    const t = await store.lab.takeHosts({ flight: f, job: 'j', holds: [{ ident: 'host', host: 'only' }] });
    expect(t.ok ? '' : t.why).toMatch(/host only is reserved \(blockage \d+ by tester .*rack move\)/);

    const listed = await cliJson<LabReservation[]>(['blockage', '--list']);
    expect(listed.map((r) => r.id)).toEqual([made[0]!.id]);
    const rm = await ws.cli(['blockage', '--remove', String(made[0]!.id)], ME);
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.stdout).toContain(`removed blockage ${made[0]!.id} of only`);
    const again = await claim();
    expect(again.claimed).toMatchObject({ flight: f, job: 'j', hosts: { host: 'only' } });
    await store.lab.closeJob({ flight: f, job: 'j', worker: 'w', sharesPrepared: false });
  });

  it('a blockage far enough ahead leaves room for a job now; one close ahead makes it wait for its end', async () => {
    // With no history a job is estimated at an hour.
    const near = await cliJson<LabReservation[]>(['blockage', '+10m', '+3h', 'purpose-only']);
    const f = await queueJob('near', 'purpose-only');
    expect((await claim()).claimed).toBeUndefined();
    const p = await cliJson<PlanJson>(['plan']);
    const d = p.decisions.find((x) => x.key === `${f}/j`);
    expect(d).toMatchObject({ kind: 'book', hosts: { host: 'only' } });
    expect(d!.start).toBeGreaterThanOrEqual(near[0]!.end);
    expect((await ws.cli(['blockage', '--remove', String(near[0]!.id)], ME)).code).toBe(0);

    await cliJson<LabReservation[]>(['blockage', '+3h', '+4h', 'purpose-only']);
    const out = await claim();
    expect(out.claimed).toMatchObject({ flight: f, job: 'j', hosts: { host: 'only' } });
    await store.lab.closeJob({ flight: f, job: 'j', worker: 'w', sharesPrepared: false });
  });

  it('refuses bad times, FROM not before TO, a window in the past and a flag no host has, changing nothing', async () => {
    const count = async () => (await store.lab.listReservations()).length;
    const n = await count();
    const cases: [string[], RegExp][] = [
      [['blockage', 'tomorrow', '+1h', 'purpose-only'], /FROM 'tomorrow' is not a time/],
      [['blockage', 'now', '2h', 'purpose-only'], /TO '2h' is not a time/],
      [['blockage', 'now', '+2x', 'purpose-only'], /after \+ comes a duration/],
      [['blockage', '+2h', '+1h', 'purpose-only'], /FROM \(.*\) must be before TO/],
      [['blockage', '2020-01-01T00:00Z', '2020-01-02T00:00Z', 'purpose-only'], /is in the past/],
      [['blockage', 'now', '+1h', 'purpose-none'], /no host has flag 'purpose-none'/],
      [['blockage', 'now', '+1h'], /needs FROM TO FLAG/],
      [['blockage', '--remove', '99999'], /no blockage 99999/],
      [['blockage', '--remove', 'x'], /a blockage id is a whole number/],
    ];
    for (const [args, msg] of cases) {
      const r = await ws.cli(args, ME);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(msg);
    }
    expect(await count()).toBe(n);
  });
});

describe('osstest allocate', () => {
  it('takes free hosts by hand, keeps jobs off them, refuses held or taken hosts, and gives back only your own', async () => {
    const took = await cliJson<{ taken: LabReservation[] }>([
      'allocate',
      '2h',
      'pool1',
      '--label',
      'debugging',
    ]);
    expect(took.taken).toMatchObject([
      { host: 'pool1', kind: 'manual', owner: 'tester', label: 'debugging' },
    ]);
    expect(took.taken[0]!.end - took.taken[0]!.start).toBe(2 * H);
    const listed = await cliJson<LabReservation[]>(['allocate', '--list']);
    expect(listed.map((r) => r.host)).toEqual(['pool1']);

    // A job for the pool gets the other host.
    const f = await queueJob('pool', 'purpose-pool');
    expect((await claim()).claimed).toMatchObject({ flight: f, job: 'j', hosts: { host: 'pool2' } });

    const refusals: [string[], Record<string, string>, RegExp][] = [
      [['allocate', 'pool2'], ME, new RegExp(`host pool2 is held by ${f}/j \\(host\\)`)],
      [['allocate', 'pool1'], { USER: 'bob' }, /host pool1 is reserved \(manual \d+ by tester/],
      [['allocate', '!pool1'], { USER: 'bob' }, /you \(bob\) have not taken pool1: nothing given back/],
      [['allocate', 'ghost'], ME, /no host ghost/],
      [['allocate', '5', 'pool1'], ME, /DURATION '5' is not a duration/],
      [['allocate'], ME, /allocate needs hosts/],
    ];
    for (const [args, env, msg] of refusals) {
      const r = await ws.cli(args, env);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(msg);
    }
    // All or none: `only` is free, but pool2 is held, so neither is taken.
    const both = await ws.cli(['allocate', 'only', 'pool2'], ME);
    expect(both.code).toBe(2);
    expect((await cliJson<LabReservation[]>(['allocate', '--list'])).map((r) => r.host)).toEqual(['pool1']);
    await store.lab.closeJob({ flight: f, job: 'j', worker: 'w', sharesPrepared: false });

    // Given back, the host goes to the next job.
    const back = await ws.cli(['allocate', '!pool1'], ME);
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toContain('gave back pool1');
    expect(await cliJson<LabReservation[]>(['allocate', '--list'])).toEqual([]);
    await cliJson(['allocate', '1h', 'pool2']);
    const g = await queueJob('pool-again', 'purpose-pool');
    expect((await claim()).claimed).toMatchObject({ flight: g, job: 'j', hosts: { host: 'pool1' } });
    await store.lab.closeJob({ flight: g, job: 'j', worker: 'w', sharesPrepared: false });
    expect((await cliJson<{ givenBack: LabReservation[] }>(['allocate', '!pool2'])).givenBack).toMatchObject([
      { host: 'pool2', owner: 'tester' },
    ]);
  });
});
