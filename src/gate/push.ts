/**
 * The push: the tested revision onto the output branch, as a compare-and-swap fast-forward.
 *
 * - TO must descend from FROM (checked in the mirror): what is written is always a fast-forward.
 * - The remote branch must still be at FROM, the revision it had when the flight started: read
 *   first (to say clearly who moved it), then enforced atomically by the push itself with
 *   `--force-with-lease=refs/heads/<ref>:<FROM>`: the update is sent as "FROM → TO" and the
 *   receiving side applies it only if the ref is still FROM at that instant.
 * - Nothing is ever forced: the refspec has no `+`, there is no `--force`, and the lease can only
 *   let through an update from FROM, which the first rule made a fast-forward.
 * After a push the remote is read back: the ref must now be TO.
 */
import type { PushResult } from '../db/gate-types.js';
import { git, isAncestorOf, remoteBranch } from './git.js';

export interface PushSpec {
  /** A local repository holding TO (the tree's mirror). */
  repo: string;
  url: string;
  /** The branch, e.g. `master`. */
  ref: string;
  from: string;
  to: string;
  timeoutMs?: number;
}

export interface PushAttempt {
  result: PushResult;
  detail: string;
}

const short = (rev: string) => rev.slice(0, 12);

export async function fastForwardPush(p: PushSpec): Promise<PushAttempt> {
  const timeoutMs = p.timeoutMs ?? 300_000;
  if (!(await isAncestorOf(p.repo, p.from, p.to))) {
    return {
      result: 'refused',
      detail: `${short(p.to)} does not descend from ${short(p.from)}: not a fast-forward of ${p.ref}, and a push is never forced`,
    };
  }
  const now = await remoteBranch(p.url, p.ref, timeoutMs);
  if (now !== p.from) {
    return {
      result: 'refused',
      detail: `${p.ref} moved since the flight started: it was ${short(p.from)}, it is ${now === undefined ? 'gone' : short(now)}`,
    };
  }
  const ref = `refs/heads/${p.ref}`;
  const r = await git(
    ['push', '--porcelain', `--force-with-lease=${ref}:${p.from}`, p.url, `${p.to}:${ref}`],
    {
      cwd: p.repo,
      timeoutMs,
      allowFailure: true,
    },
  );
  // Porcelain: a tab-separated line per ref, `<flag>\t<from>:<to>\t<summary>`.
  const line = r.stdout.split('\n').find((l) => l.split('\t')[1]?.endsWith(`:${ref}`));
  const flag = line?.[0];
  const summary = line?.split('\t')[2]?.trim() ?? '';
  if (r.exitCode !== 0) {
    if (flag === '!') {
      return {
        result: 'refused',
        detail: `the remote refused the update of ${p.ref} from ${short(p.from)} (${summary || 'rejected'}): it moved while pushing`,
      };
    }
    const tail = r.stderr.trim().split('\n').slice(-3).join(' / ');
    return {
      result: 'failed',
      detail: `git push failed (exit status ${r.exitCode})${tail === '' ? '' : `: ${tail}`}`,
    };
  }
  if (flag !== ' ') {
    // '=' (already there), '*' (created), '+' (forced): none can happen after the checks above.
    return { result: 'failed', detail: `git push reported '${line ?? r.stdout.trim()}', not a fast-forward` };
  }
  const after = await remoteBranch(p.url, p.ref, timeoutMs);
  if (after !== p.to) {
    return {
      result: 'failed',
      detail: `git push said it pushed, but ${p.ref} is ${after === undefined ? 'gone' : short(after)}, not ${short(p.to)}`,
    };
  }
  return { result: 'pushed', detail: `fast-forward ${short(p.from)}..${short(p.to)}` };
}
