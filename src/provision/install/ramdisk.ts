/**
 * Install method `ramdisk`: the host runs entirely from memory, a Debian kernel plus an initramfs the
 * controller builds from this machine's own busybox-static, dropbear and OpenSSH's sftp-server (with the
 * shared libraries they need, found with ldd) and the NIC driver modules of that kernel. Nothing is written to the
 * host's disk, so "installing" takes as long as a network boot.
 *
 * Two archives, loaded one after the other (the kernel unpacks concatenated archives in turn):
 * - the shared image, the same for every host, cached under `<Images>/ramdisk/` by the SHA-256 of its
 *   uncompressed content (a changed busybox, dropbear, kernel or script gives a new name);
 * - a per-host overlay made for each install: host.conf (name, MAC, progress URL), the lab's
 *   authorized key, and a dropbear host key made for this host by this install, whose public half is
 *   recorded as the host's `SshHostKey` so ssh refuses anything else.
 *
 * NIC: e1000. QEMU's e1000 boots by its iPXE ROM (ipxe-qemu), and Debian builds its driver as one
 * module with no dependencies; virtio-net would need six modules (virtio, virtio_ring, virtio_pci and
 * its two transports, net_failover, failover) for no gain at these data sizes.
 *
 * Tested with busybox-static 1.35, dropbear 2022.83 and Debian's 6.1 kernel under QEMU 7.2 (TCG).
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { execa } from 'execa';
import type { KernelImage } from '../images/kernel.js';
import { type CpioEntry, writeCpio } from './cpio.js';
import { indexModules, moduleClosure } from './kmod.js';
import {
  GROUP,
  hostConf,
  INIT,
  INITTAB,
  PASSWD,
  RCS,
  SHELLS,
  SHUTDOWN,
  UDHCPC_SCRIPT,
} from './ramdisk-files.js';

export const DEFAULT_BUSYBOX = '/bin/busybox';
export const DEFAULT_DROPBEAR = '/usr/sbin/dropbear';
/**
 * OpenSSH's SFTP server (Debian's openssh-sftp-server), at the path Debian's dropbear runs for the
 * `sftp` subsystem: testcases copy files to and from hosts over SFTP (ts-install-dist, ts-logs-capture).
 */
export const DEFAULT_SFTP_SERVER = '/usr/lib/openssh/sftp-server';
const DROPBEAR_SFTP_PATH = 'usr/lib/sftp-server';
export const DEFAULT_MODULES = ['e1000'];

export interface RamdiskInputs {
  kernel: KernelImage;
  /** Modules to load at boot (their dependencies are added). Default: e1000. */
  modules?: readonly string[];
  /** A statically linked busybox. Default /bin/busybox (Debian's busybox-static). */
  busybox?: string;
  /** Default /usr/sbin/dropbear (Debian's dropbear-bin). */
  dropbear?: string;
  /** Default /usr/lib/openssh/sftp-server (Debian's openssh-sftp-server). */
  sftpServer?: string;
}

export interface BuiltRamdisk {
  /** The gzipped archive. */
  path: string;
  /** SHA-256 of the uncompressed archive: the cache key. */
  sha256: string;
  cached: boolean;
  /** What went in, for logs. */
  modules: string[];
  bytes: number;
}

