/**
 * A plain HTTP server for the webspace router, for where the webspace runs on its own (the virtual
 * lab's boot services, inside the lab namespace, where the web UI does not run). One access-log line
 * per request goes to `log`.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Router } from 'express';

export interface WebspaceServer {
  server: Server;
  address: string;
  port: number;
  close(): Promise<void>;
}

export async function startWebspaceServer(opts: {
  host: string;
  port: number;
  router: Router;
  log?: (line: string) => void;
}): Promise<WebspaceServer> {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  if (opts.log) {
    const log = opts.log;
    app.use((req, res, next) => {
      const t = Date.now();
      res.on('finish', () =>
        log(
          `http ${req.socket.remoteAddress ?? '-'} ${req.method} ${req.originalUrl} ${res.statusCode} ${Date.now() - t} ms`,
        ),
      );
      next();
    });
  }
  app.use(opts.router);
  app.use((_req, res) => {
    res.status(404).type('text/plain').send('not found\n');
  });
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(opts.port, opts.host);
    s.once('listening', () => resolve(s));
    s.once('error', reject);
  });
  const a = server.address() as AddressInfo;
  return {
    server,
    address: a.address,
    port: a.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
