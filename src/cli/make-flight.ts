import type { Command } from 'commander';
import { makeFlight } from '../flight/make-flight.js';
import { collectRev, withStore } from './context.js';
import { printJson } from './output.js';

export function register(program: Command): void {
  program
    .command('make-flight')
    .argument('<branch>', 'branch; its flight family (flights/) makes the jobs')
    .option('--blessing <blessing>', 'intended blessing: real, play, adhoc…', 'play')
    .option(
      '--rev <tree=rev>',
      'revision of a tree (repeatable; default: REVISION_<TREE> or the tree HEAD)',
      collectRev,
    )
    .option('--build-flight <flight>', "use this flight's build jobs instead of making new ones")
    .option('--flight <name>', 'name the flight instead of numbering it')
    .option('--json', 'print the result as JSON')
    .description(
      'Make a new flight for BRANCH and print its number. Environment: OSSTEST_JOBS_ONLY (job globs), RUNVARS / BUILD_RUNVARS / TEST_RUNVARS (name=value words), TREE_<TREE>, REVISION_<TREE>',
    )
    .action(
      async (
        branch: string,
        o: {
          blessing: string;
          rev?: Record<string, string>;
          buildFlight?: string;
          flight?: string;
          json?: boolean;
        },
      ) =>
        withStore(async ({ config, store }) => {
          const made = await makeFlight({
            store,
            config,
            branch,
            blessing: o.blessing,
            revs: o.rev ?? {},
            ...(o.buildFlight ? { buildFlight: o.buildFlight } : {}),
            ...(o.flight ? { flight: o.flight } : {}),
          });
          if (o.json) {
            printJson({
              flight: made.flight.flight,
              family: made.family,
              revisions: made.revisions,
              jobs: made.jobs,
            });
          } else {
            process.stdout.write(`${made.flight.flight}\n`);
          }
        }),
    );
}
