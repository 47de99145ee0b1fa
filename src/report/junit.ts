/**
 * JUnit XML for a flight, for CI systems (Jenkins, GitLab, GitHub test reporters) to show.
 *
 * One `<testsuite>` per job (name = job), one `<testcase>` per step (classname = job, name = testid,
 * time = seconds from start to finish). What each status becomes, as those readers understand the
 * three outcomes:
 *  - `fail` → `<failure>`: the code under test failed a test — what CI readers count as failed;
 *  - `broken`, `aborted`, `starved` → `<error>`: the test could not run to a verdict because the
 *    infrastructure failed (a host, a timeout outside the test, someone stopped it, no host in
 *    time). Readers count these apart from failures, which is the distinction osstest's
 *    broken/fail makes; hiding them as skipped would let a broken lab look green;
 *  - `blocked` → `<skipped>`: never run because an earlier failure (counted already) blocked it;
 *    counting it again as a failure or error would double-count one problem;
 *  - `running` → `<skipped>` saying the step had not finished when the report was made.
 * The message of a failure or error is the judgement's verdict (`fail REGR. vs. 123`), the body
 * says why. A job that did not pass and has no step that did (`<none executed>`) gets one testcase
 * of that name. `<system-out>` holds the step log's path and, for a step that did not pass, the
 * log's last lines (a passing step's output would only bury the failures).
 *
 * The XML is written here rather than with a builder library: it is five escapes and one filter.
 * The filter matters: XML 1.0 cannot carry most control characters at all, even as character
 * references, so they are shown as Unicode control pictures (ESC → ␛) instead of making the file
 * unreadable; `]]>` and markup in logs are plain escaped text (no CDATA sections).
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { NONE_EXECUTED } from './judge.js';
import type { JobDetail, ReportData } from './report-data.js';
import type { Failure } from './types.js';

export interface JunitOptions {
  /** The Logs directory step log paths are relative to; without it no log tails are read. */
  logsDir?: string;
  /** Lines of each step's log shown (default 40). */
  tailLines?: number;
  /** At most this many bytes are read from the end of a log (default 16 KiB). */
  tailBytes?: number;
}

// Characters XML 1.0 does not allow anywhere, and unpaired surrogates (not characters at all).
const NOT_XML =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

function xmlSafe(s: string): string {
  return s.replace(NOT_XML, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x20 ? String.fromCharCode(0x2400 + code) : '\uFFFD';
  });
}

export function escapeText(s: string): string {
  return xmlSafe(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function escapeAttr(s: string): string {
  return escapeText(s)
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;')
    .replace(/\t/g, '&#9;')
    .replace(/\n/g, '&#10;')
    .replace(/\r/g, '&#13;');
}

function attrs(a: Record<string, string | number | undefined>): string {
  return Object.entries(a)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => ` ${k}="${escapeAttr(String(v))}"`)
    .join('');
}

function seconds(ms: number): string {
  return (Math.max(0, ms) / 1000).toFixed(3);
}

/** The last `lines` lines of a file, reading at most `bytes` from its end; undefined if unreadable. */
export async function logTail(path: string, lines: number, bytes: number): Promise<string | undefined> {
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    fh = await open(path, 'r');
    const { size } = await fh.stat();
    const start = Math.max(0, size - bytes);
    const buf = Buffer.alloc(size - start);
    await fh.read(buf, 0, buf.length, start);
    let text = buf.toString('utf8');
    // Started mid-file: the first line is partial (perhaps mid-character); drop it.
    if (start > 0) text = text.slice(text.indexOf('\n') + 1);
    const all = text.replace(/\n$/, '').split('\n');
    return all.slice(-lines).join('\n');
  } catch {
    return undefined;
  } finally {
    await fh?.close();
  }
}

type Outcome =
  | { kind: 'failure' | 'error' | 'skipped'; message: string; type: string; body: string }
  | undefined;

function outcome(status: string, f: Failure | undefined): Outcome {
  const verdict = f?.text ?? status;
  const body = f === undefined ? '' : f.reason;
  switch (status) {
    case 'pass':
      return undefined;
    case 'fail':
      return { kind: 'failure', message: verdict, type: f?.verdict ?? status, body };
    case 'blocked':
      return {
        kind: 'skipped',
        message: `blocked: ${f?.reason ?? 'an earlier failure blocked it'}`,
        type: status,
        body: '',
      };
    case 'running':
    case 'queued':
    case 'preparing':
      return {
        kind: 'skipped',
        message: `${status}: not finished when the report was made`,
        type: status,
        body: '',
      };
    default:
      // broken, aborted, starved: the test did not get to a verdict.
      return { kind: 'error', message: verdict, type: status, body };
  }
}

function outcomeXml(o: Outcome): string {
  if (o === undefined) return '';
  if (o.kind === 'skipped') return `\n      <skipped${attrs({ message: o.message })}/>`;
  const body = o.body === '' ? '' : escapeText(o.body);
  return `\n      <${o.kind}${attrs({ message: o.message, type: o.type })}>${body}</${o.kind}>`;
}

