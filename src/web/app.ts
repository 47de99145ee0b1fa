/**
 * The web UI (`osstest serve`): the report pages rendered from the store on request (always
 * current), the written Results directory, step logs and stash files (confined to their
 * directories), a small JSON API, and the live view of a running flight fed by server-sent events.
 *
 *   /                               → /flights/
 *   /flights/[?branch=B]            flights, newest first
 *   /flights/F/                     flight grid             /flights/F/J/   job page
 *   /flights/F/live                 live view               (a job named `live`: /flights/F/live/)
 *   /history/jobs/J/[?branch=B]     job history             /history/hosts/H/   host history
 *   /branches/B/                    branch page
 *   /plan/                          resource plan (lab mode: the planner's full plan, host by host)
 *   /logs/PATH  /stash/PATH         files under Logs and Stash, as text or octet-stream, never HTML
 *   /results/PATH                   the Results directory as written by report-flight
 *   /static/live.js                 the live view's script (public_html/)
 *   /api/flights[?branch&limit]     /api/flights/F          /api/flights/F/events (text/event-stream)
 *   /api/plan                       the resource plan as JSON
 *
 * Every answer carries a Content-Security-Policy that allows no inline script, so an escaping
 * mistake would still not run anything; the escaping itself is the templates' (report/html).
 */
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Config } from '../config/config.js';
import type { Store } from '../db/store.js';
import type { Flight } from '../db/types.js';
import { harnessRoot } from '../executor/paths.js';
import {
  DEFAULT_HISTORY_LIMIT,
  type FlightVerdict,
  loadBranchHistory,
  loadFlightList,
  loadHostHistory,
  loadJobHistory,
} from '../report/html/history-data.js';
import {
  listJobFiles,
  renderBranchPage,
  renderFlightGrid,
  renderFlightList,
  renderHostHistory,
  renderJobHistory,
  renderJobPage,
  renderResourcePlan,
} from '../report/html/index.js';
import { Links } from '../report/html/links.js';
import { loadResourcePlan } from '../report/html/plan-view.js';
import { renderTemplate } from '../report/html/templates.js';
import { ReportError } from '../report/load.js';
import type { ReportData } from '../report/report-data.js';
import { ConfinementError, openConfined, urlPathComponents } from './confine.js';
import {
  type FlightEventSource,
  type InstallProgressSource,
  intervalSignal,
  type LiveEvent,
  PollingFlightEvents,
} from './events.js';

export const PUBLIC_DIR = join(harnessRoot, 'public_html');

export interface WebAppOptions {
  store: Store;
  config: Config;
  /** The report data of a flight (judged against its baseline): report/load.ts `loadReport`. */
  loadReport: (flight: string) => Promise<ReportData>;
  /** Default: polling the store every `pollMs`. */
  events?: FlightEventSource;
  pollMs?: number;
  progress?: InstallProgressSource;
  /** The verdict and push of a flight for the branch page, when known. */
  verdictOf?: (f: Flight) => Promise<FlightVerdict | undefined>;
  /** Seconds between SSE keep-alive comments (default 15). */
  keepAliveSeconds?: number;
}

export interface WebApp {
  app: express.Express;
  events: FlightEventSource;
  /** Ends every event stream and stops the watchers; the HTTP server is the caller's to close. */
  close(): void;
}

/** Asked for something that is not there (no such flight, job, file); answered 404. */
export class NotFound extends Error {
  override name = 'NotFound';
}

/** A malformed request (bad query value); answered 400. */
export class BadRequest extends Error {
  override name = 'BadRequest';
}

const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  // The pages carry their CSS inline (no external assets, so written pages work as files too).
  "style-src 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Files from Logs and Stash are data: sandboxed, whatever a browser makes of them. */
const FILE_CSP = "sandbox; default-src 'none'";

const TEXT_EXT = /\.(log|txt|out|err|conf|cfg|config|sh|diff|patch|xml|json|dot|csv|tap)$/i;

function one(q: unknown, name: string): string | undefined {
  if (q === undefined) return undefined;
  if (typeof q !== 'string') throw new BadRequest(`query parameter ${name} given more than once`);
  return q === '' ? undefined : q;
}

function limitParam(q: unknown): number {
  const v = one(q, 'limit');
  if (v === undefined) return DEFAULT_HISTORY_LIMIT;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 1000)
    throw new BadRequest(`limit must be a number from 1 to 1000, not ${JSON.stringify(v)}`);
  return n;
}

function sendHtml(res: Response, html: string, status = 200): void {
  res.status(status).type('text/html; charset=utf-8').send(html);
}

/** Redirects `/x/y` to `/x/y/` so the pages' relative links resolve; keeps the query. */
function slash(req: Request, res: Response): void {
  const q = req.originalUrl.indexOf('?');
  const path = q < 0 ? req.originalUrl : req.originalUrl.slice(0, q);
  res.redirect(301, `${path}/${q < 0 ? '' : req.originalUrl.slice(q)}`);
}

