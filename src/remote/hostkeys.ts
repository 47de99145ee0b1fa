/**
 * Host key pinning. A store maps a host's name to the public key it presented the first time we
 * connected (trust on first use); a later connection that presents another key is refused.
 *
 * Keys are kept as OpenSSH public-key text, `"ssh-ed25519 AAAA…"` (type and base64 blob, no comment):
 * the same text an authorized_keys or known_hosts line carries, so an operator can compare it with
 * `/etc/ssh/ssh_host_*_key.pub` on the host, and `fingerprint()` turns it into what `ssh-keygen -l` shows.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeAtomic } from './keys.js';

export interface HostKeyStore {
  get(host: string): Promise<string | undefined>;
  record(host: string, key: string): Promise<void>;
}

/** The wire-format key blob inside an OpenSSH public-key text (`type base64 [comment]`, or bare base64). */
export function keyBlob(key: string): Buffer {
  const fields = key.trim().split(/\s+/);
  const b64 = fields.length >= 2 ? fields[1]! : fields[0]!;
  if (!b64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64))
    throw new Error(`not an SSH public key: ${JSON.stringify(key)}`);
  return Buffer.from(b64, 'base64');
}

/** `"ssh-ed25519 AAAA…"` from a wire-format key blob (the blob starts with its own type name). */
export function keyText(blob: Buffer): string {
  const len = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  if (len <= 0 || 4 + len > blob.length) throw new Error('malformed SSH public key blob');
  return `${blob.subarray(4, 4 + len).toString('latin1')} ${blob.toString('base64')}`;
}

/** `"SHA256:…"` as `ssh-keygen -l` prints it: unpadded base64 of the SHA-256 of the key blob. */
export function fingerprint(key: Buffer | string): string {
  const blob = typeof key === 'string' ? keyBlob(key) : key;
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** Compares two keys by their blobs, so comments and spacing do not matter. */
export function sameKey(a: string, b: string): boolean {
  return keyBlob(a).equals(keyBlob(b));
}

/**
 * A known-hosts-like file: one `HOST TYPE BASE64` line per host. Each record rereads the file and
 * replaces it by rename, so readers never see a partial file and concurrent recorders of different
 * hosts lose nothing but in a narrow window (the lead's DB-backed store is the one for many writers).
 */
export class FileHostKeyStore implements HostKeyStore {
  constructor(readonly path: string) {}

  private load(): Map<string, string> {
    const m = new Map<string, string>();
    if (!existsSync(this.path)) return m;
    const lines = readFileSync(this.path, 'utf8').split('\n');
    lines.forEach((line, i) => {
      const t = line.trim();
      if (!t || t.startsWith('#')) return;
      const f = t.split(/\s+/);
      if (f.length < 3)
        throw new Error(`${this.path}:${i + 1}: expected "HOST TYPE KEY", got ${JSON.stringify(t)}`);
      m.set(f[0]!, `${f[1]} ${f[2]}`);
    });
    return m;
  }

  async get(host: string): Promise<string | undefined> {
    return this.load().get(host);
  }

  async record(host: string, key: string): Promise<void> {
    if (!host || /\s/.test(host))
      throw new Error(`host key store ${this.path}: bad host name ${JSON.stringify(host)}`);
    const text = keyText(keyBlob(key));
    const m = this.load();
    m.set(host, text);
    mkdirSync(dirname(this.path), { recursive: true });
    const body = [...m].map(([h, k]) => `${h} ${k}\n`).join('');
    writeAtomic(this.path, body, 0o644);
  }
}
