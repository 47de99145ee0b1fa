/** What a job left in its log and stash directories, for the job page's file lists. */
import { lstat, readdir } from 'node:fs/promises';
import { join, posix, resolve } from 'node:path';
import type { FileEntry, JobFiles } from './flight-view.js';
import { pathSegment } from './links.js';

/** Enough for any real job (OSSTest captures a few dozen files); a runaway directory is cut here. */
const MAX_FILES = 2000;

async function listDir(root: string, rel: string, depth: number, out: FileEntry[]): Promise<void> {
  let names: string[];
  try {
    names = await readdir(join(root, rel));
  } catch {
    return;
  }
  for (const name of names.sort()) {
    if (out.length >= MAX_FILES) return;
    const p = posix.join(rel, name);
    const st = await lstat(join(root, p)).catch(() => undefined);
    // Symlinks are left out: the log server refuses those that lead elsewhere, and a listing should
    // not advertise what cannot be fetched.
    if (st === undefined || st.isSymbolicLink()) continue;
    if (st.isFile()) out.push({ path: p, name: p.split('/').slice(2).join('/'), size: st.size });
    else if (st.isDirectory() && depth > 0 && name !== 'previous-runs')
      await listDir(root, p, depth - 1, out);
  }
}

/**
 * Files under `<Logs>/<flight>/<job>/` and `<Stash>/<flight>/<job>/` (one level of subdirectories),
 * with paths relative to Logs and Stash. When both settings name one directory the files are listed
 * once, as logs.
 */
export async function listJobFiles(
  logsDir: string,
  stashDir: string,
  flight: string,
  job: string,
): Promise<JobFiles> {
  const rel = posix.join(pathSegment(flight), pathSegment(job));
  const logs: FileEntry[] = [];
  await listDir(logsDir, rel, 1, logs);
  const stash: FileEntry[] = [];
  if (resolve(stashDir) !== resolve(logsDir)) await listDir(stashDir, rel, 1, stash);
  return { logs, stash };
}
