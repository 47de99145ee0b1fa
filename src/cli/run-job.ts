import type { Command } from 'commander';
import { runJob } from '../executor/run-job.js';
import { defaultFlight, withStore } from './context.js';
import { printJson } from './output.js';
import { StepDisplay } from './step-display.js';

export function register(program: Command): void {
  program
    .command('run-job')
    .alias('sg-run-job')
    .usage('[options] [flight] <job>')
    .argument('<flight-or-job>', 'flight (default: $OSSTEST_FLIGHT or "standalone"), then the job')
    .argument('[job]', 'job to run, when a flight is given')
    .option('--rerun', 'run a job that has already run again (its steps and outputs are cleared first)')
    .option('-q, --quiet', "do not show the testcases' output (it is in the step logs)")
    .option('--json', 'print the result as JSON at the end')
    .description(
      "Run one job's recipe to its end, recording every step. Exit status 0 when the job passes, 1 otherwise. OSSTEST_SIMULATE=1 prints the steps instead.",
    )
    .action(
      async (a: string, b: string | undefined, o: { rerun?: boolean; quiet?: boolean; json?: boolean }) => {
        const [flight, job] = b === undefined ? [defaultFlight(), a] : [a, b];
        const simulate = Boolean(process.env.OSSTEST_SIMULATE && process.env.OSSTEST_SIMULATE !== '0');
        await withStore(async ({ config, store }) => {
          const display = new StepDisplay(`${flight} ${job}`, {
            quiet: Boolean(o.quiet || o.json),
            tty: o.json ? false : undefined,
            out: o.json ? process.stderr : process.stdout,
          });
          try {
            const r = await runJob({
              store,
              config,
              flight,
              job,
              observer: display,
              rerun: Boolean(o.rerun),
              simulate,
            });
            display.close();
            if (o.json) printJson(r);
            else if (!simulate) process.stdout.write(`${flight} ${job}: ${r.status}\n`);
            process.exitCode = simulate || r.status === 'pass' ? 0 : 1;
          } finally {
            display.close();
          }
        });
      },
    );
}
