/**
 * `osstest daily-branch BRANCH` (OSSTest: cr-daily-branch): the push gate, end to end (src/gate/).
 * Exit status, for cron and scripts: 0 pushed, nothing to do, or a baseline test done; 1 tested but
 * not pushed (regressions, blocked, refused, failed, interrupted); 2 the gate could not run
 * (configuration, a tree, a hook, another run of the branch going on); 3 the branch is stopped.
 */
import type { Command } from 'commander';
import { type DailyBranchResult, dailyBranch, GateError, GateStoppedError } from '../gate/daily-branch.js';
import { MirrorError } from '../gate/mirror.js';
import { withStore } from './context.js';
import { printJson, reportError, UsageError } from './output.js';

const OK_OUTCOMES = new Set(['pushed', 'nothing to do', 'baseline tested', 'tested']);

function summary(r: DailyBranchResult): string {
  const out = [`${r.branch}: ${r.outcome}: ${r.detail}`];
  if (r.flight !== null)
    out.push(`  flight ${r.flight}${r.judgement ? `: ${r.judgement.heading} (${r.judgement.outcome})` : ''}`);
  for (const x of r.reruns)
    out.push(
      `  rerun of ${x.job} in flight ${x.flight}: ${x.status}${x.passed ? ' (pass: not blocking)' : ''}`,
    );
  if (r.push) out.push(`  push ${r.push.ref}: ${r.push.result} (${r.push.detail})`);
  for (const b of r.bisections)
    out.push(`  bisection ${b.id}: ${b.job} ${b.testid} (${b.created ? 'requested' : 'already open'})`);
  if (r.email)
    out.push(`  report: ${r.email.file}${r.email.sentTo ? ` (sent to ${r.email.sentTo.join(', ')})` : ''}`);
  return `${out.join('\n')}\n`;
}

export function register(program: Command): void {
  program
    .command('daily-branch')
    .alias('cr-daily-branch')
    .argument('<branch>', 'the branch to gate (its trees: BranchTrees_<branch>)')
    .option('--json', 'print the outcome as JSON (progress still goes to stderr)')
    .option('--send', 'also send the report email to ReportTo through SmtpHost')
    .option('--max-parallel <n>', 'most jobs at once (default: config FlightMaxParallel)')
    .option('-q, --quiet', 'no progress lines')
    .description(
      "The push gate: fetch the branch's trees into their mirrors under Repos; test the input ref (staging) of the tree under test against its output ref (master), or test the output ref itself when nothing has tested it yet (a baseline test, never pushed); rerun failures that would block once on another host; report; push to the output ref as a fast-forward, compare-and-swap, when nothing regressed; hand regressions to the bisector. Controls: osstest branch. Exit status 0 pushed, nothing to do or baseline tested; 1 not pushed; 2 could not run; 3 the branch is stopped.",
    )
    .action(
      async (
        branch: string,
        o: { json?: boolean; send?: boolean; maxParallel?: string; quiet?: boolean },
      ) => {
        let maxParallel: number | undefined;
        if (o.maxParallel !== undefined) {
          maxParallel = Number(o.maxParallel);
          if (!/^\d+$/.test(o.maxParallel) || maxParallel < 1)
            throw new UsageError(`--max-parallel ${o.maxParallel}: must be a whole number, at least 1`);
        }
        const ac = new AbortController();
        const onSignal = (sig: NodeJS.Signals) => {
          if (!ac.signal.aborted) ac.abort(sig);
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        try {
          await withStore(async ({ config, store }) => {
            const r = await dailyBranch({
              store,
              config,
              branch,
              signal: ac.signal,
              ...(maxParallel !== undefined ? { maxParallel } : {}),
              ...(o.send ? { sendEmail: true } : {}),
              log: o.quiet ? undefined : (line) => process.stderr.write(`daily-branch ${branch}: ${line}\n`),
            });
            if (o.json) printJson(r);
            else process.stdout.write(summary(r));
            process.exitCode = OK_OUTCOMES.has(r.outcome) ? 0 : 1;
          });
        } catch (e) {
          if (e instanceof GateStoppedError) {
            if (o.json) printJson({ branch, outcome: 'stopped', detail: e.message });
            process.stderr.write(`osstest: ${e.message}\n`);
            process.exitCode = 3;
            return;
          }
          if (e instanceof GateError || e instanceof MirrorError) {
            process.stderr.write(`osstest: ${e.message}\n`);
            process.exitCode = 2;
            return;
          }
          const code = reportError(e);
          process.exitCode = code === 1 ? 2 : code;
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      },
    );
}
