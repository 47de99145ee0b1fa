/**
 * The webspace: HTTP files for booting and installing hosts, and the record of how far each host got.
 *
 *   GET /host/<name>/<file>             a file from `<WebspaceDir>/<name>/` (iPXE script, kernel, initrds…)
 *   GET /host/<name>/progress/<event>   a host saying how far it got (`booted`, `ssh-ready`, …)
 *
 * Every request for a host is checked against the host's address in the host database (its DHCP
 * reservation): a request from any other address is refused (403), counted, and recorded against the
 * host as a `refused` event, so one host cannot fetch another's files (its private host key is among
 * them) or report progress in its name. Accepted requests become host events (`fetch`, `progress`),
 * which the controller waits on (instead of tailing an access log).
 *
 * Files: the name is one path component of safe characters, and its real path (after symlinks) must be
 * inside the host's directory; nothing else is ever served.
 */
import { realpathSync, statSync } from 'node:fs';
import { join, sep } from 'node:path';
import express, { type Request, type Response, type Router } from 'express';

export interface WebspaceHost {
  name: string;
  ip: string | null;
}

export interface WebspaceEvent {
  kind: 'fetch' | 'progress' | 'refused';
  detail: string;
}

export interface WebspaceOptions {
  /** WebspaceDir: per-host directories are `<root>/<host>/`. */
  root: string;
  lookupHost(name: string): Promise<WebspaceHost | undefined>;
  /** Records an event against a host; failures are logged, not sent to the client. */
  record(host: string, event: WebspaceEvent): Promise<void>;
  log?: (line: string) => void;
}

export interface WebspaceStats {
  requests: number;
  served: number;
  progress: number;
  refused: number;
  notFound: number;
  errors: number;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const EVENT = /^[a-z][a-z0-9-]{0,40}$/;

/** The client's IPv4 address as the host database writes it (IPv4-mapped IPv6 unwrapped). */
export function clientAddress(req: Request): string {
  const a = req.socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

export function webspaceRouter(opts: WebspaceOptions): { router: Router; stats: WebspaceStats } {
  const stats: WebspaceStats = { requests: 0, served: 0, progress: 0, refused: 0, notFound: 0, errors: 0 };
  const log = opts.log ?? (() => {});
  const router = express.Router();
  const record = (host: string, ev: WebspaceEvent) =>
    opts.record(host, ev).catch((err: unknown) => {
      stats.errors++;
      log(`webspace: recording ${ev.kind} for ${host} failed: ${(err as Error).message}`);
    });

  /** The host, if the request may act for it; otherwise the response is sent and undefined returned. */
  const admit = async (req: Request, res: Response, name: string, what: string) => {
    stats.requests++;
    const from = clientAddress(req);
    const host = NAME.test(name) ? await opts.lookupHost(name) : undefined;
    if (!host) {
      stats.notFound++;
      res.status(404).type('text/plain').send(`no host ${name}\n`);
      return undefined;
    }
    if (!host.ip || host.ip !== from) {
      stats.refused++;
      log(`webspace: refused ${what} for ${name} from ${from} (host is ${host.ip ?? 'without address'})`);
      await record(name, { kind: 'refused', detail: `${what} from ${from}` });
      res.status(403).type('text/plain').send(`not from ${name}'s address\n`);
      return undefined;
    }
    return host;
  };

  router.get('/host/:name/progress/:event', async (req, res) => {
    const { name, event } = req.params as { name: string; event: string };
    if (!(await admit(req, res, name, `progress ${event}`))) return;
    if (!EVENT.test(event)) {
      stats.notFound++;
      res.status(404).type('text/plain').send('bad event name\n');
      return;
    }
    stats.progress++;
    await record(name, { kind: 'progress', detail: event });
    res.type('text/plain').send('ok\n');
  });

  router.get('/host/:name/:file', async (req, res) => {
    const { name, file } = req.params as { name: string; file: string };
    if (!(await admit(req, res, name, `fetch ${file}`))) return;
    const dir = join(opts.root, name);
    let real: string;
    try {
      if (!NAME.test(file)) throw new Error('bad name');
      real = realpathSync(join(dir, file));
      const base = realpathSync(dir);
      if (!real.startsWith(base + sep) || !statSync(real).isFile()) throw new Error('outside');
    } catch {
      stats.notFound++;
      res.status(404).type('text/plain').send(`no file ${file} for ${name}\n`);
      return;
    }
    const started = Date.now();
    res.sendFile(
      real,
      { dotfiles: 'allow', cacheControl: false, lastModified: false, etag: false },
      (err) => {
        if (err) {
          stats.errors++;
          log(`webspace: sending ${real} to ${name} failed: ${err.message}`);
          return;
        }
        stats.served++;
        const bytes = Number(res.getHeader('Content-Length') ?? 0);
        void record(name, {
          kind: 'fetch',
          detail: `http ${file} ${bytes} bytes ${Date.now() - started} ms`,
        });
      },
    );
  });

  return { router, stats };
}

/**
 * How far a host has got, from its host events: the last `progress` it reported, else the last file it
 * fetched. For the web UI's install-progress column (src/web/events.ts InstallProgressSource).
 */
export function progressFromEvents(store: {
  listHostEvents(host: string, opts?: { since?: number }): Promise<Array<{ kind: string; detail: string }>>;
}): { progress(host: string): Promise<string | undefined> } {
  return {
    progress: async (host) => {
      const ev = await store.listHostEvents(host);
      const last = [...ev].reverse().find((e) => e.kind === 'progress' || e.kind === 'fetch');
      if (!last) return undefined;
      return last.kind === 'progress' ? last.detail : `fetched ${last.detail.split(' ')[1] ?? last.detail}`;
    },
  };
}
