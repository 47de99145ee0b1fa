/**
 * Local mirrors of the trees the gate tests: `<Repos>/<tree>.git`, a bare `git clone --mirror` made
 * once and then brought up to date with `git fetch --prune` (never cloned again per run). Flights
 * name the mirror in their `tree_<t>` runvars, so builds, reports and bisection read a local copy.
 *
 * Several osstest processes may sync one mirror at once (daily-branch of two branches that share a
 * tree, a bisection): every change to a mirror happens under an exclusive lock on
 * `<Repos>/<tree>.git.flock`. The lock is a kernel lock (flock(2), held by a `flock` child process
 * of ours): it goes away with its holder, so a crashed run never leaves a stale lock behind and no
 * stale-lock guessing is needed. Reading a mirror takes no lock: git updates refs atomically.
 *
 * Commits that once were tested must stay readable after a branch is rewound upstream (reports and
 * bisection look at them later), so a mirror never prunes unreachable objects (gc.pruneExpire never).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { git, revParse } from './git.js';

/** A tree name becomes a directory name: no separators, nothing hidden. */
const TREE_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;

export class MirrorError extends Error {
  override name = 'MirrorError';
}

export interface MirrorOptions {
  /** The Repos directory. */
  reposDir: string;
  /** Seconds to wait for another process's lock on the mirror (default 600). */
  lockWaitSeconds?: number;
  /** Limit for one clone or fetch (default 30 minutes: a first clone of a big tree is slow). */
  fetchTimeoutMs?: number;
}

export interface SyncedMirror {
  tree: string;
  url: string;
  path: string;
  /** Made by this call (a first clone) rather than fetched. */
  cloned: boolean;
}

export function mirrorPath(reposDir: string, tree: string): string {
  if (!TREE_NAME.test(tree)) throw new MirrorError(`tree name ${JSON.stringify(tree)} cannot name a mirror`);
  return join(reposDir, `${tree}.git`);
}

/**
 * Runs `fn` holding the exclusive lock on `lockFile`, waiting up to `waitSeconds` for it.
 * The `flock` child holds the lock until its stdin closes: when `fn` ends, or when this process dies.
 */
export async function withFileLock<T>(
  lockFile: string,
  waitSeconds: number,
  fn: () => Promise<T>,
): Promise<T> {
  const child = spawn(
    'flock',
    ['--exclusive', '--wait', String(waitSeconds), lockFile, 'sh', '-c', 'echo locked; exec cat >/dev/null'],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => {
    // 'close', not 'exit': the stderr we report must have been read to its end.
    child.once('close', (code) => resolve(code));
    child.once('error', () => resolve(null));
  });
  const locked = await new Promise<boolean>((resolve) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('locked\n')) resolve(true);
    });
    void exited.then(() => resolve(false));
  });
  if (!locked) {
    const code = await exited;
    child.stdin.destroy();
    if (code === 1 && stderr.trim() === '') {
      throw new MirrorError(`${lockFile}: another process held the lock for more than ${waitSeconds} s`);
    }
    throw new MirrorError(
      `${lockFile}: cannot take the lock (flock ${code === null ? 'could not be run: is util-linux installed?' : `exit status ${code}`}${stderr.trim() === '' ? '' : `: ${stderr.trim()}`})`,
    );
  }
  try {
    return await fn();
  } finally {
    child.stdin.end();
    await exited;
  }
}

/** The mirror of `tree`, cloned if it is missing, else fetched (refs deleted upstream are pruned). */
export async function syncMirror(tree: string, url: string, o: MirrorOptions): Promise<SyncedMirror> {
  if (url === '' || url.startsWith('-'))
    throw new MirrorError(`tree ${tree}: refusing URL ${JSON.stringify(url)}`);
  const path = mirrorPath(o.reposDir, tree);
  mkdirSync(o.reposDir, { recursive: true });
  const timeoutMs = o.fetchTimeoutMs ?? 30 * 60_000;
  return withFileLock(`${path}.flock`, o.lockWaitSeconds ?? 600, async () => {
    if (!existsSync(path)) {
      // Cloned beside and renamed: a reader never sees half a mirror, and a clone cut short by a
      // crash leaves only a temporary directory, removed here or by the next clone.
      const tmp = `${path}.tmp-${process.pid}`;
      rmSync(tmp, { recursive: true, force: true });
      try {
        await git(['clone', '--mirror', '--quiet', '--', url, tmp], { timeoutMs });
        await git(['config', 'gc.pruneExpire', 'never'], { cwd: tmp });
        await git(['config', 'gc.reflogExpireUnreachable', 'never'], { cwd: tmp });
        renameSync(tmp, path);
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
      return { tree, url, path, cloned: true };
    }
    const now = (
      await git(['config', '--get', 'remote.origin.url'], { cwd: path, allowFailure: true })
    ).stdout.trim();
    // Tree_<tree> changed since the mirror was made: follow it (the objects already here still help).
    if (now !== url) await git(['remote', 'set-url', 'origin', url], { cwd: path });
    await git(['fetch', '--prune', '--quiet', 'origin'], { cwd: path, timeoutMs });
    return { tree, url, path, cloned: false };
  });
}

/** The commit `refs/heads/<branch>` is at in a mirror, or undefined. */
export async function mirrorBranch(mirror: string, branch: string): Promise<string | undefined> {
  return revParse(mirror, `refs/heads/${branch}`);
}
