/**
 * `osstest report-flight FLIGHT` (OSSTest: sg-report-flight): judge a flight against its baseline
 * and write the reports asked for. Exit status, for scripts: 0 the flight is tolerable (nothing
 * blocks a push), 1 it is not, 2 no report could be made (no such flight, bad config…).
 */
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { Config } from '../config/config.js';
import { buildMessage, mailSettings, renderEmail, sendEmail } from '../report/email.js';
import { renderJunit } from '../report/junit.js';
import { loadReport } from '../report/load.js';
import { formatMro, JSON_FORMAT } from '../report/mro.js';
import type { ReportData } from '../report/report-data.js';
import { renderSummary } from '../report/text.js';
import { defaultFlight, withStore } from './context.js';
import { printJson, reportError, UsageError } from './output.js';

interface Opts {
  baseline?: string;
  history?: string;
  html?: string;
  email?: string;
  send?: boolean;
  junit?: string;
  json?: boolean;
  mro?: string;
}

type WriteFlightPages = (data: ReportData, dir: string, opts?: { logsDir?: string }) => Promise<string[]>;

/** The HTML writer, loaded only when asked for (it is the biggest part of the reports). */
async function htmlWriter(): Promise<WriteFlightPages> {
  const url = new URL('../report/html/index.js', import.meta.url);
  let mod: unknown;
  try {
    mod = await import(url.href);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ERR_MODULE_NOT_FOUND' && err.message.includes(url.pathname)) {
      throw new UsageError('--html: this build has no HTML report writer (src/report/html/index.ts)');
    }
    throw e;
  }
  const fn = (mod as { writeFlightPages?: unknown }).writeFlightPages;
  if (typeof fn !== 'function') {
    throw new UsageError('--html: src/report/html/index.ts does not export writeFlightPages(data, dir) yet');
  }
  return fn as WriteFlightPages;
}

function historyOption(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`--history ${v}: expected a number of flights ≥ 1`);
  }
  return n;
}

/** The report's data besides the judgement, for `--json`. */
function extra(data: ReportData) {
  return {
    flight: data.flight,
    baseline: data.baseline,
    baselineWhy: data.baselineWhy ?? null,
    versions: data.versions,
    changes: data.changes,
    whatChanged: data.whatChanged,
    jobs: data.jobs.map((j) => ({ job: j.job, recipe: j.recipe, status: j.status })),
    generated: data.generated,
  };
}

async function report(config: Config, data: ReportData, o: Opts, note: (s: string) => void): Promise<void> {
  if (o.mro !== undefined) {
    await writeFile(o.mro, formatMro(data.judgement));
    note(`wrote ${o.mro}`);
  }
  if (o.junit !== undefined) {
    await writeFile(o.junit, await renderJunit(data, { logsDir: config.path('Logs') }));
    note(`wrote ${o.junit}`);
  }
  if (o.html !== undefined) {
    const write = await htmlWriter();
    const files = await write(data, o.html, { logsDir: config.path('Logs') });
    note(`wrote ${files.length} page(s) under ${o.html}`);
  }
  if (o.email !== undefined || o.send) {
    const mail = renderEmail(data);
    const s = mailSettings(config, Boolean(o.send));
    if (o.email !== undefined) {
      await writeFile(o.email, await buildMessage(mail, s, data));
      note(`wrote ${o.email}`);
    }
    if (o.send) {
      const r = await sendEmail(mail, s, data);
      note(`sent to ${r.accepted.join(', ')} through ${s.host}:${s.port}`);
    }
  }
}

export function register(program: Command): void {
  program
    .command('report-flight')
    .alias('sg-report-flight')
    .argument('[flight]', 'flight to report (default: $OSSTEST_FLIGHT or "standalone")')
    .option(
      '--baseline <flight>',
      'compare with this flight (default: the previous finished flight of the branch with the same intended blessing)',
    )
    .option('--history <n>', 'flights of the branch read as history (default 40)')
    .option('--html <dir>', 'write the HTML pages into DIR')
    .option('--email <file>', 'write the report email (an RFC 5322 message) to FILE')
    .option('--send', 'send the report email to ReportTo through SmtpHost:SmtpPort')
    .option('--junit <file>', 'write JUnit XML to FILE')
    .option('--mro <file>', 'write the machine-readable .mro lines to FILE')
    .option('--json', 'print the judgement and the report data as JSON instead of the summary')
    .description(
      'Judge a flight against its baseline (regressions, allow files, flaky tests) and write its reports. Exit status 0 when the result is tolerable (nothing blocks a push), 1 when it is not, 2 when no report could be made.',
    )
    .action(async (flightArg: string | undefined, o: Opts) => {
      try {
        const flight = flightArg ?? defaultFlight();
        const historyFlights = historyOption(o.history);
        await withStore(async ({ config, store }) => {
          const data = await loadReport(store, config, flight, {
            ...(o.baseline !== undefined ? { baseline: o.baseline } : {}),
            ...(historyFlights !== undefined ? { historyFlights } : {}),
          });
          // With --json, stdout carries only the JSON; notes go to stderr.
          const note = (s: string) => (o.json ? process.stderr : process.stdout).write(`${s}\n`);
          if (o.json) printJson({ format: JSON_FORMAT, ...data.judgement, report: extra(data) });
          else process.stdout.write(renderSummary(data.judgement));
          await report(config, data, o, note);
          process.exitCode = data.judgement.tolerable ? 0 : 1;
        });
      } catch (e) {
        reportError(e);
        process.exitCode = 2;
      }
    });
}
