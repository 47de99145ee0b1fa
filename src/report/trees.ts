/**
 * The revision log of a tree between the baseline and this flight, and the people who touched it
 * (OSSTEST-BEHAVIOUR §4 step 4, §8): authors and the people named in Signed-off-by, Acked-by,
 * Reviewed-by, Tested-by (and Co-authored-by) trailers.
 *
 * A tree is named by the URL in its `tree_<t>` runvar. A local directory is read where it is; any
 * other URL (file://, https://, git://, ssh) is mirrored once into `<Repos>/mirrors/` and fetched
 * again only when a revision the report needs is not there yet. Read-only towards the tree itself.
 * A tree that cannot be read is reported as such (`TreeChange.error`), never thrown: a report
 * without a revision log is still a report.
 */
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { execa } from 'execa';
import type { TreeChange } from './report-data.js';

/** Commits listed per tree before the log is cut (the rest are counted as truncated). */
export const DEFAULT_LOG_BOUND = 200;

/** Clones and fetches of remote trees give up after this long. */
const FETCH_TIMEOUT_MS = 120_000;

const PEOPLE_TRAILERS: ReadonlySet<string> = new Set([
  'signed-off-by',
  'acked-by',
  'reviewed-by',
  'tested-by',
  'co-authored-by',
]);

class TreeError extends Error {
  override name = 'TreeError';
}

async function git(cwd: string, args: string[], timeout = 30_000): Promise<string> {
  const r = await execa('git', args, {
    cwd,
    reject: false,
    timeout,
    stripFinalNewline: false,
    // A user's pager, colour or prompt settings must not leak into what is parsed, nor hang a report.
    env: { GIT_PAGER: 'cat', GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: 'true', LC_ALL: 'C' },
  });
  if (r.failed) {
    const stderr = String(r.stderr ?? '').trim();
    const why = r.timedOut
      ? `timed out after ${timeout / 1000} s`
      : stderr === ''
        ? `exit code ${r.exitCode ?? '?'}`
        : stderr.split('\n').slice(-2).join(' / ');
    throw new TreeError(`git ${args[0]}: ${why}`);
  }
  return String(r.stdout);
}

async function hasCommit(repo: string, rev: string): Promise<boolean> {
  const r = await execa('git', ['cat-file', '-e', `${rev}^{commit}`], { cwd: repo, reject: false });
  return r.exitCode === 0;
}

/** A plain path that names a directory (not a URL). */
function localDir(url: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) || /^[^/]+@[^/]+:/.test(url)) return undefined;
  const p = isAbsolute(url) ? url : resolve(url);
  try {
    return statSync(p).isDirectory() ? p : undefined;
  } catch {
    return undefined;
  }
}

/** `https://example.org/x.git` → `example.org_x.git`: one readable directory name per URL. */
function mirrorName(url: string): string {
  const name = url
    .replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')
    .replace(/[^A-Za-z0-9._-]+/g, '_')
    .replace(/^[._]+/, '');
  return (name === '' ? 'tree' : name).slice(0, 200);
}

/**
 * A directory git can read the tree's commits in, holding every revision in `revs`: the tree
 * itself when it is a local directory, else a mirror under `reposDir`.
 */
