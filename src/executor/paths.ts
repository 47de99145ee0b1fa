/** Where the harness itself lives (the repository or installed package), found from this file. */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'testcases'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the osstest installation (package.json + testcases/)');
    dir = up;
  }
}

export const harnessRoot = findRoot();

/** Compiled TypeScript lands under dist/ with the same layout as the source tree. */
export const distRoot = join(harnessRoot, 'dist');

let cachedRevision: string | undefined;

/**
 * The harness revision recorded against every flight it touches: the git commit of the checkout,
 * with `+` when the working tree has changes (so results from an edited harness are told apart).
 */
export function harnessRevision(): string {
  if (cachedRevision !== undefined) return cachedRevision;
  try {
    const head = execFileSync('git', ['-C', harnessRoot, 'rev-parse', 'HEAD'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    const dirty = execFileSync('git', ['-C', harnessRoot, 'status', '--porcelain', '--untracked-files=no'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    cachedRevision = dirty === '' ? head : `${head}+`;
  } catch {
    cachedRevision = 'unknown';
  }
  return cachedRevision;
}