async function sendFile(
  res: Response,
  root: string,
  parts: string[],
  typeOf: (name: string) => string,
): Promise<void> {
  const f = await openConfined(root, parts);
  const name = parts[parts.length - 1] ?? '';
  res.status(200);
  res.setHeader('Content-Type', typeOf(name));
  res.setHeader('Content-Length', String(f.size));
  res.setHeader('Last-Modified', new Date(f.mtimeMs).toUTCString());
  res.setHeader('Cache-Control', 'no-cache');
  const stream = createReadStream('', {
    fd: f.handle.fd,
    autoClose: false,
    start: 0,
    end: Math.max(0, f.size - 1),
  });
  await new Promise<void>((resolve, reject) => {
    stream.on('error', reject);
    res.on('close', resolve);
    if (f.size === 0) {
      res.end();
      resolve();
    } else stream.pipe(res);
  }).finally(() => f.handle.close());
}

function logType(name: string): string {
  return TEXT_EXT.test(name) || !name.includes('.')
    ? 'text/plain; charset=utf-8'
    : 'application/octet-stream';
}

function resultsType(name: string): string {
  if (/\.html?$/i.test(name)) return 'text/html; charset=utf-8';
  if (/\.svg$/i.test(name)) return 'image/svg+xml';
  if (/\.json$/i.test(name)) return 'application/json; charset=utf-8';
  if (/\.xml$/i.test(name)) return 'application/xml; charset=utf-8';
  return logType(name);
}

