/**
 * Lab mode on the command line:
 *   osstest worker [--max-jobs N] [--once]      run a worker (until drained; SIGTERM/SIGINT drain it)
 *   osstest worker --drain [ID]                 tell one worker, or every worker on this machine, to drain
 *   osstest worker --list [--all] [--json]      the workers the database knows
 *   osstest flight queue FLIGHT [--priority N]  queue a flight's jobs for the workers
 */
import type { Command } from 'commander';
import { CLAIM_RUNVAR, findCycle, flightDependencies } from '../flight/execute-flight.js';
import { drainWorkers, LabWorker } from '../flight/worker.js';
import { PRIORITY_ENV } from '../scheduler/priority.js';
import { withStore } from './context.js';
import { printJson, table, UsageError, when } from './output.js';

function wholeNumber(flag: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v) || Number(v) < min)
    throw new UsageError(`${flag} ${v}: must be a whole number ≥ ${min}`);
  return Number(v);
}

export function register(program: Command): void {
  program
    .command('worker')
    .option('--max-jobs <n>', 'most jobs at once (default: config WorkerMaxJobs)')
    .option('--once', 'take the jobs that can start now, run them, and exit when they are done')
    .option(
      '--drain [worker]',
      'tell a worker (by id), or every worker on this machine, to finish its jobs and exit',
    )
    .option('--list', 'list the live workers')
    .option('--all', 'with --list: ended workers too')
    .option('--json', 'with --list or --drain: print as JSON')
    .description(
      'Lab mode: take queued jobs (osstest flight queue) whose hosts can be had now, run each as its own runner, release the hosts at the end. Any number of workers on any number of machines share the database; a worker that dies is noticed through its lease (WorkerLeaseSeconds), its jobs become broken and its hosts return after WorkerGraceSeconds. SIGTERM or SIGINT drain it (a second one aborts its jobs). Exit status 1 if it was declared gone.',
    )
    .action(
      async (o: {
        maxJobs?: string;
        once?: boolean;
        drain?: string | boolean;
        list?: boolean;
        all?: boolean;
        json?: boolean;
      }) => {
        await withStore(async ({ store, config }) => {
          if (o.list) {
            const ws = await store.lab.listWorkers({ all: Boolean(o.all) });
            if (o.json) return printJson(ws);
            process.stdout.write(
              `${table([
                ['worker', 'started', 'lease until', 'state'],
                ...ws.map((w) => [
                  w.id,
                  when(w.started),
                  when(w.leaseUntil),
                  w.ended !== null
                    ? `ended ${when(w.ended)}: ${w.endReason ?? ''}`
                    : w.draining
                      ? 'draining'
                      : 'running',
                ]),
              ])}\n`,
            );
            return;
          }
          if (o.drain !== undefined) {
            const id = typeof o.drain === 'string' ? o.drain : undefined;
            const told = await drainWorkers(store, id);
            if (o.json) return printJson(told);
            if (told.length === 0)
              throw new UsageError(
                id ? `no live worker '${id}' (osstest worker --list)` : 'no live worker on this machine',
              );
            for (const w of told) process.stdout.write(`told ${w.id} to drain\n`);
            return;
          }
          const worker = new LabWorker({
            store,
            config,
            maxJobs: wholeNumber('--max-jobs', o.maxJobs, 1),
            once: Boolean(o.once),
          });
          let signals = 0;
          const onSignal = (sig: NodeJS.Signals) => {
            signals += 1;
            if (signals === 1) worker.drain(sig);
            else worker.stop(sig);
          };
          process.on('SIGINT', onSignal);
          process.on('SIGTERM', onSignal);
          try {
            const s = await worker.run();
            if (s.ended === 'fenced') process.exitCode = 1;
          } finally {
            process.off('SIGINT', onSignal);
            process.off('SIGTERM', onSignal);
          }
        });
      },
    );

  // `flight queue`: the flight command group is made by flight.ts, registered before this module.
  const flightCmd = program.commands.find((c) => c.name() === 'flight') ?? program.command('flight');
  flightCmd
    .command('queue')
    .argument('<flight>', 'flight whose queued jobs workers are to run')
    .option(
      '--priority <n>',
      `queue priority, lower is sooner (default: $${PRIORITY_ENV}, else by intended blessing)`,
    )
    .option('--json', 'print as JSON')
    .description(
      'Queue a flight for lab workers (osstest worker): each job runs once the jobs it depends on have ended and hosts can be had; the flight is blessed when all have ended.',
    )
    .action(async (flight: string, o: { priority?: string; json?: boolean }) =>
      withStore(async ({ store }) => {
        const fromEnv = process.env[PRIORITY_ENV]?.trim() ? process.env[PRIORITY_ENV] : undefined;
        const priority = wholeNumber('--priority', o.priority ?? fromEnv, Number.MIN_SAFE_INTEGER);
        const f = await store.getFlight(flight);
        if (!f) throw new UsageError(`no flight '${flight}'`);
        const jobs = await store.listJobs(flight);
        const runvars = await store.listRunvars(flight);
        const taken = runvars.find((r) => r.name === CLAIM_RUNVAR);
        if (taken)
          throw new UsageError(
            `flight ${flight} was taken on by execute-flight ${taken.val} (job ${taken.job}): workers and execute-flight must not run the same flight`,
          );
        const cycle = findCycle(flightDependencies(flight, jobs, runvars));
        if (cycle)
          throw new UsageError(
            `flight ${flight}: its jobs depend on each other in a circle (${cycle.join(' → ')})`,
          );
        const q = await store.lab.queueFlight(flight, {
          by: `osstest flight queue (pid ${process.pid})`,
          priority: priority ?? null,
        });
        if (o.json) return printJson(q);
        const live = (await store.lab.listWorkers()).length;
        process.stdout.write(
          `flight ${flight} queued: ${jobs.filter((j) => j.status === 'queued').length} job(s) for ${live} live worker(s)\n`,
        );
      }),
    );
}
