/**
 * Where bisection reads a tree's history. A tree named by a local directory (the push gate names
 * its mirrors so) is read where it is. A URL is read from the gate's mirror of the tree,
 * `<Repos>/<tree>.git` (src/gate/mirror.ts): used as it is when it already holds the revisions
 * wanted, fetched (under the mirror's lock) when it lacks one, cloned once when missing — never
 * re-cloned per step.
 */
import { existsSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { execa } from 'execa';
import type { Config } from '../config/config.js';
import { mirrorPath, syncMirror } from '../gate/mirror.js';
import { BisectionNotPossible } from './graph.js';

/** A plain path naming a directory (not a URL, not `host:path`). */
function localDir(url: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) || /^[^/]+@[^/]+:/.test(url)) return undefined;
  const p = isAbsolute(url) ? url : resolve(url);
  try {
    return statSync(p).isDirectory() ? p : undefined;
  } catch {
    return undefined;
  }
}

async function hasCommits(repo: string, revs: readonly string[]): Promise<boolean> {
  for (const r of revs) {
    if (r.startsWith('-')) return false;
    const x = await execa('git', ['-C', repo, 'cat-file', '-e', `${r}^{commit}`], { reject: false });
    if (x.exitCode !== 0) return false;
  }
  return true;
}

export async function treeRepo(
  tree: string,
  url: string,
  revs: readonly string[],
  config: Config,
): Promise<string> {
  const local = localDir(url);
  if (local !== undefined) return local;
  try {
    const reposDir = config.path('Repos');
    const mirror = mirrorPath(reposDir, tree);
    if (existsSync(mirror) && (await hasCommits(mirror, revs))) return mirror;
    return (await syncMirror(tree, url, { reposDir })).path;
  } catch (e) {
    throw new BisectionNotPossible(`tree ${tree} (${url}) cannot be read: ${(e as Error).message}`);
  }
}

/** Every tree's local repository, in parallel. */
export async function treeRepos(
  trees: Readonly<Record<string, string>>,
  revs: Readonly<Record<string, readonly string[]>>,
  config: Config,
): Promise<Record<string, string>> {
  const entries = await Promise.all(
    Object.entries(trees).map(
      async ([t, url]) => [t, await treeRepo(t, url, revs[t] ?? [], config)] as const,
    ),
  );
  return Object.fromEntries(entries);
}
