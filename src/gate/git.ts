/**
 * git as the push gate runs it: one child process per command, never a prompt, never a pager, a
 * time limit, and an error that says the command, where, and the tail of what git said.
 */
import { execa } from 'execa';

/** A git command failed; `detail` is the last lines git wrote (or why it was stopped). */
export class GateGitError extends Error {
  override name = 'GateGitError';
  constructor(
    readonly args: readonly string[],
    readonly where: string,
    readonly detail: string,
    readonly exitCode: number | undefined,
  ) {
    super(`git ${args.join(' ')}${where === '' ? '' : ` (in ${where})`}: ${detail}`);
  }
}

export interface GitResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** The environment git runs with: no prompts, pagers, user config surprises or translations. */
const GIT_ENV = {
  GIT_TERMINAL_PROMPT: '0',
  GIT_ASKPASS: 'true',
  SSH_ASKPASS: 'true',
  GIT_PAGER: 'cat',
  LC_ALL: 'C',
};

/** Runs git; a non-zero exit is an error unless `allowFailure`. */
export async function git(
  args: string[],
  o: { cwd?: string; timeoutMs?: number; allowFailure?: boolean } = {},
): Promise<GitResult> {
  const timeout = o.timeoutMs ?? 120_000;
  const r = await execa('git', args, {
    ...(o.cwd !== undefined ? { cwd: o.cwd } : {}),
    reject: false,
    timeout,
    stdin: 'ignore',
    env: GIT_ENV,
  });
  const out = { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), exitCode: r.exitCode ?? -1 };
  if (r.failed && !(o.allowFailure && !r.timedOut && r.exitCode !== undefined)) {
    const why = r.timedOut
      ? `timed out after ${Math.round(timeout / 1000)} s`
      : out.stderr.trim() === ''
        ? `exit status ${r.exitCode ?? '?'}${r.signal ? ` (${r.signal})` : ''}`
        : out.stderr.trim().split('\n').slice(-3).join(' / ');
    throw new GateGitError(args, o.cwd ?? '', why, r.exitCode);
  }
  return out;
}

const FULL_HASH = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

export function isFullHash(rev: string): boolean {
  return FULL_HASH.test(rev);
}

/** The commit a ref or revision names in `repo`, or undefined if it names none. */
export async function revParse(repo: string, rev: string): Promise<string | undefined> {
  if (rev.startsWith('-')) return undefined;
  const r = await git(['rev-parse', '--verify', '--quiet', '--end-of-options', `${rev}^{commit}`], {
    cwd: repo,
    allowFailure: true,
  });
  return r.exitCode === 0 ? r.stdout.trim() : undefined;
}

/** Whether `a` is an ancestor of `b` (or equal to it) in `repo`. */
export async function isAncestorOf(repo: string, a: string, b: string): Promise<boolean> {
  const r = await git(['merge-base', '--is-ancestor', a, b], { cwd: repo, allowFailure: true });
  if (r.exitCode === 0) return true;
  if (r.exitCode === 1) return false;
  throw new GateGitError(['merge-base', '--is-ancestor', a, b], repo, r.stderr.trim(), r.exitCode);
}

/** The commit `refs/heads/<branch>` of a remote repository is at now, or undefined if it has none. */
export async function remoteBranch(
  url: string,
  branch: string,
  timeoutMs?: number,
): Promise<string | undefined> {
  const ref = `refs/heads/${branch}`;
  const r = await git(['ls-remote', '--', url, ref], timeoutMs === undefined ? {} : { timeoutMs });
  for (const line of r.stdout.split('\n')) {
    const [sha, name] = line.split('\t');
    if (name === ref && sha) return sha;
  }
  return undefined;
}
