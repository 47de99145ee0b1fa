/**
 * Files the install methods put where a host fetches them (webspace, TFTP root) and the host keys they
 * give an installed system. Every write is atomic: a host that fetches while we write gets the old
 * file or the new one, never half of one.
 */
import { appendFileSync, copyFileSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';

/** Links `src` to `dst` (same filesystem) or copies it; atomic either way. */
export function publish(src: string, dst: string): void {
  const tmp = `${dst}.tmp-${process.pid}`;
  rmSync(tmp, { force: true });
  try {
    linkSync(src, tmp);
  } catch {
    copyFileSync(src, tmp);
  }
  renameSync(tmp, dst);
}

export function writeFileAtomic(path: string, data: Buffer | string, mode = 0o644): void {
  const tmp = `${path}.tmp-${process.pid}`;
  rmSync(tmp, { force: true });
  appendFileSync(tmp, data, { mode });
  renameSync(tmp, path);
}

/**
 * A fresh OpenSSH ed25519 host key (ssh-keygen) for an installed system's sshd; `dir` only holds it
 * while ssh-keygen writes it. The public key comes back as `type base64`, the form hosts are pinned by.
 */
export async function makeOpensshHostKey(
  host: string,
  dir: string,
): Promise<{ privateKey: string; publicKey: string }> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, `hostkey-${process.pid}-${Date.now()}`);
  try {
    const r = await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `root@${host}`, '-f', path], {
      reject: false,
    });
    if (r.exitCode !== 0) throw new Error(`ssh-keygen for ${host}: ${r.stderr.trim()}`);
    const pub = readFileSync(`${path}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
    return { privateKey: readFileSync(path, 'utf8'), publicKey: pub };
  } finally {
    rmSync(path, { force: true });
    rmSync(`${path}.pub`, { force: true });
  }
}
