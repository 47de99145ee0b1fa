import type { Command } from 'commander';
import type { Store } from '../db/store.js';
import { defaultFlight, withStore } from './context.js';
import { printJson, table, UsageError } from './output.js';

async function showRunvars(
  store: Store,
  flight: string,
  job: string | undefined,
  json: boolean,
): Promise<void> {
  if (!(await store.getFlight(flight))) throw new UsageError(`no flight '${flight}'`);
  if (job !== undefined && !(await store.getJob(flight, job)))
    throw new UsageError(`flight ${flight} has no job '${job}'`);
  const rvs = await store.listRunvars(flight, job);
  if (json) return printJson(rvs);
  process.stdout.write(
    `${table(rvs.map((r) => [r.job, r.name, r.val, r.synth ? 'execution' : 'definition']))}\n`,
  );
}

export function register(program: Command): void {
  const rv = program.command('runvar').description("Show and edit jobs' runvars");

  rv.command('show')
    .argument('[flight]', 'flight (default: $OSSTEST_FLIGHT or "standalone")')
    .argument('[job]', 'only this job')
    .option('--json', 'print as JSON')
    .description(
      'Show runvars as an aligned table (job, name, value, definition/execution), for diffing flights',
    )
    .action(async (flight: string | undefined, job: string | undefined, o: { json?: boolean }) =>
      withStore(({ store }) => showRunvars(store, flight ?? defaultFlight(), job, Boolean(o.json))),
    );

  rv.command('set')
    .argument('<flight>', 'flight')
    .argument('<job>', 'job')
    .argument('<assignments...>', 'NAME=VALUE …')
    .description('Set definition runvars; only before the flight has started running')
    .action(async (flight: string, job: string, assignments: string[]) =>
      withStore(async ({ store }) => {
        const pairs = assignments.map((a) => {
          const eq = a.indexOf('=');
          if (eq <= 0) throw new UsageError(`'${a}' is not NAME=VALUE`);
          // Checked before anything is written, so a bad word leaves every runvar as it was.
          if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(a.slice(0, eq)))
            throw new UsageError(`'${a.slice(0, eq)}' is not a runvar name`);
          return [a.slice(0, eq), a.slice(eq + 1)] as const;
        });
        for (const [n, v] of pairs) await store.setRunvar(flight, job, n, v, { synth: false });
      }),
    );

  rv.command('del')
    .argument('<flight>', 'flight')
    .argument('<job>', 'job')
    .argument('<names...>', 'runvar names')
    .description('Delete definition runvars; only before the flight has started running')
    .action(async (flight: string, job: string, names: string[]) =>
      withStore(async ({ store }) => {
        for (const n of names) await store.deleteRunvar(flight, job, n, { synth: false });
      }),
    );
}

export { showRunvars };
