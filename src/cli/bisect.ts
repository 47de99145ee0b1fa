/**
 * `osstest bisect`: bisection of a regression (OSSTEST-BEHAVIOUR §5). `bisect BRANCH JOB TESTID`
 * makes and runs the next flights (or reports the verdict), `--run` goes on to the end; `log`,
 * `verify`, `stats` and `list` read and extend what the database holds. `cs-bisection-step` is the
 * original's name for a step. Exit status of a step: 0 testing, 4 found, 8 not pinned down,
 * 12 found but inconsistent, 16 not reproducible, 32 not possible.
 */
import type { Command } from 'commander';
import { type BisectOptions, type BisectResult, bisect, bisectionLog } from '../bisect/run.js';
import { bisectionStats, formatStats } from '../bisect/stats.js';
import { VerifyError, verifyBisection } from '../bisect/verify.js';
import { mailSettings, sendEmail } from '../report/email.js';
import { withStore } from './context.js';
import { printJson, table, UsageError } from './output.js';

const SIGNAL_EXIT: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

function positive(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1) throw new UsageError(`${name} ${v}: must be a whole number, at least 1`);
  return n;
}

function bisectionId(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1)
    throw new UsageError(`bisection id ${JSON.stringify(v)}: must be a number`);
  return Number(v);
}

/** SIGINT/SIGTERM abort the flights under way; the handler is removed afterwards. */
async function withAbort<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<{ value: T; signal?: string }> {
  const ac = new AbortController();
  let got: string | undefined;
  const on = (sig: NodeJS.Signals) => {
    got = sig;
    ac.abort(sig);
  };
  process.on('SIGINT', on);
  process.on('SIGTERM', on);
  try {
    const value = await fn(ac.signal);
    return got ? { value, signal: got } : { value };
  } finally {
    process.off('SIGINT', on);
    process.off('SIGTERM', on);
  }
}

function resultJson(r: BisectResult) {
  const b = r.bisection;
  return {
    id: b.id,
    branch: b.branch,
    job: b.job,
    testid: b.testid,
    state: b.state,
    code: r.code,
    wording: r.wording,
    summary: r.summary,
    failureFlight: b.failureFlight,
    basisFlight: b.basisFlight,
    hosts: b.hosts,
    parallel: b.parallel,
    culprit: b.culpritRev ? { tree: b.culpritTree, rev: b.culpritRev, notPresentAt: b.culpritParents } : null,
    confidence: b.confidence,
    confirmed: b.confirmed,
    made: r.made,
    next: r.next,
    report: r.report?.dir ?? null,
    log: r.log,
  };
}

interface StepFlags {
  run?: boolean;
  json?: boolean;
  send?: boolean;
  maxHosts?: string;
  maxFlights?: string;
}

async function step(branch: string, job: string, testid: string, o: StepFlags): Promise<void> {
  const opts: BisectOptions = { run: Boolean(o.run) };
  const maxHosts = positive('--max-hosts', o.maxHosts);
  const maxFlights = positive('--max-flights', o.maxFlights);
  if (maxHosts !== undefined) opts.maxHosts = maxHosts;
  if (maxFlights !== undefined) opts.maxFlights = maxFlights;
  await withStore(async ({ config, store }) => {
    const say = (line: string) => process.stderr.write(`${line}\n`);
    const { value: r, signal } = await withAbort((s) =>
      bisect({ store, config, say }, { branch, job, testid }, { ...opts, signal: s }),
    );
    let sent: string | undefined;
    if (o.send && r.code !== 0 && r.report?.email) {
      const settings = mailSettings(config, true);
      const m = r.report.email;
      await sendEmail({ subject: m.subject, text: m.body }, settings);
      sent = `${settings.to.join(', ')} through ${settings.host}:${settings.port}`;
      say(`email "${m.subject}" sent to ${sent}`);
    }
    if (o.json) printJson({ ...resultJson(r), ...(sent ? { sent } : {}) });
    else {
      process.stdout.write(r.log);
      const b = r.bisection;
      process.stdout.write(
        `bisection ${b.id}: ${r.code === 0 ? 'testing' : `verdict ${r.code}`}: ${r.wording}\n`,
      );
      if (r.summary) process.stdout.write(`  ${r.summary}\n`);
      if (b.culpritRev)
        process.stdout.write(
          `  culprit: ${b.culpritTree} ${b.culpritRev} (not present at ${b.culpritParents.join(' ')}); confidence ${((b.confidence ?? 0) * 100).toFixed(2)}%\n`,
        );
      if (r.made.length > 0) process.stdout.write(`  flights made: ${r.made.join(' ')}\n`);
      if (r.report) process.stdout.write(`  report: ${r.report.dir}/index.html\n`);
    }
    process.exitCode = signal ? (SIGNAL_EXIT[signal] ?? 1) : r.code;
  });
}

