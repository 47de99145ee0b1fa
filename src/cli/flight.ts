import type { Command } from 'commander';
import type { Store } from '../db/store.js';
import {
  ADJUST_SYNTAX,
  AdjustError,
  type AdjustPlan,
  applyAdjust,
  parseAdjustOps,
  planAdjust,
  planIsEmpty,
} from '../flight/adjust.js';
import { isFinalJobStatus } from '../model/status.js';
import { defaultFlight, withStore } from './context.js';
import { printJson, table, UsageError, when } from './output.js';

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

function describePlan(p: AdjustPlan, applied: boolean): string {
  const out: string[] = [`flight ${p.flight}: ${applied ? 'changed' : 'would change'}`];
  for (const c of p.createJobs) {
    out.push(`  + job ${c.job} (recipe ${c.recipe}, copied from flight ${c.from})`);
    for (const [n, v] of Object.entries(c.runvars)) out.push(`      ${n}=${v}`);
  }
  for (const r of p.rewritten)
    out.push(`  ${r.job} ${r.name}: ${r.old} → ${r.val} (its build job is not copied)`);
  for (const s of p.set) {
    out.push(
      s.old === null ? `  + ${s.job} ${s.name}=${s.val}` : `  ~ ${s.job} ${s.name}: ${s.old} → ${s.val}`,
    );
  }
  for (const d of p.delete) out.push(`  - ${d.job} ${d.name} (was ${d.old})`);
  if (planIsEmpty(p)) out[0] = `flight ${p.flight}: nothing to change`;
  return out.join('\n');
}

async function adjustFlight(
  flight: string,
  words: string[],
  o: { dryRun?: boolean; json?: boolean },
): Promise<void> {
  await withStore(async ({ store }) => {
    let plan: AdjustPlan;
    try {
      plan = await planAdjust(store, flight, parseAdjustOps(words));
    } catch (e) {
      if (e instanceof AdjustError) throw new UsageError(e.message);
      throw e;
    }
    const apply = !o.dryRun && !planIsEmpty(plan);
    if (apply) await applyAdjust(store, plan);
    for (const n of plan.notes) process.stderr.write(`osstest: note: ${n}\n`);
    if (o.json) return printJson({ ...plan, applied: apply });
    process.stdout.write(`${describePlan(plan, apply)}\n`);
  });
}

/** Jobs that are being run, or waiting to be, in a flight that has started. */
async function unfinishedJobs(store: Store, flight: string, blessing: string): Promise<string[]> {
  return (await store.listJobs(flight))
    .filter(
      (j) =>
        j.status === 'preparing' ||
        j.status === 'running' ||
        (blessing === 'running' && !isFinalJobStatus(j.status)),
    )
    .map((j) => `${j.job} ${j.status}`);
}

async function blessFlight(flight: string, blessing: string, o: { force?: boolean; json?: boolean }) {
  if (blessing === 'constructing' || blessing === 'running') {
    throw new UsageError(
      `'${blessing}' is a state the flight moves through, not a blessing to give it (real, play, adhoc, bisect…)`,
    );
  }
  await withStore(async ({ store }) => {
    const f = await store.getFlight(flight);
    if (!f) throw new UsageError(`no flight '${flight}'`);
    const busy = await unfinishedJobs(store, flight, f.blessing);
    if (busy.length > 0 && !o.force) {
      throw new UsageError(
        `flight ${flight} is still running (${busy.join(', ')}): it is blessed when it ends; --force blesses it now`,
      );
    }
    await store.setFlightBlessing(flight, blessing);
    if (o.json) return printJson({ flight, old: f.blessing, blessing });
    process.stdout.write(`flight ${flight}: ${f.blessing} → ${blessing}\n`);
  });
}

export function register(program: Command): void {
  const flight = program.command('flight').description('Inspect, adjust and bless flights');

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

  const adjustHelp = `Operations (applied in order, each seeing the ones before; all are checked before anything is written):\n  ${ADJUST_SYNTAX.join('\n  ')}\nGlobs: * any run, ? one character, a comma separates alternatives (build-*,test-*). Lists end at the next operation word.\nA copied job's *buildjob runvar naming a job not in this flight is made to name the source flight's job (SRC.job).\nOnly while the flight is constructing (before it runs); intended blessing and branch cannot be changed.`;
  for (const cmd of [
    flight
      .command('adjust')
      .description('Copy jobs into a flight and edit its definition runvars, before it runs'),
    program
      .command('cs-adjust-flight')
      .description('OSSTest name: adjust a flight before it runs (same as flight adjust)'),
  ]) {
    cmd
      .argument('<flight>', 'flight (still constructing)')
      .argument('<ops...>', 'operations, see below')
      .option('--dry-run', 'print what would change, change nothing')
      .option('--json', 'print the plan as JSON')
      .addHelpText('after', `\n${adjustHelp}`)
      .action(async (name: string, words: string[], o: { dryRun?: boolean; json?: boolean }) =>
        adjustFlight(name, words, o),
      );
  }

  for (const cmd of [
    flight.command('bless').description("Set a flight's blessing (real, play, adhoc, bisect…)"),
    program
      .command('cs-flight-bless')
      .description("OSSTest name: set a flight's blessing (same as flight bless)"),
  ]) {
    cmd
      .argument('<flight>', 'flight')
      .argument('<blessing>', 'the new blessing; not constructing or running')
      .option('--force', 'bless it even though jobs are still running or waiting to')
      .option('--json', 'print {flight, old, blessing}')
      .action(async (name: string, blessing: string, o: { force?: boolean; json?: boolean }) =>
        blessFlight(name, blessing, o),
      );
  }
}
