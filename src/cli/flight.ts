import type { Command } from 'commander';
import type { Store } from '../db/store.js';
import { defaultFlight, withStore } from './context.js';
import { printJson, table, UsageError } from './output.js';

function when(ms: number | null): string {
  return ms === null
    ? '-'
    : new Date(ms)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, 'Z');
}

function took(a: number | null, b: number | null): string {
  return a === null || b === null ? '' : `${((b - a) / 1000).toFixed(1)}s`;
}

export async function flightDetail(store: Store, flight: string) {
  const f = await store.getFlight(flight);
  if (!f) throw new UsageError(`no flight '${flight}'`);
  const jobs = await store.listJobs(flight);
  const steps = await store.listSteps(flight);
  const runvars = await store.listRunvars(flight);
  return {
    ...f,
    harness: await store.harnessRevisions(flight),
    jobs: jobs.map((j) => ({
      ...j,
      steps: steps.filter((s) => s.job === j.job),
      runvars: runvars.filter((r) => r.job === j.job),
    })),
  };
}

export function register(program: Command): void {
  const flight = program.command('flight').description('Inspect flights');

  flight
    .command('show')
    .argument('[flight]', 'flight (default: $OSSTEST_FLIGHT or "standalone")')
    .option('--runvars', "list each job's runvars too")
    .option('--json', 'print as JSON')
    .description('Show a flight: its jobs, their status, and every step with status, duration and log')
    .action(async (name: string | undefined, o: { json?: boolean; runvars?: boolean }) =>
      withStore(async ({ store }) => {
        const d = await flightDetail(store, name ?? defaultFlight());
        if (o.json) return printJson(d);
        const out: string[] = [
          `flight ${d.flight}  branch ${d.branch}  intended ${d.intended}  blessing ${d.blessing}  started ${when(d.started)}`,
        ];
        if (d.harness.length > 0) out.push(`harness ${d.harness.join(' ')}`);
        for (const j of d.jobs) {
          out.push('', `${j.job}  ${j.status}  (recipe ${j.recipe})`);
          if (j.steps.length > 0) {
            out.push(
              table(
                j.steps.map((s) => [
                  `  ${s.stepno}`,
                  s.testid,
                  s.status,
                  took(s.started, s.finished),
                  s.logPath ?? '',
                ]),
              ),
            );
          }
          if (o.runvars) {
            out.push(
              table(j.runvars.map((r) => [`    ${r.name}`, r.val, r.synth ? 'execution' : 'definition'])),
            );
          }
        }
        process.stdout.write(`${out.join('\n')}\n`);
      }),
    );

  flight
    .command('list')
    .option('--branch <branch>', 'only this branch')
    .option('--limit <n>', 'how many (newest first)', '20')
    .option('--json', 'print as JSON')
    .description('List flights, newest first, with their job outcomes')
    .action(async (o: { branch?: string; limit: string; json?: boolean }) =>
      withStore(async ({ store }) => {
        const flights = await store.listFlights({
          ...(o.branch ? { branch: o.branch } : {}),
          limit: Number(o.limit),
        });
        const rows = [];
        for (const f of flights) {
          const jobs = await store.listJobs(f.flight);
          const counts: Record<string, number> = {};
          for (const j of jobs) counts[j.status] = (counts[j.status] ?? 0) + 1;
          rows.push({ ...f, jobs: jobs.length, statuses: counts });
        }
        if (o.json) return printJson(rows);
        process.stdout.write(
          `${table([
            ['flight', 'branch', 'intended', 'blessing', 'started', 'jobs'],
            ...rows.map((r) => [
              r.flight,
              r.branch,
              r.intended,
              r.blessing,
              when(r.started),
              Object.entries(r.statuses)
                .map(([s, n]) => `${n} ${s}`)
                .join(', ') || '0',
            ]),
          ])}\n`,
        );
      }),
    );
}
