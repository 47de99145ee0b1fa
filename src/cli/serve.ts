/**
 * `osstest serve`: the controller's web UI (flight reports rendered from the store, histories, logs,
 * live flights) until SIGINT or SIGTERM, then a clean stop: event streams ended, connections
 * closed, the store closed.
 */
import type { Command } from 'commander';
import { loadReport } from '../report/load.js';
import { startWebServer } from '../web/server.js';
import { withStore } from './context.js';
import { UsageError } from './output.js';

function portOption(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 65535)
    throw new UsageError(`port ${JSON.stringify(v)}: expected a number from 0 to 65535`);
  return n;
}

export function register(program: Command): void {
  program
    .command('serve')
    .option('--port <n>', 'port of the web UI (default: the WebPort setting; 0 picks a free one)')
    .option('--listen <address>', 'address to listen on (default: the WebListen setting, 127.0.0.1)')
    .description(
      'Serve the web UI: flight grids and job pages rendered from the store, job/host/branch histories, the resource plan (/plan/), step logs, and live flights. Prints its URL; stops on SIGINT or SIGTERM.',
    )
    .action(async (o: { port?: string; listen?: string }) => {
      await withStore(async ({ config, store }) => {
        const port = o.port !== undefined ? portOption(o.port) : portOption(String(config.int('WebPort')));
        const host = o.listen ?? config.string('WebListen');
        let web: Awaited<ReturnType<typeof startWebServer>>;
        try {
          web = await startWebServer({
            store,
            config,
            port,
            host,
            loadReport: (flight) => loadReport(store, config, flight),
          });
        } catch (err) {
          const e = err as NodeJS.ErrnoException;
          if (e.code === 'EADDRINUSE' || e.code === 'EADDRNOTAVAIL' || e.code === 'EACCES') {
            throw new UsageError(`cannot listen on ${host} port ${port}: ${e.message}`);
          }
          throw err;
        }
        process.stdout.write(`osstest serve: web UI at ${web.url}\n`);
        const signal = await new Promise<string>((resolve) => {
          process.once('SIGINT', () => resolve('SIGINT'));
          process.once('SIGTERM', () => resolve('SIGTERM'));
        });
        process.stdout.write(`osstest serve: ${signal}: stopping\n`);
        await web.close();
      });
    });
}
