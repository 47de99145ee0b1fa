/**
 * Files served from a directory (Logs, Stash, Results) and only from it: a request path with `..`,
 * an absolute path, an encoded `/` or NUL, or a symlink that leads outside the directory is refused.
 * Symlinks that stay inside are followed (a log directory may link one log to another).
 */
import { constants } from 'node:fs';
import { type FileHandle, open, realpath } from 'node:fs/promises';
import { isAbsolute, join, relative, sep } from 'node:path';

export class ConfinementError extends Error {
  override name = 'ConfinementError';
  constructor(
    message: string,
    /** HTTP status to answer with: 400 for a malformed path, 403 for one leading out, 404 for none. */
    readonly status: 400 | 403 | 404,
  ) {
    super(message);
  }
}

/**
 * Splits a URL path (still percent-encoded, as express gives `req.path` under a mount point) into
 * decoded components, refusing any that could leave the directory.
 */
export function urlPathComponents(urlPath: string): string[] {
  const raw = urlPath.split('/').filter((p) => p !== '');
  return raw.map((p) => {
    let d: string;
    try {
      d = decodeURIComponent(p);
    } catch {
      throw new ConfinementError(`bad percent-encoding in ${JSON.stringify(p)}`, 400);
    }
    if (d === '..' || d === '.' || d.includes('/') || d.includes('\\') || d.includes('\0')) {
      throw new ConfinementError(`path component ${JSON.stringify(d)} is not allowed`, 400);
    }
    return d;
  });
}

function inside(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/**
 * Opens `rel` (a relative path, components already checked, or raw: it is checked again) under
 * `root` for reading, after resolving symlinks; refuses what resolves outside `root` or is not a
 * regular file. The caller closes the handle.
 */
export async function openConfined(
  root: string,
  rel: string | readonly string[],
): Promise<{ handle: FileHandle; path: string; size: number; mtimeMs: number }> {
  const parts = typeof rel === 'string' ? relativeComponents(rel) : [...rel];
  if (parts.length === 0) throw new ConfinementError('no file named', 404);
  let realRoot: string;
  try {
    realRoot = await realpath(root);
  } catch {
    throw new ConfinementError('the directory does not exist', 404);
  }
  let real: string;
  try {
    real = await realpath(join(realRoot, ...parts));
  } catch {
    throw new ConfinementError('no such file', 404);
  }
  if (!inside(realRoot, real)) throw new ConfinementError('the path leads outside the directory', 403);
  let handle: FileHandle;
  try {
    // NOFOLLOW: the path was resolved just now; a symlink put in its place since is refused.
    handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    throw new ConfinementError('no such file', 404);
  }
  const st = await handle.stat();
  if (!st.isFile()) {
    await handle.close();
    throw new ConfinementError('not a file', 404);
  }
  return { handle, path: real, size: st.size, mtimeMs: st.mtimeMs };
}

/** A relative file path (a step's logPath) as checked components. */
export function relativeComponents(rel: string): string[] {
  if (isAbsolute(rel) || rel.startsWith('/') || rel.includes('\0')) {
    throw new ConfinementError(`${JSON.stringify(rel)} is not a relative path`, 400);
  }
  const parts = rel.split(/[/\\]/).filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new ConfinementError(`${JSON.stringify(rel)} holds '..'`, 400);
  return parts;
}
