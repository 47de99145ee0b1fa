/**
 * The resource plan page (lab mode) against a real sqlite store on 127.0.0.1: a host held by a
 * running job until its expected end, queued jobs booked after it or allocated to the free host, a
 * job no host can serve, and the page writing nothing (the queue and the holds are as they were).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/db/store.js';
import { loadReport } from '../../src/report/load.js';
import { startWebServer, type WebServer } from '../../src/web/server.js';
import { createWorkspace, type Workspace } from '../helpers/workspace.js';

let ws: Workspace;
let store: Store;
let web: WebServer;
let running: string;
let queued: string;

beforeAll(async () => {
  ws = createWorkspace([]);
  store = await ws.openStore();
  for (const [h, flags] of [
    ['big1', ['purpose-big']],
    ['small1', ['purpose-small']],
  ] as const) {
    await store.upsertHost({ name: h, ip: '127.0.0.1' });
    await store.setHostFlags(h, [...flags]);
  }
  // A job holding big1 for another half hour.
  running = (await store.createFlight({ branch: 'plan', intended: 'play' })).flight;
  await store.createJob(running, 'holder', 'build', { host_hostflags: 'purpose-big' });
  const take = await store.lab.takeHosts({
    flight: running,
    job: 'holder',
    holds: [{ ident: 'host', host: 'big1' }],
    expectedEnd: Date.now() + 30 * 60_000,
  });
  expect(take).toEqual({ ok: true });
  // Queued: one for big1 (booked after the holder), one for small1 (free now), one for nothing.
  queued = (await store.createFlight({ branch: 'plan', intended: 'play' })).flight;
  await store.createJob(queued, 'wants-big', 'build', { host_hostflags: 'purpose-big' });
  await store.createJob(queued, 'wants-small', 'build', { host_hostflags: 'purpose-small' });
  await store.createJob(queued, 'wants-none', 'build', { host_hostflags: 'purpose-nothing' });
  await store.lab.queueFlight(queued, { by: 'test' });
  const config = ws.config();
  web = await startWebServer({
    store,
    config,
    port: 0,
    host: '127.0.0.1',
    pollMs: 50,
    loadReport: (f) => loadReport(store, config, f),
  });
});

afterAll(async () => {
  await web?.close();
  await store?.close();
  ws?.cleanup();
});

describe('resource plan', () => {
  it('shows each host with its holder and the bookings, and each queued job with its decision', async () => {
    const holdsBefore = await store.lab.listHolds();
    const r = await fetch(new URL('/plan/', web.url));
    expect(r.status).toBe(200);
    expect(r.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await r.text();
    const row = (host: string) =>
      new RegExp(`<tr data-host="${host}">([\\s\\S]*?)</tr>`).exec(html)?.[1] ?? '';
    // big1: held by the running job now, then booked for the queued one when it is done.
    expect(row('big1')).toMatch(
      new RegExp(
        `hold <a href="../flights/${running}/holder/">${running}/holder</a> now – \\+(29|30)m[\\s\\S]*booking <a href="../flights/${queued}/wants-big/">${queued}/wants-big</a> \\+(29|30)m`,
      ),
    );
    // small1: the queued job for it would be allocated now.
    expect(row('small1')).toContain(
      `<a href="../flights/${queued}/wants-small/">${queued}/wants-small</a> now`,
    );
    const decision = (job: string) =>
      new RegExp(`<tr data-key="${queued}/${job}">([\\s\\S]*?)</tr>`).exec(html)?.[1] ?? '';
    expect(decision('wants-big')).toMatch(/<td>book<\/td><td class="mono">host=big1<\/td><td>\+(29|30)m/);
    expect(decision('wants-small')).toMatch(
      /<td>allocate<\/td><td class="mono">host=small1<\/td><td>now<\/td>/,
    );
    expect(decision('wants-none')).toMatch(/<td>impossible<\/td>[\s\S]*purpose-nothing/);
    // The timeline: a row per host, a rectangle per span.
    const svg = /<svg class="chart" id="plan-timeline"[\s\S]*?<\/svg>/.exec(html)?.[0] ?? '';
    expect(svg.match(/<g class="host"/g)).toHaveLength(2);
    // Holds: the running job's, and the allocation planned now on small1; one booking, on big1.
    expect(svg.match(/<rect class="span-hold"/g)).toHaveLength(2);
    expect(svg.match(/<rect class="span-booking"/g)).toHaveLength(1);
    // Looking allocated nothing.
    expect(await store.lab.listHolds()).toEqual(holdsBefore);
    expect((await store.getJob(queued, 'wants-small'))!.status).toBe('queued');
  });

  it('/api/plan has the same plan as JSON', async () => {
    const r = await fetch(new URL('/api/plan', web.url));
    expect(r.status).toBe(200);
    const j = (await r.json()) as {
      hosts: { name: string }[];
      decisions: { key: string; kind: string; hosts?: Record<string, string> }[];
      spans: Record<string, { kind: string; owner: string }[]>;
    };
    expect(j.hosts.map((h) => h.name).sort()).toEqual(['big1', 'small1']);
    expect(j.decisions.map((d) => [d.key, d.kind]).sort()).toEqual([
      [`${queued}/wants-big`, 'book'],
      [`${queued}/wants-none`, 'impossible'],
      [`${queued}/wants-small`, 'allocate'],
    ]);
    expect(j.spans.big1?.map((s) => [s.kind, s.owner])).toEqual([
      ['hold', `${running}/holder`],
      ['booking', `${queued}/wants-big`],
    ]);
  });

  it('/plan redirects to /plan/', async () => {
    const r = await fetch(new URL('/plan', web.url), { redirect: 'manual' });
    expect(r.status).toBe(301);
    expect(r.headers.get('location')).toBe('/plan/');
  });
});
