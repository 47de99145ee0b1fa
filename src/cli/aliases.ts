/**
 * OSSTest's familiar command names, as thin entries over ours (sg-run-job is an alias of run-job
 * itself): people and scripts that know the original keep working.
 */
import type { Command } from 'commander';
import { withStore } from './context.js';
import { UsageError } from './output.js';
import { showRunvars } from './runvar.js';

export function register(program: Command): void {
  program
    .command('cs-flight-create')
    .argument('<intended>', 'intended blessing (real, play, adhoc…)')
    .argument('<branch>', 'branch')
    .description('OSSTest name: create an empty flight (constructing) and print its number')
    .action(async (intended: string, branch: string) =>
      withStore(async ({ store }) => {
        const f = await store.createFlight({ branch, intended });
        process.stdout.write(`${f.flight}\n`);
      }),
    );

  program
    .command('cs-job-create')
    .argument('<flight>', 'flight (still constructing)')
    .argument('<job>', 'job name')
    .argument('<recipe>', 'recipe (jobs/)')
    .argument('[runvars...]', 'name=value sets a runvar, !name leaves it out')
    .description('OSSTest name: add a job with its runvars to a flight that has not started')
    .action(async (flight: string, job: string, recipe: string, words: string[]) =>
      withStore(async ({ store }) => {
        const runvars: Record<string, string> = {};
        for (const w of words) {
          if (w.startsWith('!')) {
            delete runvars[w.slice(1)];
            continue;
          }
          const eq = w.indexOf('=');
          if (eq <= 0) throw new UsageError(`'${w}' is not name=value or !name`);
          runvars[w.slice(0, eq)] = w.slice(eq + 1);
        }
        await store.createJob(flight, job, recipe, runvars);
      }),
    );

  program
    .command('mg-show-flight-runvars')
    .argument('<flight>', 'flight')
    .option('--json', 'print as JSON')
    .description('OSSTest name: the runvars of every job of a flight, aligned (same as runvar show)')
    .action(async (flight: string, o: { json?: boolean }) =>
      withStore(({ store }) => showRunvars(store, flight, undefined, Boolean(o.json))),
    );
}
