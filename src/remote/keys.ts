/**
 * SSH key pairs for the controller: ed25519, made by ssh2's own generator so no ssh-keygen is needed
 * on the controller. The private key is in OpenSSH format (what ssh2 and OpenSSH's `ssh -i` both read);
 * the public key is one authorized_keys line.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import ssh2 from 'ssh2';

export interface KeyPair {
  privateKey: string;
  publicKey: string;
}

export function generateKeyPair(comment: string): KeyPair {
  const k = ssh2.utils.generateKeyPairSync('ed25519', { comment });
  return { privateKey: k.private, publicKey: k.public };
}

/** Parses a private key and returns its authorized_keys line; throws naming `where` if unreadable. */
export function publicKeyOf(privateKey: string | Buffer, where: string): string {
  const parsed = ssh2.utils.parseKey(privateKey);
  if (parsed instanceof Error) throw new Error(`${where}: not a usable SSH private key: ${parsed.message}`);
  // parseKey returns an array only for PPK-style multi-key input, which we never write.
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key?.isPrivateKey()) throw new Error(`${where}: not an SSH private key`);
  const comment = key.comment ? ` ${key.comment}` : '';
  return `${key.type} ${key.getPublicSSH().toString('base64')}${comment}`;
}

/**
 * Reuses the pair at `path` (and `path.pub`) when present, otherwise makes one. A missing or stale
 * `.pub` is rewritten from the private key, so the two files always agree.
 */
export function ensureKeyPair(path: string, comment: string): KeyPair & { created: boolean } {
  if (existsSync(path)) {
    const privateKey = readFileSync(path, 'utf8');
    const publicKey = publicKeyOf(privateKey, path);
    const pubPath = `${path}.pub`;
    const onDisk = existsSync(pubPath) ? readFileSync(pubPath, 'utf8').trim() : '';
    if (onDisk.split(/\s+/).slice(0, 2).join(' ') !== publicKey.split(' ').slice(0, 2).join(' ')) {
      writeAtomic(pubPath, `${publicKey}\n`, 0o644);
    }
    return { privateKey, publicKey, created: false };
  }
  mkdirSync(dirname(path), { recursive: true });
  const pair = generateKeyPair(comment);
  writeAtomic(path, pair.privateKey, 0o600);
  writeAtomic(`${path}.pub`, `${pair.publicKey}\n`, 0o644);
  return { ...pair, created: true };
}

/** Write-then-rename, so a reader (or a crash) never sees half a key; mode is set before the rename. */
export function writeAtomic(path: string, data: string, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}
