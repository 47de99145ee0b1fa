/**
 * A writer of cpio archives in the "newc" format (the one the Linux kernel unpacks as an initramfs,
 * Documentation/driver-api/early-userspace/buffer-format.rst): a 110-byte ASCII header per entry, the
 * name, then the data, each padded to 4 bytes, ending with a `TRAILER!!!` entry.
 *
 * Written here rather than taken from npm: the packages there are unmaintained stream parsers, and what
 * we need is small and must be reproducible (the same inputs give the same bytes, so an image can be
 * cached by content hash): every entry has uid/gid 0, mtime 0 and an inode number from its position.
 * Checked against busybox's `cpio -t` and the kernel itself (test/unit/ramdisk.test.ts, the e2e test).
 */

export type CpioEntry =
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'file'; path: string; data: Buffer | string; mode?: number }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'chardev'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`cpio: field value ${n} out of range`);
  return n.toString(16).padStart(8, '0');
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/** Archive paths are relative (`bin/busybox`), without `.`/`..` components. */
export function normaliseArchivePath(path: string): string {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.some((p) => p === '..')) {
    throw new Error(`cpio: bad archive path ${JSON.stringify(path)}`);
  }
  return parts.join('/');
}

function header(
  ino: number,
  mode: number,
  size: number,
  nameSize: number,
  rdev: { major: number; minor: number } = { major: 0, minor: 0 },
): string {
  return [
    '070701',
    hex8(ino),
    hex8(mode),
    hex8(0), // uid
    hex8(0), // gid
    hex8(1), // nlink
    hex8(0), // mtime
    hex8(size),
    hex8(0), // dev major
    hex8(0), // dev minor
    hex8(rdev.major),
    hex8(rdev.minor),
    hex8(nameSize),
    hex8(0), // check
  ].join('');
}

/**
 * The archive for `entries`. Parent directories that are not listed are added (mode 755) before
 * their first child; a path given twice is an error (the kernel would silently keep the last).
 */
export function writeCpio(entries: readonly CpioEntry[]): Buffer {
  const chunks: Buffer[] = [];
  const seen = new Set<string>();
  let ino = 1;
  const put = (name: string, mode: number, data: Buffer, rdev?: { major: number; minor: number }) => {
    const nameBuf = Buffer.from(`${name}\0`, 'utf8');
    const head = Buffer.from(header(ino++, mode, data.length, nameBuf.length, rdev), 'ascii');
    chunks.push(head, nameBuf, Buffer.alloc(pad4(head.length + nameBuf.length)));
    if (data.length > 0) chunks.push(data, Buffer.alloc(pad4(data.length)));
  };
  const ensureParents = (path: string) => {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (!seen.has(dir)) {
        seen.add(dir);
        put(dir, S_IFDIR | 0o755, Buffer.alloc(0));
      }
    }
  };
  for (const e of entries) {
    const path = normaliseArchivePath(e.path);
    if (seen.has(path)) throw new Error(`cpio: ${path} is listed twice`);
    ensureParents(path);
    seen.add(path);
    switch (e.type) {
      case 'dir':
        put(path, S_IFDIR | (e.mode ?? 0o755), Buffer.alloc(0));
        break;
      case 'file':
        put(path, S_IFREG | (e.mode ?? 0o644), Buffer.isBuffer(e.data) ? e.data : Buffer.from(e.data));
        break;
      case 'symlink':
        put(path, S_IFLNK | 0o777, Buffer.from(e.target));
        break;
      case 'chardev':
        put(path, S_IFCHR | (e.mode ?? 0o600), Buffer.alloc(0), { major: e.major, minor: e.minor });
        break;
    }
  }
  put('TRAILER!!!', 0, Buffer.alloc(0));
  return Buffer.concat(chunks);
}
