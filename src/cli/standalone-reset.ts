import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { Config } from '../config/config.js';
import { openConfiguredStore } from '../db/from-config.js';
import { makeFlight } from '../flight/make-flight.js';
import { ensureKeyPair } from '../remote/index.js';
import { collectRev, defaultFlight } from './context.js';
import { printJson } from './output.js';

/** Moves a previous run's logs aside rather than deleting them: a reset must not lose evidence. */
function keepOld(dir: string, flight: string): string | undefined {
  const d = join(dir, flight);
  if (!existsSync(d)) return undefined;
  const old = join(dir, 'old', `${flight}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(join(dir, 'old'), { recursive: true });
  renameSync(d, old);
  return old;
}

export function register(program: Command): void {
  program
    .command('standalone-reset')
    .argument('[branch]', 'branch whose flight family makes the jobs (default: config DefaultBranch)')
    .option(
      '--rev <tree=rev>',
      'revision of a tree (repeatable; default: REVISION_<TREE> or the tree HEAD)',
      collectRev,
    )
    .option('--json', 'print the result as JSON')
    .description(
      'Create or reset the standalone database and make its flight ($OSSTEST_FLIGHT, default "standalone"); makes the lab ssh key pair if missing',
    )
    .action(async (branchArg: string | undefined, opts: { rev?: Record<string, string>; json?: boolean }) => {
      const config = Config.load({ env: process.env });
      const branch = branchArg ?? config.string('DefaultBranch');
      const keyPath = config.path('TestHostKeypairPath');
      const key = ensureKeyPair(keyPath, 'osstest-lab');
      const store = await openConfiguredStore(config);
      try {
        const name = defaultFlight();
        const movedLogs: string[] = [];
        if (await store.getFlight(name)) {
          await store.deleteFlight(name);
          for (const d of new Set([config.path('Logs'), config.path('Stash')])) {
            const moved = keepOld(d, name);
            if (moved) movedLogs.push(moved);
          }
        }
        const made = await makeFlight({
          store,
          config,
          branch,
          blessing: 'play',
          flight: name,
          revs: opts.rev ?? {},
        });
        const result = {
          flight: made.flight.flight,
          branch,
          family: made.family,
          revisions: made.revisions,
          jobs: made.jobs.map((j) => ({ job: j.job, recipe: j.recipe })),
          keyPair: keyPath,
          keyCreated: key.created,
          publicKey: key.publicKey,
          previousLogs: movedLogs,
        };
        if (opts.json) return printJson(result);
        process.stdout.write(
          [
            `flight ${result.flight} (branch ${branch}, family ${made.family}):`,
            ...made.jobs.map((j) => `  ${j.job}  (recipe ${j.recipe})`),
            `revisions: ${Object.entries(made.revisions)
              .map(([t, r]) => `${t}=${r}`)
              .join(' ')}`,
            `lab key: ${keyPath}${key.created ? ' (new)' : ''}; test hosts must accept it for ssh:`,
            `  ${key.publicKey}`,
            ...movedLogs.map((m) => `previous logs kept in ${m}`),
            `next: osstest run-job ${made.jobs[0]?.job ?? 'JOB'}`,
            '',
          ].join('\n'),
        );
      } finally {
        await store.close();
      }
    });
}
