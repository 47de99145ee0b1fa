/**
 * The kernel the lab's hosts boot, taken from Debian's own package: `osstest images update` fetches
 * `linux-image-<arch>` with apt (the machine's configured mirror), checks the downloaded file against
 * the SHA256 of apt's signed index, and extracts only what the ramdisk needs: vmlinuz, the config, and
 * the network-driver modules (a virtual host needs a NIC driver, not the 400 MB of other modules), and
 * the disk and ext4 modules the `image` install method needs to write a disk from the ramdisk.
 *
 * Layout: `<Images>/kernel-<arch>/` holding `manifest.json`, `vmlinuz`, `config`, and
 * `lib/modules/<release>/…`. An update is extracted next to it and swapped in by rename.
 */
import { createHash } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
} from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { writeAtomic } from '../../remote/keys.js';

export interface KernelImage {
  dir: string;
  arch: string;
  /** `uname -r` of the kernel, e.g. `6.1.0-56-amd64`. */
  release: string;
  vmlinuz: string;
  /** `lib/modules/<release>` as extracted. */
  modulesDir: string;
  /** The Debian package it came from and its version. */
  package: string;
  version: string;
  /** SHA-256 of the .deb (as apt's index lists it) and of vmlinuz. */
  debSha256: string;
  vmlinuzSha256: string;
  fetchedAt: string;
}

interface Manifest extends Omit<KernelImage, 'dir' | 'vmlinuz' | 'modulesDir'> {
  /** Which MODULE_PATTERNS it was extracted with (absent: the first set). */
  extractSet?: number;
}

/** What the ramdisk may need from the modules tree: NIC drivers and what they depend on. */
const MODULE_PATTERNS = [
  'lib/modules/*/kernel/drivers/net/ethernet/intel/*',
  'lib/modules/*/kernel/drivers/net/ethernet/realtek/*',
  'lib/modules/*/kernel/drivers/net/virtio_net.ko',
  'lib/modules/*/kernel/drivers/net/net_failover.ko',
  'lib/modules/*/kernel/drivers/net/mii.ko',
  'lib/modules/*/kernel/drivers/virtio/*',
  'lib/modules/*/kernel/net/core/*',
  'lib/modules/*/modules.order',
  // The `image` install method writes the host's disk from the ramdisk: a virtio disk, ext4.
  'lib/modules/*/kernel/drivers/block/virtio_blk.ko',
  'lib/modules/*/kernel/fs/ext4/*',
  'lib/modules/*/kernel/fs/jbd2/*',
  'lib/modules/*/kernel/fs/mbcache.ko',
  'lib/modules/*/kernel/lib/crc16.ko',
  'lib/modules/*/kernel/crypto/crc32c_generic.ko',
];

/** Bumped whenever MODULE_PATTERNS changes, so `images update` extracts an existing kernel again. */
const EXTRACT_SET = 2;

export function kernelDir(imagesDir: string, arch: string): string {
  return join(imagesDir, `kernel-${arch}`);
}

/** The kernel `images update` fetched; a clear error saying how to get it when there is none. */
export function findKernelImage(imagesDir: string, arch = 'amd64'): KernelImage {
  const dir = kernelDir(imagesDir, arch);
  const mf = join(dir, 'manifest.json');
  if (!existsSync(mf)) {
    throw new Error(`no kernel for ${arch} in ${imagesDir} (run \`osstest images update\` to fetch one)`);
  }
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(mf, 'utf8')) as Manifest;
  } catch (err) {
    throw new Error(`${mf}: unreadable (${(err as Error).message}); run \`osstest images update\` again`);
  }
  return {
    ...m,
    dir,
    vmlinuz: join(dir, 'vmlinuz'),
    modulesDir: join(dir, 'lib', 'modules', m.release),
  };
}

export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (c) => h.update(c))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

/** `Field: value` lines of one `apt-cache show` record. */
function parseRecord(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const r = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line);
    if (r) m.set(r[1]!, r[2]!);
  }
  return m;
}

export async function aptShow(pkg: string): Promise<Map<string, string>> {
  const r = await execa('apt-cache', ['show', '--no-all-versions', pkg], { reject: false });
  if (r.exitCode !== 0 || r.stdout.trim() === '') {
    throw new Error(
      `apt-cache show ${pkg}: ${r.stderr.trim() || 'no such package'} (is apt's index up to date?)`,
    );
  }
  return parseRecord(r.stdout.split('\n\n')[0]!);
}

export type UpdateProgress = (line: string) => void;

/**
 * Fetches the newest `linux-image-<arch>` apt knows, verifies it, extracts it into Images and returns
 * it. Does nothing but report when the installed manifest already has that package version.
 */