export function createWebApp(o: WebAppOptions): WebApp {
  const { store, config } = o;
  const logsDir = config.path('Logs');
  const stashDir = config.path('Stash');
  const resultsDir = config.path('Results');
  const events =
    o.events ??
    new PollingFlightEvents(store, {
      logsDir,
      ...(o.pollMs === undefined ? {} : { signal: intervalSignal(o.pollMs) }),
      ...(o.progress === undefined ? {} : { progress: o.progress }),
    });
  const streams = new Set<Response>();
  const keepAliveMs = (o.keepAliveSeconds ?? 15) * 1000;

  const app = express();
  app.disable('x-powered-by');
  app.set('strict routing', true);

  app.use((_req, res, next) => {
    res.setHeader('Content-Security-Policy', PAGE_CSP);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('X-Frame-Options', 'DENY');
    next();
  });

  app.get('/', (_req, res) => res.redirect(302, '/flights/'));
  app.get('/flights', slash);
  app.get('/flights/', async (req, res) => {
    const branch = one(req.query.branch, 'branch');
    const l = await loadFlightList(store, {
      limit: limitParam(req.query.limit),
      ...(branch ? { branch } : {}),
    });
    sendHtml(res, renderFlightList(l));
  });
  app.get('/flights/:flight/live', async (req, res) => {
    const flight = req.params.flight;
    if ((await store.getFlight(flight)) === undefined) throw new NotFound(`no flight ${flight}`);
    const links = new Links('live');
    sendHtml(
      res,
      renderTemplate('live', {
        flight,
        flightHref: links.flight(flight),
        allFlightsHref: links.allFlights(),
        eventsHref: `../../api/flights/${encodeURIComponent(flight)}/events`,
        scriptHref: '../../static/live.js',
      }),
    );
  });
  app.get('/flights/:flight', slash);
  app.get('/flights/:flight/', async (req, res) => {
    sendHtml(res, renderFlightGrid(await report(req.params.flight)));
  });
  app.get('/flights/:flight/:job', slash);
  app.get('/flights/:flight/:job/', async (req, res) => {
    const { flight, job } = req.params;
    const data = await report(flight);
    const detail = data.jobs.find((j) => j.job === job);
    if (detail === undefined) throw new NotFound(`flight ${flight} has no job ${job}`);
    sendHtml(res, renderJobPage(data, detail, await listJobFiles(logsDir, stashDir, flight, job)));
  });

  app.get('/history/jobs/:job', slash);
  app.get('/history/jobs/:job/', async (req, res) => {
    const branch = one(req.query.branch, 'branch');
    const h = await loadJobHistory(store, req.params.job, {
      limit: limitParam(req.query.limit),
      ...(branch ? { branch } : {}),
    });
    sendHtml(res, renderJobHistory(h));
  });
  app.get('/history/hosts/:host', slash);
  app.get('/history/hosts/:host/', async (req, res) => {
    sendHtml(
      res,
      renderHostHistory(
        await loadHostHistory(store, req.params.host, { limit: limitParam(req.query.limit) }),
      ),
    );
  });
  app.get('/branches/:branch', slash);
  app.get('/branches/:branch/', async (req, res) => {
    const b = await loadBranchHistory(store, req.params.branch, {
      limit: limitParam(req.query.limit),
      ...(o.verdictOf === undefined ? {} : { verdictOf: o.verdictOf }),
    });
    sendHtml(res, renderBranchPage(b));
  });

  app.get('/plan', slash);
  app.get('/plan/', async (_req, res) => {
    sendHtml(res, renderResourcePlan(await loadResourcePlan(store, config)));
  });
  app.get('/api/plan', async (_req, res) => {
    const r = await loadResourcePlan(store, config);
    res.json({ now: r.plan.now, hosts: r.hosts, spans: r.plan.spans, decisions: r.plan.decisions });
  });

  const files =
    (root: string, typeOf: (name: string) => string, csp: string) => async (req: Request, res: Response) => {
      res.setHeader('Content-Security-Policy', csp);
      const parts = urlPathComponents(req.path);
      await sendFile(res, root, parts, typeOf);
    };
  // Mounted with `use` (req.path is then the still-encoded rest of the path); only reading is served.
  const readOnly = (req: Request, _res: Response, next: NextFunction): void => {
    if (req.method === 'GET' || req.method === 'HEAD') next();
    else next(new NotFound(`${req.method} ${req.originalUrl}: files are only read`));
  };
  app.use('/logs', readOnly, files(logsDir, logType, FILE_CSP));
  app.use('/stash', readOnly, files(stashDir, logType, FILE_CSP));
  app.use('/results', readOnly, async (req, res) => {
    const parts = urlPathComponents(req.path);
    // A directory's page is its index.html, as when the files are opened from disk.
    if (req.path.endsWith('/') || parts.length === 0) parts.push('index.html');
    try {
      await sendFile(res, resultsDir, parts, resultsType);
    } catch (err) {
      if (err instanceof ConfinementError && err.status === 404 && !req.path.endsWith('/')) {
        // `/results/F` names a directory: send the browser to `/results/F/`.
        try {
          const f = await openConfined(resultsDir, [...parts, 'index.html']);
          await f.handle.close();
          return slash(req, res);
        } catch {
          // not a page directory either
        }
      }
      throw err;
    }
  });
  app.get('/static/live.js', async (_req, res) => {
    await sendFile(res, PUBLIC_DIR, ['live.js'], () => 'text/javascript; charset=utf-8');
  });

  app.get('/api/flights', async (req, res) => {
    const branch = one(req.query.branch, 'branch');
    const flights = await store.listFlights({
      limit: limitParam(req.query.limit),
      ...(branch ? { branch } : {}),
    });
    res.json({ flights });
  });
  app.get('/api/flights/:flight', async (req, res) => {
    const flight = req.params.flight;
    const f = await store.getFlight(flight);
    if (f === undefined) throw new NotFound(`no flight ${flight}`);
    const [jobs, steps, runvars] = await Promise.all([
      store.listJobs(flight),
      store.listSteps(flight),
      store.listRunvars(flight),
    ]);
    res.json({
      flight: f,
      jobs: jobs.map((j) => ({
        ...j,
        steps: steps.filter((s) => s.job === j.job),
        runvars: runvars.filter((r) => r.job === j.job),
      })),
    });
  });
  app.get('/api/flights/:flight/events', async (req, res) => {
    const flight = req.params.flight;
    let open = true;
    let end: (() => void) | undefined;
    // The client may leave while the subscription is being made: noticed either way.
    res.on('close', () => {
      open = false;
      end?.();
    });
    const send = (e: LiveEvent): void => {
      // JSON.stringify never yields a raw newline, so one `data:` line carries the whole event.
      if (open) res.write(`event: ${e.type}\ndata: ${JSON.stringify(e.data)}\n\n`);
    };
    const queued: LiveEvent[] = [];
    let started = false;
    const unsubscribe = await events.subscribe(flight, (e) => (started ? send(e) : queued.push(e)));
    if (unsubscribe === undefined) throw new NotFound(`no flight ${flight}`);
    if (!open) {
      unsubscribe();
      return;
    }
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    started = true;
    for (const e of queued) send(e);
    streams.add(res);
    const keepAlive = setInterval(() => open && res.write(': keep-alive\n\n'), keepAliveMs);
    let ended = false;
    end = (): void => {
      if (ended) return;
      ended = true;
      clearInterval(keepAlive);
      unsubscribe();
      streams.delete(res);
    };
  });

  app.use((req, _res) => {
    throw new NotFound(`nothing at ${req.path}`);
  });

  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const status =
      err instanceof NotFound
        ? 404
        : err instanceof BadRequest || err instanceof RangeError
          ? 400
          : err instanceof ConfinementError
            ? err.status
            : err instanceof ReportError
              ? 404
              : 500;
    const message = err instanceof Error ? err.message : String(err);
    if (status === 500)
      process.stderr.write(
        `osstest serve: ${req.method} ${req.originalUrl}: ${(err as Error)?.stack ?? message}\n`,
      );
    if (res.headersSent) {
      res.end();
      return;
    }
    if (req.path.startsWith('/api/')) {
      res.status(status).json({ error: message });
      return;
    }
    const title = status === 404 ? 'Not found' : status === 500 ? 'Internal error' : 'Bad request';
    sendHtml(res, renderTemplate('error', { title, message }), status);
  });

  async function report(flight: string): Promise<ReportData> {
    if ((await store.getFlight(flight)) === undefined) throw new NotFound(`no flight ${flight}`);
    return o.loadReport(flight);
  }

  return {
    app,
    events,
    close: () => {
      for (const res of streams) res.end();
      streams.clear();
      events.close();
    },
  };
}