/** The XML, given the log tails already read (`flight/job/stepno` → text). Pure. */
export function junitXml(
  data: ReportData,
  tails: ReadonlyMap<string, string | undefined> = new Map(),
  opts: { logsDir?: string } = {},
): string {
  const failures = new Map<string, Failure>();
  for (const f of data.judgement.failures) failures.set(`${f.job}\u0000${f.stepno ?? ''}`, f);
  const { flight } = data;
  const suites: string[] = [];
  const total = { tests: 0, failures: 0, errors: 0, skipped: 0, time: 0 };

  data.jobs.forEach((job, i) => {
    const counts = { tests: 0, failures: 0, errors: 0, skipped: 0, time: 0 };
    const cases: string[] = [];
    const count = (o: Outcome) => {
      counts.tests += 1;
      if (o?.kind === 'failure') counts.failures += 1;
      else if (o?.kind === 'error') counts.errors += 1;
      else if (o?.kind === 'skipped') counts.skipped += 1;
    };
    for (const s of [...job.steps].sort((a, b) => a.stepno - b.stepno)) {
      const o = outcome(s.status, failures.get(`${job.job}\u0000${s.stepno}`));
      count(o);
      const ms = s.started !== null && s.finished !== null ? s.finished - s.started : undefined;
      if (ms !== undefined) counts.time += Math.max(0, ms);
      const out: string[] = [`step ${s.stepno} ${s.testcase} ${s.status}`];
      if (s.logPath !== null) {
        out.push(`log: ${opts.logsDir === undefined ? s.logPath : join(opts.logsDir, s.logPath)}`);
        const key = `${flight.flight}/${job.job}/${s.stepno}`;
        const tail = tails.get(key);
        if (tail !== undefined) out.push('--- last lines of the log ---', tail);
        else if (tails.has(key)) out.push('(the log could not be read)');
      }
      cases.push(
        `    <testcase${attrs({
          classname: job.job,
          name: s.testid,
          time: ms === undefined ? undefined : seconds(ms),
        })}>${outcomeXml(o)}\n      <system-out>${escapeText(out.join('\n'))}</system-out>\n    </testcase>`,
      );
    }
    const jobLevel = failures.get(`${job.job}\u0000`);
    if (jobLevel !== undefined) {
      const o = outcome(job.status, jobLevel);
      count(o);
      cases.push(
        `    <testcase${attrs({ classname: job.job, name: NONE_EXECUTED })}>${outcomeXml(o)}\n    </testcase>`,
      );
    }
    total.tests += counts.tests;
    total.failures += counts.failures;
    total.errors += counts.errors;
    total.skipped += counts.skipped;
    total.time += counts.time;
    const started = job.steps.map((s) => s.started).filter((t): t is number => t !== null);
    suites.push(
      `  <testsuite${attrs({
        name: job.job,
        id: i,
        package: `${flight.branch}.${flight.flight}`,
        tests: counts.tests,
        failures: counts.failures,
        errors: counts.errors,
        skipped: counts.skipped,
        time: seconds(counts.time),
        timestamp: started.length > 0 ? new Date(Math.min(...started)).toISOString() : undefined,
        hostname: hostsOf(job),
      })}>\n    <properties>\n${[
        ['flight', flight.flight],
        ['branch', flight.branch],
        ['recipe', job.recipe],
        ['status', job.status],
      ]
        .map(([n, v]) => `      <property${attrs({ name: n, value: v })}/>`)
        .join('\n')}\n    </properties>\n${cases.join('\n')}${cases.length > 0 ? '\n' : ''}  </testsuite>`,
    );
  });

  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites${attrs({
    name: `${flight.branch} flight ${flight.flight}`,
    tests: total.tests,
    failures: total.failures,
    errors: total.errors,
    skipped: total.skipped,
    time: seconds(total.time),
  })}>\n${suites.join('\n')}${suites.length > 0 ? '\n' : ''}</testsuites>\n`;
}

function hostsOf(job: JobDetail): string | undefined {
  const hosts = job.runvars
    .filter((r) => (r.name === 'host' || r.name === 'buildhost' || r.name.endsWith('_host')) && r.val !== '')
    .map((r) => r.val);
  return hosts.length === 0 ? undefined : [...new Set(hosts)].sort().join('+');
}

/** The XML with the tail of the log of every step that did not pass (read from `logsDir`). */
export async function renderJunit(data: ReportData, opts: JunitOptions = {}): Promise<string> {
  const tails = new Map<string, string | undefined>();
  if (opts.logsDir !== undefined) {
    const dir = opts.logsDir;
    const lines = opts.tailLines ?? 40;
    const bytes = opts.tailBytes ?? 16 * 1024;
    const wanted = data.jobs.flatMap((j) =>
      j.steps.flatMap((s) =>
        s.logPath === null || s.status === 'pass'
          ? []
          : [{ key: `${data.flight.flight}/${j.job}/${s.stepno}`, path: s.logPath }],
      ),
    );
    // A few at a time: a flight has about a thousand step logs, more than a process may hold open.
    for (let i = 0; i < wanted.length; i += 32) {
      await Promise.all(
        wanted
          .slice(i, i + 32)
          .map(async (w) => tails.set(w.key, await logTail(join(dir, w.path), lines, bytes))),
      );
    }
  }
  return junitXml(data, tails, opts.logsDir === undefined ? {} : { logsDir: opts.logsDir });
}