export async function treeRepository(
  url: string,
  revs: readonly string[],
  reposDir: string,
): Promise<string> {
  if (url === '') throw new TreeError('no URL');
  if (url.startsWith('-')) throw new TreeError(`refusing URL ${JSON.stringify(url)}: it starts with "-"`);
  const local = localDir(url);
  if (local !== undefined) return local;
  const mirrors = join(reposDir, 'mirrors');
  const dir = join(mirrors, `${mirrorName(url)}.git`);
  if (!existsSync(dir)) {
    mkdirSync(mirrors, { recursive: true });
    // Cloned beside, then renamed: a report running at the same time never sees half a mirror.
    const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
    try {
      await git(mirrors, ['clone', '--mirror', '--quiet', '--', url, tmp], FETCH_TIMEOUT_MS);
      if (!existsSync(dir)) renameSync(tmp, dir);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    return dir;
  }
  const missing = [];
  for (const r of revs) if (!(await hasCommit(dir, r))) missing.push(r);
  if (missing.length > 0) await git(dir, ['fetch', '--quiet', '--prune', 'origin'], FETCH_TIMEOUT_MS);
  return dir;
}

interface Commit {
  rev: string;
  author: string;
  subject: string;
  people: string[];
}

const FIELD = '\u001f';
const RECORD = '\u001e';

function parseLog(out: string): Commit[] {
  const commits: Commit[] = [];
  for (const rec of out.split(RECORD)) {
    const text = rec.replace(/^\n/, '');
    if (text.trim() === '') continue;
    const [rev = '', author = '', subject = '', trailers = ''] = text.split(FIELD);
    const people = [author];
    for (const line of trailers.split('\n')) {
      const m = /^([A-Za-z-]+):\s*(.+?)\s*$/.exec(line);
      if (m && PEOPLE_TRAILERS.has(m[1]!.toLowerCase())) people.push(m[2]!);
    }
    commits.push({ rev, author, subject, people });
  }
  return commits;
}

/** The email address of `Name <addr>`, lower-cased; else the text itself. */
function personKey(p: string): string {
  const m = /<([^>]+)>\s*$/.exec(p);
  return (m ? m[1]! : p).trim().toLowerCase();
}

/** People in order of first appearance, one entry per email address, then sorted for reading. */
export function uniquePeople(people: Iterable<string>): string[] {
  const seen = new Map<string, string>();
  for (const p of people) {
    const t = p.trim();
    if (t === '') continue;
    const k = personKey(t);
    if (!seen.has(k)) seen.set(k, t);
  }
  return [...seen.values()].sort((a, b) => a.localeCompare(b, 'en', { sensitivity: 'base' }));
}

export interface TreeSpec {
  tree: string;
  url: string;
  from: string | null;
  to: string;
}

/**
 * One tree's change, from→to. With no `from` (a baseline test, or a tree new since the baseline)
 * or `from` equal to `to`, the log is empty. Errors end up in `error`, with an empty log.
 */
export async function treeChange(
  spec: TreeSpec,
  opts: { reposDir: string; bound?: number },
): Promise<TreeChange> {
  const bound = opts.bound ?? DEFAULT_LOG_BOUND;
  const change: TreeChange = {
    tree: spec.tree,
    url: spec.url,
    from: spec.from,
    to: spec.to,
    log: [],
    people: [],
    truncated: false,
  };
  if (spec.from === null || spec.from === spec.to) return change;
  try {
    for (const r of [spec.from, spec.to]) {
      if (r.startsWith('-')) throw new TreeError(`refusing revision ${JSON.stringify(r)}`);
    }
    const repo = await treeRepository(spec.url, [spec.from, spec.to], opts.reposDir);
    const range = `${spec.from}..${spec.to}`;
    const format = `--format=%H${FIELD}%an <%ae>${FIELD}%s${FIELD}%(trailers:only,unfold)${RECORD}`;
    // One git process when all is well; only a failure looks for the revision that is missing.
    const out = await git(repo, ['log', `--max-count=${bound + 1}`, format, range, '--']).catch(
      async (e: unknown) => {
        for (const r of [spec.from!, spec.to]) {
          if (!(await hasCommit(repo, r))) throw new TreeError(`revision ${r} is not in ${spec.url}`);
        }
        throw e;
      },
    );
    const commits = parseLog(out);
    change.truncated = commits.length > bound;
    const shown = commits.slice(0, bound);
    change.log = shown.map((c) => ({ rev: c.rev, author: c.author, subject: c.subject }));
    change.people = uniquePeople(shown.flatMap((c) => c.people));
  } catch (e) {
    change.error = `cannot read tree ${spec.tree} at ${spec.url}: ${(e as Error).message}`;
  }
  return change;
}
