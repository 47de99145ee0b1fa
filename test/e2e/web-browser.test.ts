/**
 * The web UI in a real browser: Debian's headless Chromium driven by playwright-core, against
 * `osstest serve`'s app on 127.0.0.1 with a real sqlite store. The flight grid (cells, colours, the
 * verdict's link to the reference flight), a job page, a live flight that changes while the test
 * watches, and hostile job names and log lines that must show as text without running anything.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/db/store.js';
import { pathSegment, writeFlightPages } from '../../src/report/html/index.js';
import { loadReport } from '../../src/report/load.js';
import { startWebServer, type WebServer } from '../../src/web/server.js';
import { prerequisites } from '../helpers/env.js';
import { BUILD, FlightSeeder, TEST } from '../helpers/web-flight.js';
import { createWorkspace, type Workspace } from '../helpers/workspace.js';
import { reportData, XSS_IMG, XSS_SCRIPT } from '../unit/html-fixtures.js';

const CHROMIUM = '/usr/bin/chromium';
const ok = prerequisites('browser tests', { commands: [CHROMIUM] });
/** Set to a directory to keep screenshots of the grid and the live page (for a person to look at). */
const shots = process.env.OSSTEST_SCREENSHOTS;
/** Something an injected script would do that the test can see. */
const DIALOG_PAYLOAD = '<img src=x onerror=alert(1)>';