/** Shared libraries an executable loads, as `[path it is asked for, file on this machine]`. */
export async function sharedLibraries(exe: string): Promise<Array<[string, string]>> {
  const r = await execa('ldd', [exe], { reject: false });
  if (r.exitCode !== 0) {
    if (/not a dynamic executable|statically linked/.test(r.stdout + r.stderr)) return [];
    throw new Error(`ldd ${exe}: ${r.stderr.trim() || r.stdout.trim()}`);
  }
  const out: Array<[string, string]> = [];
  for (const line of r.stdout.split('\n')) {
    // `libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`.
    const arrow = /^\s*\S+\s+=>\s+(\/\S+)\s+\(/.exec(line);
    const direct = /^\s*(\/\S+)\s+\(/.exec(line);
    const path = arrow?.[1] ?? direct?.[1];
    if (line.includes('=> not found')) throw new Error(`ldd ${exe}: ${line.trim()}`);
    if (path) out.push([path, path]);
  }
  return out;
}

async function checkStatic(exe: string): Promise<void> {
  if ((await sharedLibraries(exe)).length > 0) {
    throw new Error(
      `${exe} is dynamically linked; the ramdisk needs a static busybox (Debian: busybox-static)`,
    );
  }
}

function readExecutable(path: string, pkg: string): Buffer {
  if (!existsSync(path)) throw new Error(`${path} is missing (Debian package ${pkg})`);
  return readFileSync(path);
}

/** The entries of the shared archive, in a fixed order. */
export async function ramdiskEntries(
  inputs: RamdiskInputs,
): Promise<{ entries: CpioEntry[]; modules: string[] }> {
  const busybox = inputs.busybox ?? DEFAULT_BUSYBOX;
  const dropbear = inputs.dropbear ?? DEFAULT_DROPBEAR;
  const sftpServer = inputs.sftpServer ?? DEFAULT_SFTP_SERVER;
  await checkStatic(busybox);
  const mods = moduleClosure(indexModules(inputs.kernel.modulesDir), inputs.modules ?? DEFAULT_MODULES);
  const entries: CpioEntry[] = [
    { type: 'chardev', path: 'dev/console', major: 5, minor: 1 },
    { type: 'chardev', path: 'dev/null', major: 1, minor: 3, mode: 0o666 },
    { type: 'dir', path: 'proc' },
    { type: 'dir', path: 'sys' },
    { type: 'dir', path: 'run' },
    { type: 'dir', path: 'tmp', mode: 0o1777 },
    { type: 'dir', path: 'root', mode: 0o700 },
    { type: 'dir', path: 'sbin' },
    { type: 'dir', path: 'usr/bin' },
    { type: 'dir', path: 'usr/sbin' },
    { type: 'dir', path: 'usr/lib' },
    { type: 'file', path: 'bin/busybox', data: readExecutable(busybox, 'busybox-static'), mode: 0o755 },
    { type: 'file', path: 'init', data: INIT, mode: 0o755 },
    { type: 'file', path: 'etc/inittab', data: INITTAB },
    { type: 'file', path: 'etc/passwd', data: PASSWD },
    { type: 'file', path: 'etc/group', data: GROUP },
    { type: 'file', path: 'etc/shells', data: SHELLS },
    { type: 'file', path: 'etc/osstest/rcS', data: RCS, mode: 0o755 },
    { type: 'file', path: 'etc/osstest/shutdown', data: SHUTDOWN, mode: 0o755 },
    { type: 'file', path: 'etc/osstest/udhcpc.script', data: UDHCPC_SCRIPT, mode: 0o755 },
    {
      type: 'file',
      path: 'etc/osstest/modules',
      data: mods.map((m) => `${m.name}.ko\n`).join(''),
    },
    ...mods.map(
      (m): CpioEntry => ({ type: 'file', path: `lib/modules/${m.name}.ko`, data: readFileSync(m.path) }),
    ),
    { type: 'file', path: 'usr/sbin/dropbear', data: readExecutable(dropbear, 'dropbear-bin'), mode: 0o755 },
    {
      type: 'file',
      path: DROPBEAR_SFTP_PATH,
      data: readExecutable(sftpServer, 'openssh-sftp-server'),
      mode: 0o755,
    },
  ];
  const seen = new Set(entries.map((e) => e.path));
  const libs = [...(await sharedLibraries(dropbear)), ...(await sharedLibraries(sftpServer))];
  for (const [asked, file] of libs) {
    const p = asked.replace(/^\/+/, '');
    if (seen.has(p)) continue;
    seen.add(p);
    // The file's content at the path the loader asks for (symlinks such as /lib64/ld-linux… resolved).
    entries.push({ type: 'file', path: p, data: readFileSync(file), mode: 0o755 });
  }
  return { entries, modules: mods.map((m) => m.name) };
}

/**
 * The shared image for these inputs: built and gzipped unless an image with the same content is
 * already under `<imagesDir>/ramdisk/`.
 */
export async function buildRamdisk(imagesDir: string, inputs: RamdiskInputs): Promise<BuiltRamdisk> {
  const { entries, modules } = await ramdiskEntries(inputs);
  const cpio = writeCpio(entries);
  const sha256 = createHash('sha256').update(cpio).digest('hex');
  const dir = join(imagesDir, 'ramdisk');
  const path = join(dir, `base-${sha256.slice(0, 20)}.cpio.gz`);
  if (existsSync(path)) return { path, sha256, cached: true, modules, bytes: cpio.length };
  mkdirSync(dir, { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, gzipSync(cpio, { level: 6 }));
  chmodSync(tmp, 0o644);
  renameSync(tmp, path);
  return { path, sha256, cached: false, modules, bytes: cpio.length };
}

export interface HostKey {
  /** dropbear's own key format, as dropbear -r reads it. */
  privateKey: Buffer;
  /** `ssh-ed25519 AAAA…` (no comment): what the host database pins. */
  publicKey: string;
}

/** A fresh ed25519 host key for `host`, made with dropbearkey (in dropbear's format). */
export async function makeDropbearHostKey(host: string, tmpDir: string): Promise<HostKey> {
  mkdirSync(tmpDir, { recursive: true });
  const path = join(tmpDir, `hostkey-${process.pid}-${Date.now()}`);
  try {
    const gen = await execa('dropbearkey', ['-t', 'ed25519', '-f', path], { reject: false });
    if (gen.exitCode !== 0) throw new Error(`dropbearkey for ${host}: ${gen.stderr.trim()}`);
    const pub = await execa('dropbearkey', ['-y', '-f', path], { reject: false });
    const line = pub.stdout.split('\n').find((l) => l.startsWith('ssh-ed25519 '));
    if (!line) throw new Error(`dropbearkey -y for ${host}: no public key in its output`);
    return { privateKey: readFileSync(path), publicKey: line.split(/\s+/).slice(0, 2).join(' ') };
  } finally {
    rmSync(path, { force: true });
  }
}

/** The per-host overlay archive (gzipped): host.conf, authorized keys, the host key. */
export function hostOverlay(o: {
  host: string;
  mac: string;
  progressUrl: string;
  authorizedKeys: string;
  hostKey: HostKey;
}): Buffer {
  const keys = o.authorizedKeys.endsWith('\n') ? o.authorizedKeys : `${o.authorizedKeys}\n`;
  return gzipSync(
    writeCpio([
      { type: 'file', path: 'etc/osstest/host.conf', data: hostConf(o) },
      { type: 'dir', path: 'etc/dropbear', mode: 0o700 },
      {
        type: 'file',
        path: 'etc/dropbear/dropbear_ed25519_host_key',
        data: o.hostKey.privateKey,
        mode: 0o600,
      },
      { type: 'dir', path: 'root', mode: 0o700 },
      { type: 'dir', path: 'root/.ssh', mode: 0o700 },
      { type: 'file', path: 'root/.ssh/authorized_keys', data: keys, mode: 0o600 },
    ]),
  );
}
