/**
 * The web UI against a real sqlite store on 127.0.0.1: pages rendered from the store, the Results
 * directory, the JSON API, log confinement, server-sent events as the store changes, and
 * `osstest serve` itself (URL printed, clean stop on SIGTERM).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/db/store.js';
import { stepLogPath } from '../../src/executor/run-job.js';
import { writeFlightPages } from '../../src/report/html/index.js';
import { loadReport } from '../../src/report/load.js';
import type { HostState, LogChunk, Snapshot, StepState } from '../../src/web/events.js';
import { startWebServer, type WebServer } from '../../src/web/server.js';
import { SseClient } from '../helpers/sse.js';
import { BUILD, FlightSeeder, TEST } from '../helpers/web-flight.js';
import { cliPath, createWorkspace, type Workspace } from '../helpers/workspace.js';

let ws: Workspace;
let store: Store;
let web: WebServer;
let seeder: FlightSeeder;
let logsDir: string;

/** A raw GET: the path is sent exactly as given (no client-side `..` resolution). */
function raw(
  path: string,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: web.port, path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  ws = createWorkspace([]);
  ws.configure([`Results ${join(ws.dir, 'results')}`, `AllowDir ${ws.dir}`]);
  store = await ws.openStore();
  const config = ws.config();
  logsDir = config.path('Logs');
  seeder = new FlightSeeder(store, logsDir);
  await seeder.seed('f1', { testRunvars: { note: '<script>alert(1)</script>' } });
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

describe('pages from the store', () => {
  it('flight grid, with a content security policy that allows no inline script', async () => {
    const r = await raw('/flights/f1/');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(r.headers['content-security-policy']).toContain("script-src 'self'");
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.body).toContain('<h1>Flight f1');
    expect(r.body).toContain(`<a href="../f1/${BUILD}/">${BUILD}</a>`);
    expect(r.body).toMatch(/<th class="testid" scope="row">build-prep<\/th><td class="s-pass"/);
    expect(r.body).toContain('<td class="s-running" data-job-status="test-amd64-amd64-demo">running');
  });

  it('redirects to the slash form so relative links work, keeping the query', async () => {
    const r = await raw('/flights/f1');
    expect(r.status).toBe(301);
    expect(r.headers.location).toBe('/flights/f1/');
    expect((await raw('/history/jobs/build-amd64?branch=demo')).headers.location).toBe(
      '/history/jobs/build-amd64/?branch=demo',
    );
  });

  it('job page: steps, runvars, log links; hostile runvar text escaped', async () => {
    const r = await raw(`/flights/f1/${TEST}/`);
    expect(r.status).toBe(200);
    expect(r.body).toContain('<td class="mono">hosts-allocate</td>');
    expect(r.body).toContain(`href="../../../logs/f1/${TEST}/1.ts-hosts-allocate.log"`);
    expect(r.body).toMatch(
      /<td class="mono">host<\/td><td class="runvar-val"><a href="\.\.\/\.\.\/\.\.\/history\/hosts\/box1\/">box1<\/a><\/td><td>execution<\/td>/,
    );
    expect(r.body).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(r.body).not.toContain('<script>alert(1)');
  });

  it('the links of a job page resolve to the log and back to the grid', async () => {
    const base = `${web.url}flights/f1/${BUILD}/`;
    const page = await (await fetch(base)).text();
    const href = /href="([^"]*2\.ts-build\.log)"/.exec(page)![1]!;
    const log = await fetch(new URL(href, base));
    expect(log.status).toBe(200);
    expect(await log.text()).toContain('make: Entering directory');
    const up = /<nav><a href="([^"]*)">flight f1<\/a>/.exec(page)![1]!;
    expect(new URL(up, base).pathname).toBe('/flights/f1/');
  });

  it('404 for a flight or job that is not there, as a page and as JSON', async () => {
    const p = await raw('/flights/nope/');
    expect(p.status).toBe(404);
    expect(p.body).toContain('no flight nope');
    expect((await raw('/flights/f1/no-such-job/')).status).toBe(404);
    const a = await raw('/api/flights/nope');
    expect(a.status).toBe(404);
    expect(JSON.parse(a.body)).toEqual({ error: 'no flight nope' });
    expect((await raw('/flights/?limit=0')).status).toBe(400);
  });

  it('job history, host history, branch page and flight list', async () => {
    const jh = await raw(`/history/jobs/${BUILD}/?branch=demo`);
    expect(jh.status).toBe(200);
    expect(jh.body).toContain('<a href="../../../flights/f1/">f1</a>');
    expect(jh.body).toContain('<svg class="chart" id="duration-trend"');
    const hh = await raw('/history/hosts/box1/');
    expect(hh.status).toBe(200);
    expect(hh.body).toMatch(new RegExp(`<a href="\\.\\./\\.\\./\\.\\./flights/f1/${TEST}/">${TEST}</a>`));
    expect(hh.body).toContain('still allocated');
    const b = await raw('/branches/demo/');
    expect(b.status).toBe(200);
    expect(b.body).toContain('1 pass, 1 running');
    const l = await raw('/flights/');
    expect(l.body).toContain('<a href="./f1/">f1</a>');
  });

  it('serves the written Results directory', async () => {
    const data = await loadReport(store, ws.config(), 'f1');
    await writeFlightPages(data, join(ws.dir, 'results'));
    const r = await raw('/results/f1/');
    expect(r.status).toBe(200);
    expect(r.body).toContain('<h1>Flight f1');
    expect((await raw('/results/f1')).headers.location).toBe('/results/f1/');
    expect((await raw(`/results/f1/${BUILD}/index.html`)).status).toBe(200);
  });
});