describe.skipIf(!ok)('web UI in Chromium', () => {
  let ws: Workspace;
  let store: Store;
  let web: WebServer;
  let seeder: FlightSeeder;
  let ctx: BrowserContext;
  let profile: string;
  const dialogs: string[] = [];

  async function open(path: string): Promise<Page> {
    const page = await ctx.newPage();
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    const r = await page.goto(new URL(path, web.url).href);
    expect(r?.status(), path).toBe(200);
    return page;
  }

  /** No payload ran: the flag they set is untouched and no dialog was opened. */
  async function nothingRan(page: Page): Promise<void> {
    // Runs in the page; tsconfig has no DOM types, so the page's globals are described here.
    expect(await page.evaluate(() => (globalThis as { __xss?: number }).__xss ?? 0)).toBe(0);
    expect(dialogs).toEqual([]);
  }

  beforeAll(async () => {
    ws = createWorkspace([]);
    ws.configure([`Results ${join(ws.dir, 'results')}`, `AllowDir ${ws.dir}`]);
    store = await ws.openStore();
    const config = ws.config();
    seeder = new FlightSeeder(store, config.path('Logs'));

    // f0 passed everything at revision r0; f1 fails run-tests at r1: a regression against f0.
    for (const [name, rev, verdict] of [
      ['f0', 'r0', 'pass'],
      ['f1', 'r1', 'fail'],
    ] as const) {
      await seeder.seed(name, { revision: rev, testRunvars: { note: XSS_IMG } });
      const s2 = await seeder.start(name, TEST, 'ts-install-dist', 'install-dist');
      await seeder.finish(name, TEST, s2, 'pass');
      const s3 = await seeder.start(name, TEST, 'ts-run-tests', XSS_SCRIPT);
      seeder.appendLog(s3.rel, [XSS_SCRIPT, XSS_IMG]);
      await seeder.finish(name, TEST, s3, verdict);
      await store.setJobStatus(name, TEST, verdict);
      await store.releaseJobHosts(name, TEST);
      await store.setFlightBlessing(name, 'real');
    }
    // f2 is running: the live view watches it.
    await seeder.seed('f2', { revision: 'r2' });

    // A job name cannot hold `<` in the store, but report data is not only the store's: the written
    // pages of a hand-made report carry hostile job names.
    const hostile = reportData('h1', [
      { job: XSS_SCRIPT, steps: [{ testid: 'build', status: 'pass' }] },
      { job: XSS_IMG, steps: [{ testid: DIALOG_PAYLOAD, status: 'fail' }] },
    ]);
    await writeFlightPages(hostile, config.path('Results'));

    web = await startWebServer({
      store,
      config,
      port: 0,
      host: '127.0.0.1',
      pollMs: 100,
      loadReport: (f) => loadReport(store, config, f),
    });
    profile = mkdtempSync(join(tmpdir(), 'osstest-chromium-'));
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    ctx.setDefaultTimeout(10_000);
  });

  afterAll(async () => {
    await ctx?.close();
    await web?.close();
    await store?.close();
    ws?.cleanup();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it('flight grid: cells and colours, and the regression linked to the reference flight', async () => {
    const page = await open('/flights/f1/');
    await expect.poll(() => page.locator('#heading').textContent()).toBe('Regressions :-(');
    type Styled = { getComputedStyle(el: unknown): { backgroundColor: string } };
    const colour = (sel: string) =>
      page
        .locator(sel)
        .first()
        .evaluate((el) => (globalThis as unknown as Styled).getComputedStyle(el).backgroundColor);
    const failCell = page.locator(`td[title^="${TEST} step 3 "]`);
    expect(await failCell.getAttribute('class')).toBe('s-fail');
    expect(await colour(`td[title^="${TEST} step 3 "]`)).toBe('rgb(247, 169, 169)');
    expect(await colour(`td[title^="${BUILD} step 1 "]`)).toBe('rgb(185, 240, 185)');
    expect(await failCell.locator('.verdict').textContent()).toBe('fail REGR. vs. f0');
    // The testid with a script in it is a row heading, as text.
    expect(await page.locator('th.testid').allTextContents()).toEqual([
      'build-prep',
      'build',
      'hosts-allocate',
      'install-dist',
      XSS_SCRIPT,
    ]);
    if (shots) await page.screenshot({ path: join(shots, 'grid.png'), fullPage: true });
    await failCell.locator('a.ref').click();
    await page.waitForURL(/\/flights\/f0\/$/);
    expect(await page.locator('h1').textContent()).toContain('Flight f0');
    await nothingRan(page);
  });

  it('job page: steps with status and duration, runvars by kind, and a working log link', async () => {
    const page = await open(`/flights/f1/${TEST}/`);
    const rows = page.locator('#steps tr[data-stepno]');
    expect(await rows.count()).toBe(3);
    // innerText: as a person sees it (the verdict is a block under the status).
    expect(await rows.nth(2).locator('td').allInnerTexts()).toEqual([
      '3',
      XSS_SCRIPT,
      'ts-run-tests',
      'fail\nfail REGR. vs. f0',
      expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/),
      expect.stringMatching(/^\d+s$/),
    ]);
    const runvar = (name: string) =>
      page.locator('#runvars tr', { has: page.locator(`td.mono:text-is("${name}")`) }).locator('td');
    expect(await runvar('buildjob').allTextContents()).toEqual(['buildjob', BUILD, 'definition']);
    expect(await runvar('host').allTextContents()).toEqual(['host', 'box1', 'execution']);
    expect(await runvar('note').allTextContents()).toEqual(['note', XSS_IMG, 'definition']);
    await rows.nth(2).locator('a').first().click();
    await page.waitForURL(/\/logs\/f1\//);
    const text = await page.locator('body').textContent();
    expect(text).toContain(XSS_SCRIPT);
    expect(text).toContain(XSS_IMG);
    await nothingRan(page);
  });

  it('job history: a duration point per finished run and a pass-rate strip per testid', async () => {
    const page = await open(`/history/jobs/${TEST}/?branch=demo`);
    // f2 is still running: no duration yet.
    expect(await page.locator('#duration-trend circle').count()).toBe(2);
    expect(await page.locator('#strips tr').last().textContent()).toMatch(/1\/2 50%$/);
    if (shots) await page.screenshot({ path: join(shots, 'job-history.png'), fullPage: true });
    await nothingRan(page);
  });

  it('live flight: steps start and finish, host progress and log lines appear as they happen', async () => {
    const page = await open('/flights/f2/live');
    await page.locator('#connection', { hasText: 'live' }).waitFor();
    await page.locator(`#jobs tr[data-job="${TEST}"] td[data-status="running"]`).waitFor();
    expect(await page.locator('#steps tr[data-step]').count()).toBe(3);

    const step = await seeder.start('f2', TEST, 'ts-install-dist', 'install-dist');
    const row = page.locator(`#steps tr[data-step="${TEST}/${step.stepno}"]`);
    await row.locator('td[data-status="running"]').waitFor();
    await expect
      .poll(() => page.locator(`#jobs tr[data-job="${TEST}"] td`).nth(2).textContent())
      .toBe(`${step.stepno} install-dist`);

    seeder.appendLog(step.rel, ['unpacking dist', XSS_SCRIPT, XSS_IMG, DIALOG_PAYLOAD]);
    await expect.poll(() => page.locator('#log').textContent()).toContain(DIALOG_PAYLOAD);
    const log = (await page.locator('#log').textContent()) ?? '';
    expect(log).toContain(`unpacking dist\n${XSS_SCRIPT}\n${XSS_IMG}`);
    expect(await page.locator('#log *').count()).toBe(0);

    await store.recordHostEvent('box1', { kind: 'progress', detail: 'installer-running' });
    await page.locator('#hosts tr[data-host="box1"] td[data-progress="installer-running"]').waitFor();

    if (shots) await page.screenshot({ path: join(shots, 'live.png'), fullPage: true });
    await seeder.finish('f2', TEST, step, 'pass');
    await row.locator('td[data-status="pass"]').waitFor();
    await store.setJobStatus('f2', TEST, 'pass');
    await page.locator(`#jobs tr[data-job="${TEST}"] td[data-status="pass"]`).waitFor();
    await nothingRan(page);
  });

  it('hostile job names and testids in written pages show as text and run nothing', async () => {
    const page = await open('/results/h1/');
    const jobs = await page.locator('th.job a').allTextContents();
    expect(jobs).toEqual([XSS_SCRIPT, XSS_IMG]);
    expect(await page.locator('th.testid').allTextContents()).toContain(DIALOG_PAYLOAD);
    expect(await page.locator('img').count()).toBe(0);
    await page.locator('th.job a').nth(1).click();
    await page.waitForURL(
      new RegExp(`/results/h1/${encodeURIComponent(pathSegment(XSS_IMG)).replace(/%/g, '%')}/$`),
    );
    expect(await page.locator('h1').textContent()).toBe(`${XSS_IMG} flight h1`);
    await nothingRan(page);
  });
});