export async function updateKernelImage(opts: {
  imagesDir: string;
  arch?: string;
  /** Default `linux-image-<arch>` (Debian's metapackage, resolved to the versioned image package). */
  package?: string;
  force?: boolean;
  progress?: UpdateProgress;
}): Promise<KernelImage & { updated: boolean }> {
  const arch = opts.arch ?? 'amd64';
  const say = opts.progress ?? (() => {});
  const meta = opts.package ?? `linux-image-${arch}`;
  const started = Date.now();
  say(`resolving ${meta}`);
  let rec = await aptShow(meta);
  // The metapackage has no kernel of its own: follow its dependency to the versioned image package.
  const dep = /\b(linux-image-[0-9][^\s,(|]*)/.exec(rec.get('Depends') ?? '');
  if (!rec.get('Package')?.match(/^linux-image-\d/) && dep) rec = await aptShow(dep[1]!);
  const pkg = rec.get('Package');
  const version = rec.get('Version');
  const expected = rec.get('SHA256');
  if (!pkg || !version || !expected) throw new Error(`apt-cache show ${meta}: no Package/Version/SHA256`);
  say(`${meta} is ${pkg} ${version} (${((Number(rec.get('Size')) || 0) / 1e6).toFixed(1)} MB)`);

  const dir = kernelDir(opts.imagesDir, arch);
  if (!opts.force && existsSync(join(dir, 'manifest.json'))) {
    const have = findKernelImage(opts.imagesDir, arch);
    const set = (JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest).extractSet ?? 1;
    if (set !== EXTRACT_SET) say(`extracting again: ${dir} lacks modules this version of osstest uses`);
    else if (have.package === pkg && have.version === version && existsSync(have.vmlinuz)) {
      say(`already have ${pkg} ${version} (sha256 ${have.debSha256.slice(0, 16)}…)`);
      return { ...have, updated: false };
    }
  }

  mkdirSync(opts.imagesDir, { recursive: true });
  const work = join(opts.imagesDir, `.kernel-${arch}.tmp-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, 'x'), { recursive: true });
  try {
    say(`downloading ${pkg}=${version} with apt-get download`);
    const sub = execa('apt-get', ['download', `${pkg}=${version}`], { cwd: work, reject: false, all: true });
    // apt's own lines ("Get:1 … [70.6 MB]", "Fetched 70.6 MB in 2s (35 MB/s)") are the download's progress.
    sub.stdout?.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n')) if (line.trim() !== '') say(`apt: ${line.trim()}`);
    });
    const dl = await sub;
    if (dl.exitCode !== 0) throw new Error(`apt-get download ${pkg}=${version} failed:\n${dl.all?.trim()}`);
    const deb = readdirSync(work).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download ${pkg}=${version} left no .deb in ${work}`);
    const debPath = join(work, deb);
    const got = await sha256File(debPath);
    if (got !== expected) throw new Error(`${deb}: sha256 ${got}, but apt's index says ${expected}`);
    say(`sha256 ${got} matches apt's index`);

    say('extracting vmlinuz, config and network driver modules');
    const boot = ['boot/vmlinuz-*', 'boot/config-*'];
    const ex = await execa(
      'sh',
      [
        '-c',
        'deb=$1 dest=$2; shift 2; dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dest" --wildcards "$@"',
        'sh',
        debPath,
        join(work, 'x'),
        ...[...boot, ...MODULE_PATTERNS].map((p) => `./${p}`),
      ],
      { reject: false },
    );
    if (ex.exitCode !== 0) throw new Error(`extracting ${deb}: ${ex.stderr.trim()}`);
    const bootFiles = readdirSync(join(work, 'x', 'boot'));
    const vmlinuz = bootFiles.find((f) => f.startsWith('vmlinuz-'));
    if (!vmlinuz) throw new Error(`${deb} has no boot/vmlinuz-*`);
    const release = vmlinuz.slice('vmlinuz-'.length);
    const out = join(work, 'image');
    mkdirSync(join(out, 'lib'), { recursive: true });
    renameSync(join(work, 'x', 'boot', vmlinuz), join(out, 'vmlinuz'));
    const config = bootFiles.find((f) => f === `config-${release}`);
    if (config) renameSync(join(work, 'x', 'boot', config), join(out, 'config'));
    renameSync(join(work, 'x', 'lib', 'modules'), join(out, 'lib', 'modules'));
    const manifest: Manifest = {
      arch,
      release,
      package: pkg,
      version,
      debSha256: got,
      vmlinuzSha256: await sha256File(join(out, 'vmlinuz')),
      fetchedAt: new Date().toISOString(),
      extractSet: EXTRACT_SET,
    };
    writeAtomic(join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`, 0o644);
    // Swap in: the old tree goes aside first so a reader never sees a half-written one.
    const old = `${dir}.old-${process.pid}`;
    if (existsSync(dir)) renameSync(dir, old);
    renameSync(out, dir);
    rmSync(old, { recursive: true, force: true });
    say(`kernel ${release} ready in ${dir} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    return { ...findKernelImage(opts.imagesDir, arch), updated: true };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
