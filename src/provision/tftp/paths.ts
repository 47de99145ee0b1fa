/**
 * Confinement: turning a requested filename into an open regular file inside the TFTP root, or a
 * refusal. PXE clients send names relative to the root, sometimes with a leading `/` that also means
 * the root (pxelinux does, after a `path` prefix), so both are accepted. A `..` that would climb above
 * the root is refused outright; one that stays inside is resolved. Then the real path (symlinks
 * followed) must still lie inside the root's real path, so a symlink in the root that leads outside
 * is refused and one that stays inside works. What is opened is checked once more through
 * /proc/self/fd, so swapping a directory for a symlink between the check and the open gains nothing.
 */
import { constants, type promises as fsp } from 'node:fs';
import { open, readlink, realpath } from 'node:fs/promises';
import { sep } from 'node:path';
import { ErrorCode } from './packet.js';

export type Resolved =
  | { ok: true; path: string; handle: fsp.FileHandle; size: number }
  | {
      ok: false;
      code: typeof ErrorCode.FileNotFound | typeof ErrorCode.AccessViolation;
      /** `refused` = denied by policy (escape, not a regular file); counted apart from plain misses. */
      refused: boolean;
      message: string;
    };

function inside(root: string, p: string): boolean {
  if (root === sep) return p.startsWith(sep);
  return p === root || p.startsWith(root + sep);
}

/** Splits a requested name into segments relative to the root, or undefined when `..` escapes it. */
export function normaliseRequestPath(name: string): string[] | undefined {
  const out: string[] = [];
  for (const seg of name.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length === 0) return undefined;
      out.pop();
    } else out.push(seg);
  }
  return out;
}

function errCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e
    ? String((e as { code: unknown }).code)
    : undefined;
}

const notFound = {
  ok: false,
  code: ErrorCode.FileNotFound,
  refused: false,
  message: 'File not found',
} as const;
function refusal(message: string): Resolved {
  return { ok: false, code: ErrorCode.AccessViolation, refused: true, message };
}

/** `rootReal` must already be a real path (no symlinks), as `realpath(root)` gives. */
export async function openInsideRoot(rootReal: string, name: string): Promise<Resolved> {
  const segs = normaliseRequestPath(name);
  if (segs === undefined) return refusal('Path leads outside the TFTP root');
  if (segs.length === 0) return refusal('Not a regular file');
  const candidate = (rootReal === sep ? '' : rootReal) + sep + segs.join(sep);
  let real: string;
  try {
    real = await realpath(candidate);
  } catch (e) {
    const code = errCode(e);
    if (code === 'ENOENT' || code === 'ENOTDIR') return notFound;
    if (code === 'ELOOP') return refusal('Too many symbolic links');
    if (code === 'EACCES') return refusal('Permission denied');
    return { ok: false, code: ErrorCode.FileNotFound, refused: false, message: `Cannot resolve: ${code}` };
  }
  if (!inside(rootReal, real)) return refusal('Path leads outside the TFTP root');
  let handle: fsp.FileHandle;
  try {
    // O_NONBLOCK so a FIFO in the root cannot hang the open; O_NOFOLLOW since `real` has no links left.
    handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = errCode(e);
    if (code === 'ENOENT') return notFound;
    return refusal(code === 'EACCES' ? 'Permission denied' : `Cannot open: ${code}`);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) {
      await handle.close();
      return refusal('Not a regular file');
    }
    let opened: string | undefined;
    try {
      opened = await readlink(`/proc/self/fd/${handle.fd}`);
    } catch {
      opened = undefined; // no /proc: the realpath check above stands alone
    }
    if (opened !== undefined && !inside(rootReal, opened)) {
      await handle.close();
      return refusal('Path leads outside the TFTP root');
    }
    return { ok: true, path: real, handle, size: st.size };
  } catch (e) {
    await handle.close().catch(() => {});
    return refusal(`Cannot stat: ${errCode(e) ?? String(e)}`);
  }
}
