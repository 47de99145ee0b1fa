/**
 * Reading local git repositories for bisection: the commits between a basis and a failure, their
 * times and parents, and the log between two revisions. Read-only: no command here changes a
 * repository, and repositories are local paths (no fetching).
 */
import { execa } from 'execa';

export interface CommitInfo {
  /** Full hash. */
  sha: string;
  /** Full hashes of the parents, in git's order (first parent first). */
  parents: string[];
  /** Committer time, seconds since the epoch. */
  time: number;
}

export class GitError extends Error {
  constructor(
    readonly repo: string,
    readonly args: readonly string[],
    readonly detail: string,
  ) {
    super(`git ${args.join(' ')} in ${repo}: ${detail}`);
    this.name = 'GitError';
  }
}

async function git(repo: string, args: string[]): Promise<string> {
  const r = await execa('git', ['-C', repo, ...args], {
    reject: false,
    stripFinalNewline: true,
    // A user's pager or colour settings must not leak into what we parse.
    env: { GIT_PAGER: 'cat', GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' },
  });
  if (r.failed) {
    const stderr = String(r.stderr ?? '').trim();
    const why = stderr === '' ? `exit code ${r.exitCode ?? '?'}` : stderr.split('\n').slice(-3).join(' / ');
    throw new GitError(repo, args, why);
  }
  return r.stdout;
}

/** The full hash of REV (a hash, branch or tag) as a commit; a clear error naming the repository if unknown. */
export async function resolveCommit(repo: string, rev: string): Promise<string> {
  if (rev.startsWith('-')) throw new GitError(repo, ['rev-parse', rev], 'a revision may not start with "-"');
  return git(repo, ['rev-parse', '--verify', '--quiet', '--end-of-options', `${rev}^{commit}`]).catch(
    (e: unknown) => {
      // --quiet: an unknown revision is a bare exit 1; anything on stderr is another trouble.
      if (e instanceof GitError && e.detail.startsWith('exit code')) {
        throw new GitError(repo, e.args, `no such commit: ${rev}`);
      }
      throw e;
    },
  );
}

function parseLog(repo: string, out: string): CommitInfo[] {
  const commits: CommitInfo[] = [];
  for (const line of out.split('\n')) {
    if (line === '') continue;
    const [sha, parents, time] = line.split('\t');
    const t = Number(time);
    if (!sha || parents === undefined || !Number.isFinite(t)) {
      throw new GitError(repo, ['log'], `unexpected output line: ${JSON.stringify(line)}`);
    }
    commits.push({ sha, parents: parents === '' ? [] : parents.split(' '), time: t });
  }
  return commits;
}

/** Commit time and parents of one commit. */
export async function commitInfo(repo: string, rev: string): Promise<CommitInfo> {
  const sha = await resolveCommit(repo, rev);
  const out = await git(repo, ['log', '-1', '--format=%H%x09%P%x09%ct', sha]);
  const [c] = parseLog(repo, out);
  if (!c) throw new GitError(repo, ['log', '-1', sha], 'no output');
  return c;
}

export interface RangeOptions {
  /**
   * Only commits that descend from the basis (`--ancestry-path`). Off by default: like `git bisect`,
   * the range is every commit reachable from the failure and not from the basis, so a change made
   * on a branch forked before the basis is pinned down itself rather than blamed on its merge.
   */
  ancestryPath?: boolean;
}

/**
 * The commits reachable from FAILURE and not from BASIS (both full hashes), newest first. Parents
 * outside the range are reported as git has them; the graph treats them as the basis.
 */
export async function commitsBetween(
  repo: string,
  basis: string,
  failure: string,
  opts: RangeOptions = {},
): Promise<CommitInfo[]> {
  const args = ['log', '--topo-order', '--format=%H%x09%P%x09%ct'];
  if (opts.ancestryPath) args.push('--ancestry-path');
  args.push(failure, `^${basis}`, '--');
  return parseLog(repo, await git(repo, args));
}

/** Whether A is an ancestor of (or equal to) B. */
export async function isAncestor(repo: string, a: string, b: string): Promise<boolean> {
  const r = await execa('git', ['-C', repo, 'merge-base', '--is-ancestor', a, b], { reject: false });
  if (r.exitCode === 0) return true;
  if (r.exitCode === 1) return false;
  throw new GitError(repo, ['merge-base', '--is-ancestor', a, b], String(r.stderr).trim());
}

export interface ShortLogEntry {
  sha: string;
  time: number;
  author: string;
  subject: string;
}

/** The commits in FROM..TO (reachable from TO, not from FROM), newest first: the "log between" of a report. */
export async function shortLog(
  repo: string,
  from: string,
  to: string,
  limit = 1000,
): Promise<ShortLogEntry[]> {
  const out = await git(repo, [
    'log',
    `--max-count=${limit}`,
    '--format=%H%x09%ct%x09%an%x09%s',
    `${from}..${to}`,
    '--',
  ]);
  const entries: ShortLogEntry[] = [];
  for (const line of out.split('\n')) {
    if (line === '') continue;
    const [sha = '', time = '', author = '', ...subject] = line.split('\t');
    entries.push({ sha, time: Number(time), author, subject: subject.join('\t') });
  }
  return entries;
}
