import type { Command } from 'commander';
import { isFinalJobStatus } from '../model/status.js';
import { withStore } from './context.js';
import { UsageError } from './output.js';

export function register(program: Command): void {
  program
    .command('abort')
    .argument('<flight>', 'flight')
    .argument('[job]', 'job (default: every unfinished job of the flight)')
    .description(
      'Stop a running job (or flight): no new steps start and the job ends aborted. A file named "abort" in the working directory does the same for jobs run from there.',
    )
    .action(async (flight: string, job: string | undefined) =>
      withStore(async ({ store }) => {
        if (!(await store.getFlight(flight))) throw new UsageError(`no flight '${flight}'`);
        const jobs = (await store.listJobs(flight)).filter((j) => job === undefined || j.job === job);
        if (job !== undefined && jobs.length === 0)
          throw new UsageError(`flight ${flight} has no job '${job}'`);
        for (const j of jobs) {
          if (isFinalJobStatus(j.status)) {
            process.stdout.write(`${flight} ${j.job}: already ${j.status}\n`);
            continue;
          }
          await store.setJobStatus(flight, j.job, 'aborted');
          process.stdout.write(`${flight} ${j.job}: aborted\n`);
        }
      }),
    );
}