describe('JSON API', () => {
  it('/api/flights and /api/flights/:flight', async () => {
    const l = JSON.parse((await raw('/api/flights?branch=demo')).body) as { flights: { flight: string }[] };
    expect(l.flights.map((f) => f.flight)).toContain('f1');
    const f = JSON.parse((await raw('/api/flights/f1')).body) as {
      flight: { branch: string };
      jobs: {
        job: string;
        status: string;
        steps: { testid: string }[];
        runvars: { name: string; synth: boolean }[];
      }[];
    };
    expect(f.flight.branch).toBe('demo');
    const build = f.jobs.find((j) => j.job === BUILD)!;
    expect(build.status).toBe('pass');
    expect(build.steps.map((s) => s.testid)).toEqual(['build-prep', 'build']);
    expect(build.runvars.find((r) => r.name === 'built_revision_demo')?.synth).toBe(true);
  });
});

describe('log files', () => {
  beforeAll(() => {
    writeFileSync(join(ws.dir, 'secret'), 'outside the logs\n');
    mkdirSync(join(logsDir, 'f1', 'links'), { recursive: true });
    symlinkSync(join(ws.dir, 'secret'), join(logsDir, 'f1', 'links', 'out.log'));
    symlinkSync('/etc', join(logsDir, 'f1', 'links', 'etc'));
    symlinkSync(join(logsDir, 'f1', BUILD, '2.ts-build.log'), join(logsDir, 'f1', 'links', 'in.log'));
    writeFileSync(join(logsDir, 'f1', BUILD, 'page.html'), '<script>alert(1)</script>');
  });

  it('serves a step log as plain text in a sandbox', async () => {
    const r = await raw(`/logs/f1/${BUILD}/2.ts-build.log`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(r.headers['content-security-policy']).toContain('sandbox');
    expect(r.body).toContain('make: Leaving directory');
  });

  it('never serves a file as HTML', async () => {
    const r = await raw(`/logs/f1/${BUILD}/page.html`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/octet-stream');
  });

  it.each([
    ['/logs/../secret', 400],
    ['/logs/%2e%2e/secret', 400],
    ['/logs/f1/%2e%2e/%2e%2e/secret', 400],
    ['/logs/f1%2F..%2F..%2Fsecret', 400],
    ['/logs/%2Fetc%2Fpasswd', 400],
    ['/logs//etc/passwd', 404],
    ['/logs/f1/links/out.log', 403],
    ['/logs/f1/links/etc/passwd', 403],
    ['/logs/f1/nothing.log', 404],
    [`/logs/f1/${BUILD}/`, 404],
    ['/logs/f1/%E0%A4%A', 400],
    ['/stash/../secret', 400],
    ['/results/../secret', 400],
  ])('refuses %s (%i)', async (path, status) => {
    const r = await raw(path);
    expect(r.status).toBe(status);
    expect(r.body).not.toContain('outside the logs');
    expect(r.body).not.toContain('root:');
  });

  it('only reads: other methods get 404', async () => {
    const r = await fetch(`${web.url}logs/f1/${BUILD}/2.ts-build.log`, { method: 'DELETE' });
    expect(r.status).toBe(404);
    const head = await fetch(`${web.url}logs/f1/${BUILD}/2.ts-build.log`, { method: 'HEAD' });
    expect(head.status).toBe(200);
  });

  it('follows a symlink that stays inside the log directory', async () => {
    const r = await raw('/logs/f1/links/in.log');
    expect(r.status).toBe(200);
    expect(r.body).toContain('make: Entering directory');
  });
});

describe('live events', () => {
  it('a snapshot, then steps starting and finishing, job status, host progress and log lines', async () => {
    const sse = await SseClient.open(`${web.url}api/flights/f1/events`);
    try {
      expect(sse.res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
      const snap = (await sse.waitFor((e) => e.type === 'snapshot')).data as Snapshot;
      expect(snap.jobs.map((j) => `${j.job}:${j.status}`).sort()).toEqual([
        `${BUILD}:pass`,
        `${TEST}:running`,
      ]);
      expect(snap.steps).toHaveLength(3);
      expect(snap.hosts.map((h) => h.host)).toEqual(['box1']);

      const n = sse.events.length;
      const step = await seeder.start('f1', TEST, 'ts-install-dist', 'install-dist');
      const started = (await sse.waitFor((e) => e.type === 'step', 5000, n)).data as StepState;
      expect(started).toMatchObject({
        job: TEST,
        stepno: step.stepno,
        testid: 'install-dist',
        status: 'running',
      });
      expect(started.logHref).toBe(`../../logs/${stepLogPath('f1', TEST, step.stepno, 'ts-install-dist')}`);
      const first = (await sse.waitFor((e) => e.type === 'log', 5000, n)).data as LogChunk;
      expect(first).toMatchObject({ job: TEST, stepno: step.stepno, reset: true });
      expect(first.lines[0]).toContain('osstest: step 2 ts-install-dist');

      const m = sse.events.length;
      seeder.appendLog(step.rel, ['unpacking dist.tar.gz', '<b>not bold</b>']);
      const more = (
        await sse.waitFor((e) => e.type === 'log' && (e.data as LogChunk).lines.length > 0, 5000, m)
      ).data as LogChunk;
      expect(more.reset).toBe(false);
      expect(more.lines).toEqual(['unpacking dist.tar.gz', '<b>not bold</b>']);

      await store.recordHostEvent('box1', { kind: 'progress', detail: 'installer-started' });
      const hosts = (await sse.waitFor((e) => e.type === 'hosts', 5000, m)).data as HostState[];
      expect(hosts[0]).toMatchObject({
        host: 'box1',
        job: TEST,
        ident: 'host',
        progress: 'installer-started',
      });

      const k = sse.events.length;
      await seeder.finish('f1', TEST, step, 'fail');
      const done = (await sse.waitFor((e) => e.type === 'step', 5000, k)).data as StepState;
      expect(done).toMatchObject({ stepno: step.stepno, status: 'fail' });
      expect(done.finished).not.toBeNull();
      await store.setJobStatus('f1', TEST, 'fail');
      const job = await sse.waitFor((e) => e.type === 'job', 5000, k);
      expect(job.data).toMatchObject({ job: TEST, status: 'fail' });
    } finally {
      sse.close();
    }
  });

  it('a new watcher gets the newest lines of the log being followed in its snapshot', async () => {
    const sse = await SseClient.open(`${web.url}api/flights/f1/events`);
    try {
      const snap = (await sse.waitFor((e) => e.type === 'snapshot')).data as Snapshot;
      expect(snap.log?.lines).toContain('unpacking dist.tar.gz');
      expect(web.events.watching()).toEqual(['f1']);
    } finally {
      sse.close();
    }
    // Nobody watches any more: the store is no longer polled for this flight.
    await expect.poll(() => web.events.watching(), { timeout: 5000 }).toEqual([]);
  });

  it('404 for the events of a flight that is not there', async () => {
    const r = await raw('/api/flights/nope/events');
    expect(r.status).toBe(404);
  });

  it('the live page loads its script from the server, with the events URL in a data attribute', async () => {
    const r = await raw('/flights/f1/live');
    expect(r.status).toBe(200);
    expect(r.body).toContain('<main id="live" data-flight="f1" data-events="../../api/flights/f1/events">');
    expect(r.body).toContain('<script src="../../static/live.js"></script>');
    const js = await raw('/static/live.js');
    expect(js.status).toBe(200);
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(js.body).not.toContain('innerHTML');
  });
});

describe('osstest serve', () => {
  it('prints its URL, serves, and stops cleanly on SIGTERM, ending open event streams', async () => {
    const child = spawn(process.execPath, [cliPath, 'serve', '--port', '0'], {
      cwd: ws.dir,
      env: { ...process.env, OSSTEST_CONFIG: ws.configFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const deadline = Date.now() + 20_000;
    while (!/http:\/\/127\.0\.0\.1:\d+\//.test(out)) {
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error(`serve did not start: ${out} ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const url = /http:\/\/127\.0\.0\.1:\d+\//.exec(out)![0];
    const page = await fetch(`${url}flights/f1/`);
    expect(page.status).toBe(200);
    const sse = await SseClient.open(`${url}api/flights/f1/events`);
    await sse.waitFor((e) => e.type === 'snapshot');
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toContain('SIGTERM: stopping');
    await sse.waitFor(() => false, 5000).catch(() => undefined);
    expect(sse.ended).toBe(true);
  });
});
