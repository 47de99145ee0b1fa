/** The web UI on a TCP port: started, and stopped cleanly (event streams ended, connections closed). */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createWebApp, type WebAppOptions } from './app.js';
import type { FlightEventSource } from './events.js';

export interface WebServer {
  /** `http://ADDRESS:PORT/` */
  url: string;
  port: number;
  server: Server;
  events: FlightEventSource;
  close(): Promise<void>;
}

export async function startWebServer(o: WebAppOptions & { port: number; host: string }): Promise<WebServer> {
  const web = createWebApp(o);
  const server = createServer(web.app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${addr.port}/`,
    port: addr.port,
    server,
    events: web.events,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        web.close();
        server.close(() => resolve());
        // Event streams and idle keep-alive connections would otherwise hold close() open.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
