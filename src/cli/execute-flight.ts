import type { Command } from 'commander';
import { ExecuteFlightError, executeFlight } from '../flight/execute-flight.js';
import { defaultFlight, withStore } from './context.js';
import { FlightDisplay } from './flight-display.js';
import { printJson, UsageError } from './output.js';

const SIGNAL_EXIT: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

export function register(program: Command): void {
  program
    .command('execute-flight')
    .alias('sg-execute-flight')
    .usage('[options] [flight] [blessing]')
    .argument('[flight]', 'flight (default: $OSSTEST_FLIGHT or "standalone")')
    .argument('[blessing]', "the flight's blessing at the end (default: its intended blessing)")
    .option('--max-parallel <n>', 'most jobs at once (default: config FlightMaxParallel)')
    .option('--json', 'print the outcome as JSON at the end')
    .description(
      'Run every queued job of a flight, each once the jobs it depends on (its *buildjob runvars) have ended, several at once; jobs never share a host and wait for one up to FlightHostWait (then they are starved). Each job runs as its own run-job, logged to <Logs>/<flight>/<job>/run-job.log. At the end the flight is blessed. SIGINT/SIGTERM stop the running jobs (aborted). Exit status 0 when every job passed, 1 otherwise.',
    )
    .action(
      async (
        flightArg: string | undefined,
        blessing: string | undefined,
        o: { maxParallel?: string; json?: boolean },
      ) => {
        const flight = flightArg ?? defaultFlight();
        let maxParallel: number | undefined;
        if (o.maxParallel !== undefined) {
          maxParallel = Number(o.maxParallel);
          if (!/^\d+$/.test(o.maxParallel) || maxParallel < 1)
            throw new UsageError(`--max-parallel ${o.maxParallel}: must be a whole number, at least 1`);
        }
        await withStore(async ({ config, store }) => {
          const display = new FlightDisplay(flight, {
            tty: o.json ? false : undefined,
            out: o.json ? process.stderr : process.stdout,
          });
          const ac = new AbortController();
          const onSignal = (sig: NodeJS.Signals) => {
            if (ac.signal.aborted) display.message(`${sig}: already stopping the running jobs`);
            else ac.abort(sig);
          };
          process.on('SIGINT', onSignal);
          process.on('SIGTERM', onSignal);
          try {
            const r = await executeFlight({
              store,
              config,
              flight,
              maxParallel,
              observer: display,
              signal: ac.signal,
              blessing,
            });
            display.close();
            if (o.json) printJson(r);
            else {
              const failed = r.jobs.filter((j) => j.status !== 'pass');
              process.stdout.write(
                `flight ${flight}: ${r.jobs.length - failed.length} of ${r.jobs.length} jobs passed${
                  failed.length ? ` (${failed.map((j) => `${j.job} ${j.status}`).join(', ')})` : ''
                }; ${r.interrupted ? `interrupted (${r.interrupted}), not blessed` : `blessed ${r.blessing}`}\n`,
              );
            }
            process.exitCode = r.interrupted
              ? (SIGNAL_EXIT[r.interrupted] ?? 1)
              : r.jobs.every((j) => j.status === 'pass')
                ? 0
                : 1;
          } catch (err) {
            if (err instanceof ExecuteFlightError) throw new UsageError(err.message);
            throw err;
          } finally {
            process.off('SIGINT', onSignal);
            process.off('SIGTERM', onSignal);
            display.close();
          }
        });
      },
    );
}
