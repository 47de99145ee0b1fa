/**
 * The report email (OSSTEST-BEHAVIOUR §8), plain text in the shapes people on the original's lists
 * know: Subject `[<branch> test] <flight>: regressions - FAIL` (or `tolerable …`, `… - PUSHED`);
 * body: the flight line and verdict heading, the failures by category (`job stepno testid status
 * verdict`), versions tested against the baseline's, the people who touched the revisions, the
 * jobs with their statuses, what changed for each regression, and the revision log per tree.
 *
 * Sending goes through nodemailer: an SMTP transport configured by SmtpHost/SmtpPort, or a buffer
 * transport that builds the same RFC 5322 message (CRLF line ends) to be written to a file.
 */

import nodemailer from 'nodemailer';
import type { Config } from '../config/config.js';
import { ConfigError } from '../config/errors.js';
import type { ReportData, TreeChange, WhatChanged } from './report-data.js';
import { renderSummary, subjectLine } from './text.js';

export interface EmailOptions {
  /** The tested revisions were pushed: the subject ends ` - PUSHED`. */
  pushed?: boolean;
  /** Where the flight's logs and pages are published, printed near the top. */
  logsUrl?: string;
}

export interface Email {
  subject: string;
  text: string;
}

const RULE = '-'.repeat(60);

function short(rev: string): string {
  return /^[0-9a-f]{13,}$/i.test(rev) ? rev.slice(0, 12) : rev;
}