function addStep(cmd: Command): Command {
  return cmd
    .argument('<branch>', 'branch whose flights failed')
    .argument('<job>', 'job, e.g. test-amd64-amd64-xl')
    .argument('<testid>', 'testid of the failing step, e.g. guest-start')
    .option('--run', 'go on to the verdict, step after step, without stopping')
    .option('--max-hosts <n>', 'test at most this many tuples at once (default: every free equivalent host)')
    .option('--max-flights <n>', 'give up ("not pinned down") after this many results in all (default 150)')
    .option('--send', 'with a verdict, send the bisection email (SmtpHost, ReportFrom, ReportTo)')
    .option('--json', 'print the state as JSON')
    .action(step);
}

export function register(program: Command): void {
  const cmd = program
    .command('bisect')
    .description(
      'Bisect a regression of BRANCH JOB TESTID over the revision tuples of every tree between the basis (the newest pass on the same hosts) and the failure. Each step makes the flights the engine asks for, runs them and records their results; exit status 0 while testing, 4 culprit found, 8 not pinned down, 12 found but inconsistent, 16 not reproducible, 32 not possible.',
    );
  addStep(
    cmd
      .command('step', { isDefault: true })
      .usage('[options] <branch> <job> <testid>')
      .description(
        'one step of the bisection (the default: `osstest bisect BRANCH JOB TESTID`); --run to the end',
      ),
  );

  cmd
    .command('log')
    .argument('<id>', 'bisection id')
    .option('--no-decisions', 'only what the database holds: no engine decisions (no tree is read)')
    .description('the bisection as a replayable log, like `git bisect log`')
    .action(async (id: string, o: { decisions: boolean }) =>
      withStore(async ({ config, store }) => {
        process.stdout.write(
          await bisectionLog({ store, config }, bisectionId(id), { decisions: o.decisions }),
        );
      }),
    );

  cmd
    .command('verify')
    .argument('<id>', 'bisection id (with a culprit)')
    .option('--json', 'print the outcome as JSON')
    .description(
      'revert the culprit on top of the failing revision in a scratch clone and test that; pass confirms the culprit (exit 0), fail refutes it (exit 1), anything else is inconclusive (exit 3)',
    )
    .action(async (id: string, o: { json?: boolean }) =>
      withStore(async ({ config, store }) => {
        const say = (line: string) => process.stderr.write(`${line}\n`);
        let r: Awaited<ReturnType<typeof verifyBisection>>;
        let signal: string | undefined;
        try {
          ({ value: r, signal } = await withAbort((s) =>
            verifyBisection({ store, config, say }, bisectionId(id), { signal: s }),
          ));
        } catch (e) {
          if (e instanceof VerifyError) throw new UsageError(e.message);
          throw e;
        }
        if (o.json)
          printJson({
            id: r.bisection.id,
            flight: r.flight,
            revision: r.revision,
            result: r.result,
            confirmed: r.confirmed,
          });
        else
          process.stdout.write(
            `bisection ${r.bisection.id}: flight ${r.flight} tested ${r.revision}: ${r.result}; culprit ${
              r.confirmed === null
                ? 'neither confirmed nor refuted'
                : r.confirmed
                  ? 'confirmed'
                  : 'NOT confirmed'
            }\n`,
          );
        process.exitCode = signal
          ? (SIGNAL_EXIT[signal] ?? 1)
          : r.confirmed === null
            ? 3
            : r.confirmed
              ? 0
              : 1;
      }),
    );

  cmd
    .command('stats')
    .option('--branch <branch>', 'only this branch')
    .option('--json', 'print as JSON')
    .description(
      "the bisector's own record: culprits found, confirmed precision, flights and time per bisection",
    )
    .action(async (o: { branch?: string; json?: boolean }) =>
      withStore(async ({ store }) => {
        const s = await bisectionStats(store, o.branch ? { branch: o.branch } : {});
        if (o.json) printJson(s);
        else process.stdout.write(`${formatStats(s)}\n`);
      }),
    );

  cmd
    .command('list')
    .option('--branch <branch>', 'only this branch')
    .option('--json', 'print as JSON')
    .description('bisections, newest first')
    .action(async (o: { branch?: string; json?: boolean }) =>
      withStore(async ({ store }) => {
        const list = await store.listBisections(o.branch ? { branch: o.branch } : {});
        if (o.json) {
          printJson(list);
          return;
        }
        const rows = [['id', 'branch', 'job', 'testid', 'state', 'verdict', 'culprit', 'confirmed']];
        for (const b of list)
          rows.push([
            String(b.id),
            b.branch,
            b.job,
            b.testid,
            b.state,
            b.code === null ? '-' : String(b.code),
            b.culpritRev ? `${b.culpritTree} ${b.culpritRev.slice(0, 12)}` : '-',
            b.confirmed === null ? '-' : b.confirmed ? 'yes' : 'no',
          ]);
        process.stdout.write(`${table(rows)}\n`);
      }),
    );

  addStep(
    program
      .command('cs-bisection-step')
      .description('OSSTest name: one bisection step (same as `osstest bisect BRANCH JOB TESTID`)'),
  );
}
