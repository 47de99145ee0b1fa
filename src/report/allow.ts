/**
 * Allow files (OSSTEST-BEHAVIOUR §4): `allow.<branch>` and `allow.all` list failures that may block
 * nothing. Each line is `JOBPATTERN [TESTIDPATTERN]`; `#` starts a comment. In a pattern `@@`
 * stands for any run of non-space characters and `@` for a run that does not cross `-`, `.` or `/`
 * (so `test-@-xl` is one arch, `test-@@` any test job); every other character stands for itself and
 * the pattern must match the whole name. Either run may be empty.
 *
 * A testid pattern is matched against the testid as reports show it: the recorded testid, or the same
 * without a trailing `(N)` step number. Never against the script name: the original's allow file said
 * `logs-capture` (the script is `ts-logs-capture`) for steps whose testid is `capture-logs`, and the
 * line silently matched nothing. Here what is written in an allow file is what the report prints, and
 * `lintAllow` says which lines cannot match any step known on the branch, naming the testid a script
 * name stands for.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { reportTestid, scriptBaseName } from '../model/testid.js';
import type { AllowRule } from './types.js';

/** An allow file that cannot be read as one; the message names the file and line. */
export class AllowFileError extends Error {
  override name = 'AllowFileError';
  constructor(
    message: string,
    readonly file: string,
    readonly line?: number,
  ) {
    super(`${file}${line !== undefined ? `:${line}` : ''}: ${message}`);
  }
}

/** The allow files that apply to a branch, most specific first. */
export function allowFileNames(branch: string): string[] {
  return [`allow.${branch}`, 'allow.all'];
}

/** Parses one allow file's text. `file` names it in rules and errors. */
export function parseAllowFile(contents: string, file: string): AllowRule[] {
  const rules: AllowRule[] = [];
  contents.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    // A `#` starts a comment at the start of a line or after white space; inside a word it is literal.
    const text = raw.replace(/(^|\s)#.*$/, '');
    const fields = text.split(/\s+/).filter((f) => f !== '');
    if (fields.length === 0) return;
    if (fields.length > 2) {
      throw new AllowFileError(
        `expected JOBPATTERN [TESTIDPATTERN], found ${fields.length} fields: ${JSON.stringify(raw.trim())}`,
        file,
        line,
      );
    }
    const [jobPattern, testidPattern] = fields as [string, string | undefined];
    rules.push(
      testidPattern === undefined ? { file, line, jobPattern } : { file, line, jobPattern, testidPattern },
    );
  });
  return rules;
}

/**
 * Reads the allow files of a branch from `dir` (those that exist), most specific first. The only
 * I/O of the report's judgement; everything else takes the rules as values.
 */
export async function readAllowFiles(dir: string, branch: string): Promise<AllowRule[]> {
  if (branch === '' || branch.includes('/') || branch.startsWith('.')) {
    throw new AllowFileError(`branch name ${JSON.stringify(branch)} cannot name an allow file`, dir);
  }
  const rules: AllowRule[] = [];
  for (const name of allowFileNames(branch)) {
    const file = path.join(dir, name);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new AllowFileError(`cannot read: ${(e as Error).message}`, file);
    }
    rules.push(...parseAllowFile(text, file));
  }
  return rules;
}

/** The regular expression an allow pattern stands for. */
export function allowPatternRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; ) {
    if (pattern.startsWith('@@', i)) {
      re += '\\S*';
      i += 2;
    } else if (pattern[i] === '@') {
      re += '[^\\s./-]*';
      i += 1;
    } else {
      re += pattern[i]!.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
      i += 1;
    }
  }
  return new RegExp(`^${re}$`);
}

interface CompiledRule {
  rule: AllowRule;
  job: RegExp;
  testid?: RegExp;
}

/** A step the branch has run, as far as allow lines care. */
export interface KnownStep {
  job: string;
  testid: string;
  script?: string;
}

export class AllowList {
  private readonly compiled: CompiledRule[];

  constructor(rules: readonly AllowRule[]) {
    this.compiled = rules.map((rule) => {
      const c: CompiledRule = { rule, job: allowPatternRegExp(rule.jobPattern) };
      if (rule.testidPattern !== undefined) c.testid = allowPatternRegExp(rule.testidPattern);
      return c;
    });
  }

  /** The first line that allows a failure of (job, testid); a job-only line allows every testid. */
  match(job: string, testid: string): AllowRule | undefined {
    for (const c of this.compiled) {
      if (!c.job.test(job)) continue;
      if (c.testid === undefined || testidMatches(c.testid, testid)) return c.rule;
    }
    return undefined;
  }

  /**
   * Warnings for lines that cannot match any known step: a job pattern no job answers to, or a testid
   * pattern none of those jobs' testids answers to. When such a testid pattern is a script's name,
   * the warning says which testid that script's steps are recorded under.
   */
  lint(known: Iterable<KnownStep>): string[] {
    const steps = [...known];
    const warnings: string[] = [];
    for (const c of this.compiled) {
      const { file, line, jobPattern, testidPattern } = c.rule;
      const ofJob = steps.filter((s) => c.job.test(s.job));
      if (ofJob.length === 0) {
        warnings.push(`${file}:${line}: job pattern \`${jobPattern}\` matches no job run on this branch`);
        continue;
      }
      if (c.testid === undefined) continue;
      const re = c.testid;
      if (ofJob.some((s) => testidMatches(re, s.testid))) continue;
      const byScript = ofJob.filter((s) => s.script !== undefined && re.test(scriptBaseName(s.script)));
      const named = [
        ...new Set(byScript.map((s) => `${s.script} is recorded as \`${reportTestid(s.testid)}\``)),
      ];
      warnings.push(
        `${file}:${line}: testid pattern \`${testidPattern}\` matches no testid of the jobs matching \`${jobPattern}\`` +
          (named.length > 0 ? ` (allow lines name testids, not scripts: ${named.join(', ')})` : ''),
      );
    }
    return warnings;
  }
}

function testidMatches(re: RegExp, testid: string): boolean {
  return re.test(testid) || re.test(reportTestid(testid));
}
