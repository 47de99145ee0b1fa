/**
 * The judgement as people read it in the email and on the terminal (OSSTEST-BEHAVIOUR §8): the
 * heading, the failures in their familiar categories as `job stepno testid status verdict`, the
 * versions tested against the baseline's, and the subject line.
 */
import type { Failure, Judgement } from './types.js';

export interface Section {
  title: string;
  failures: Failure[];
}

/**
 * Failures by category. "Regarded as allowable" holds only failures an allow line cleared; what does
 * not block for another reason (like, never pass, blocked) is listed as "not blocking", with its
 * verdict saying why.
 */
export function sections(j: Judgement): Section[] {
  const blocking: Failure[] = [];
  const intermittent: Failure[] = [];
  const allowable: Failure[] = [];
  const other: Failure[] = [];
  for (const f of j.failures) {
    if (f.blocking) blocking.push(f);
    else if (f.allowed !== undefined) allowable.push(f);
    else if (f.verdict === 'pass in') intermittent.push(f);
    else other.push(f);
  }
  return [
    {
      title: 'Tests which did not succeed and are blocking,\nincluding tests which could not be run:',
      failures: blocking,
    },
    { title: 'Tests which are failing intermittently (not blocking):', failures: intermittent },
    { title: 'Regressions which are regarded as allowable (not blocking):', failures: allowable },
    { title: 'Tests which did not succeed, but are not blocking:', failures: other },
  ].filter((s) => s.failures.length > 0);
}

/** ` job  stepno testid  verdict`, columns padded to the widest entry of `all`. */
export function failureLines(failures: readonly Failure[], all: readonly Failure[] = failures): string[] {
  const jw = Math.max(0, ...all.map((f) => f.job.length));
  const nw = Math.max(0, ...all.map((f) => String(f.stepno ?? '').length));
  const tw = Math.max(0, ...all.map((f) => f.testid.length));
  return failures.map((f) => {
    const where = f.allowed === undefined ? '' : `  [${f.allowed.file}:${f.allowed.line}]`;
    return ` ${f.job.padEnd(jw)} ${String(f.stepno ?? '').padStart(nw)} ${f.testid.padEnd(tw)} ${f.text}${where}`.replace(
      /\s+$/,
      '',
    );
  });
}

export function renderSummary(j: Judgement): string {
  const out: string[] = [`flight ${j.flight} ${j.branch} ${j.outcome}`, '', j.heading, ''];
  for (const s of sections(j)) {
    out.push(s.title, ...failureLines(s.failures, j.failures), '');
  }
  if (j.warnings.length > 0) out.push('Allow file warnings:', ...j.warnings.map((w) => ` ${w}`), '');
  const tw = Math.max(0, ...j.versions.map((v) => v.tree.length)) + 2;
  const tested = j.versions.filter((v) => v.this !== undefined);
  const base = j.versions.filter((v) => v.that !== undefined);
  if (tested.length > 0)
    out.push('version targeted for testing:', ...tested.map((v) => ` ${v.tree.padEnd(tw)}${v.this}`));
  if (j.baseline === null) out.push('baseline version:', ' (none: this is a baseline test)');
  else if (base.length > 0)
    out.push('baseline version:', ...base.map((v) => ` ${v.tree.padEnd(tw)}${v.that}`));
  return `${out.join('\n')}\n`;
}

/**
 * `[<branch> test] <flight>: regressions - FAIL`, `… tolerable all pass - PUSHED`, or just the outcome
 * when something other than a regression blocks.
 */
export function subjectLine(j: Judgement, o: { pushed?: boolean } = {}): string {
  let what: string;
  if (j.tolerable) what = `tolerable ${j.outcome}`;
  else if (j.overall === 'regressions') what = `regressions - ${j.outcome}`;
  else what = j.outcome;
  return `[${j.branch} test] ${j.flight}: ${what}${o.pushed ? ' - PUSHED' : ''}`;
}