function when(ms: number | null): string {
  return ms === null ? 'not started' : new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

function peopleSection(changes: readonly TreeChange[]): string[] {
  const people = new Map<string, string>();
  for (const c of changes)
    for (const p of c.people) if (!people.has(p.toLowerCase())) people.set(p.toLowerCase(), p);
  const out = ['People who touched revisions under test:'];
  if (people.size > 0)
    out.push(...[...people.values()].sort((a, b) => a.localeCompare(b)).map((p) => `  ${p}`));
  else if (changes.every((c) => c.from === null))
    out.push('  (none known: there is no baseline to compare with)');
  else out.push('  (none: nothing changed since the baseline)');
  const unread = changes.filter((c) => c.error !== undefined);
  if (unread.length > 0) out.push(...unread.map((c) => `  (not known for tree ${c.tree}: ${c.error})`));
  if (changes.some((c) => c.truncated)) out.push('  (from the commits shown in the revision log only)');
  return out;
}

function whatChangedSection(data: ReportData, w: WhatChanged): string[] {
  const f = data.judgement.failures.find((x) => x.job === w.job && x.testid === w.testid);
  const out = [` ${w.job} ${w.testid}: ${f?.text ?? 'regression'}`];
  out.push(`  hosts:    ${w.hosts.length > 0 ? w.hosts.join(', ') : '(none recorded)'}`);
  const same =
    w.harness.now.length > 0 && w.harness.now.join(' ') === w.harness.baseline.join(' ')
      ? ' (same as baseline)'
      : '';
  out.push(`  harness:  ${w.harness.now.join(' ') || '(not recorded)'}${same}`);
  if (same === '') out.push(`  baseline harness: ${w.harness.baseline.join(' ') || '(not recorded)'}`);
  if (w.trees.length === 0) out.push('  trees:    none of the trees this job uses changed');
  for (const t of w.trees) {
    const range = `${t.from === null ? '(new)' : short(t.from)}..${short(t.to)}`;
    const n = t.error !== undefined ? 'log unreadable' : `${t.log.length}${t.truncated ? '+' : ''} commits`;
    out.push(`  tree ${t.tree}: ${range} (${n})`);
  }
  if (w.passedElsewhere.length === 0) out.push('  not seen passing on other jobs or branches lately');
  else {
    out.push('  passed elsewhere:');
    for (const p of w.passedElsewhere) {
      out.push(`   flight ${p.flight} (${p.branch}) ${p.job}${p.host === null ? '' : ` on ${p.host}`}`);
    }
  }
  return out;
}

function revisionLog(changes: readonly TreeChange[]): string[] {
  const out: string[] = [];
  for (const c of changes) {
    out.push(`tree ${c.tree}${c.url === '' ? '' : ` ${c.url}`}`);
    if (c.from === null) out.push(`  ${short(c.to)} (no baseline revision: no log)`);
    else if (c.from === c.to) out.push(`  ${short(c.to)} (unchanged since the baseline)`);
    else {
      out.push(`  ${short(c.from)}..${short(c.to)}`);
      if (c.error !== undefined) out.push(`  ${c.error}`);
      for (const l of c.log) out.push(`  ${short(l.rev)} ${l.subject} (${l.author})`);
      if (c.truncated) out.push(`  … more commits not shown (the log is cut at ${c.log.length})`);
    }
    out.push('');
  }
  return out;
}

export function renderEmail(data: ReportData, opts: EmailOptions = {}): Email {
  const j = data.judgement;
  const subject = subjectLine(j, opts.pushed ? { pushed: true } : {});
  const out: string[] = [];
  out.push(renderSummary(j).replace(/\n$/, ''), '');
  if (data.baselineWhy !== undefined) out.push(`Baseline: ${data.baselineWhy}`);
  if (data.baseline !== null)
    out.push(`Last test of basis   ${data.baseline.flight}  ${when(data.baseline.started)}`);
  out.push(`This flight          ${data.flight.flight}  ${when(data.flight.started)}`, '');
  if (opts.logsUrl !== undefined)
    out.push('Logs, config files, etc. are available at', `    ${opts.logsUrl}`, '');
  out.push(...peopleSection(data.changes), '');
  const jw = Math.max(0, ...data.jobs.map((x) => x.job.length));
  out.push('jobs:', ...data.jobs.map((x) => ` ${x.job.padEnd(jw)}  ${x.status}`), '');
  if (data.whatChanged.length > 0) {
    out.push(RULE, 'What changed, for each regression:', '');
    for (const w of data.whatChanged) out.push(...whatChangedSection(data, w), '');
  }
  if (opts.pushed) out.push(RULE, 'Pushing revisions.', '');
  else if (!j.tolerable) out.push(RULE, 'Not pushing.', '');
  if (data.changes.length > 0) out.push(RULE, 'Revision log:', '', ...revisionLog(data.changes));
  return { subject, text: `${out.join('\n').replace(/\n+$/, '')}\n` };
}

export interface MailSettings {
  host: string;
  port: number;
  from: string;
  to: string[];
}

/** SmtpHost, SmtpPort, ReportFrom and ReportTo; `needTo` makes an empty ReportTo an error. */
export function mailSettings(config: Config, needTo: boolean): MailSettings {
  const to = (config.optString('ReportTo') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (needTo && to.length === 0) {
    const where = config.origin('ReportTo');
    throw new ConfigError(
      'ReportTo names no recipient: set it to send report emails',
      where?.file,
      where?.line,
    );
  }
  const port = config.int('SmtpPort');
  if (port < 1 || port > 65535) {
    const where = config.origin('SmtpPort');
    throw new ConfigError(`SmtpPort must be a port number (1-65535), not ${port}`, where?.file, where?.line);
  }
  return { host: config.string('SmtpHost'), port, from: config.string('ReportFrom'), to };
}

function message(mail: Email, data: ReportData | undefined, s: Pick<MailSettings, 'from' | 'to'>) {
  const headers: Record<string, string> = {};
  if (data !== undefined) {
    // For scripts and mail filters: what the subject says, without parsing it.
    headers['X-Osstest-Flight'] = data.flight.flight;
    headers['X-Osstest-Branch'] = data.flight.branch;
    headers['X-Osstest-Verdict'] = data.judgement.overall;
  }
  return {
    from: s.from,
    ...(s.to.length > 0 ? { to: s.to } : {}),
    subject: mail.subject,
    text: mail.text,
    headers,
  };
}

/** The RFC 5322 message (headers and body, CRLF line ends), as `sendEmail` would send it. */
export async function buildMessage(
  mail: Email,
  s: Pick<MailSettings, 'from' | 'to'>,
  data?: ReportData,
): Promise<Buffer> {
  const t = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'windows' });
  const info = await t.sendMail(message(mail, data, s));
  return info.message as Buffer;
}

/** Sends through the SMTP server; refused recipients are an error naming them. */
export async function sendEmail(
  mail: Email,
  s: MailSettings,
  data?: ReportData,
): Promise<{ messageId: string; accepted: string[] }> {
  const t = nodemailer.createTransport({
    host: s.host,
    port: s.port,
    // Port 465 speaks TLS from the start; on others STARTTLS is used when the server offers it.
    secure: s.port === 465,
    connectionTimeout: 30_000,
    greetingTimeout: 30_000,
    socketTimeout: 60_000,
  });
  try {
    const info = await t.sendMail(message(mail, data, s));
    const rejected = (info.rejected ?? []).map(String);
    if (rejected.length > 0)
      throw new Error(`SMTP server ${s.host}:${s.port} refused ${rejected.join(', ')}`);
    return { messageId: info.messageId, accepted: (info.accepted ?? []).map(String) };
  } finally {
    t.close();
  }
}
