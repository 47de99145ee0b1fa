/**
 * The root filesystem the `image` install method writes to a host's disk: a Debian system made by
 * `debootstrap --variant=minbase` on the controller, with a small package list (a kernel, systemd,
 * udev, OpenSSH), prepared once for every host and cached under `<Images>/rootfs/` as a gzipped tarball
 * keyed by suite, architecture and package list (plus the version of the preparation below), with a
 * manifest holding its SHA-256, which is checked each time the tarball is used.
 *
 * Prepared inside the tree (the same for every host; the per-host part is written by the install):
 * - no SSH host keys (each install makes and pins one), root's login by key only (Debian's default);
 * - systemd-networkd asking DHCP on every Ethernet interface;
 * - the boot loader's configuration, /boot/extlinux/extlinux.conf, booting the kernel and initramfs of
 *   the tree with `root=LABEL=osstest-root` (the install labels the filesystem so), and /etc/fstab;
 * - `osstest-boot.service`: once the network and sshd are up it reports `first-boot` (or `boot` on later
 *   boots) to the controller's webspace, then writes the boot-complete marker /run/osstest-boot-complete.
 *
 * Debootstrap downloads from the mirror apt uses on this machine (ImagesRootfsMirror overrides); needs root.
 * Measured on this machine: see BENCHMARKS.md / the closing note of the change that added it.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { writeAtomic } from '../../remote/keys.js';
import { sha256File, type UpdateProgress } from './kernel.js';

export const DEFAULT_ROOTFS_SUITE = 'bookworm';
/**
 * linux-image-cloud-amd64 rather than linux-image-amd64: the same kernel built for virtual machines,
 * with far fewer modules (the whole tarball is about a third smaller), and what a QEMU host needs.
 */
export const DEFAULT_ROOTFS_PACKAGES = ['linux-image-cloud-amd64', 'systemd-sysv', 'udev', 'openssh-server'];
/** Bumped whenever the preparation below changes, so a cached tarball made by the old one is not used. */
const PREPARATION = 1;
export const ROOT_LABEL = 'osstest-root';

export interface RootfsImage {
  /** The gzipped tarball. */
  path: string;
  suite: string;
  arch: string;
  packages: string[];
  mirror: string;
  sha256: string;
  bytes: number;
  /** `uname -r` of the kernel inside. */
  kernelRelease: string;
  madeAt: string;
  /** Seconds debootstrap and the preparation took. */
  seconds: number;
}

export interface RootfsSpec {
  suite?: string;
  arch?: string;
  packages?: readonly string[];
  /** Default: the first Debian mirror of apt's sources on this machine. */
  mirror?: string;
}

/** The first `deb` mirror in apt's sources (one-line and deb822 formats) that serves Debian's archive. */
export function aptMirror(etcApt = '/etc/apt'): string {
  const files: string[] = [];
  if (existsSync(join(etcApt, 'sources.list'))) files.push(join(etcApt, 'sources.list'));
  const d = join(etcApt, 'sources.list.d');
  if (existsSync(d)) for (const f of readdirSync(d).sort()) files.push(join(d, f));
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    const uris = f.endsWith('.sources')
      ? [...text.matchAll(/^URIs:\s*(\S+)/gm)].map((m) => m[1]!)
      : [...text.matchAll(/^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/gm)].map((m) => m[1]!);
    const u = uris.find((x) => /^https?:\/\/.*\/debian\/?$/.test(x));
    if (u) return u.replace(/\/$/, '');
  }
  throw new Error(`no Debian mirror in ${etcApt}/sources.list*; set ImagesRootfsMirror`);
}

function normalise(spec: RootfsSpec): Required<Omit<RootfsSpec, 'mirror'>> {
  const suite = spec.suite ?? DEFAULT_ROOTFS_SUITE;
  const arch = spec.arch ?? 'amd64';
  const packages = [...new Set(spec.packages ?? DEFAULT_ROOTFS_PACKAGES)].sort();
  if (!/^[a-z][a-z0-9-]*$/.test(suite))
    throw new Error(`rootfs suite ${JSON.stringify(suite)} is not a suite name`);
  if (!/^[a-z0-9]+$/.test(arch))
    throw new Error(`rootfs arch ${JSON.stringify(arch)} is not an architecture`);
  for (const p of packages) {
    if (!/^[a-z0-9][a-z0-9+.-]+$/.test(p))
      throw new Error(`rootfs package ${JSON.stringify(p)} is not a package name`);
  }
  if (!packages.some((p) => p.startsWith('linux-image-'))) {
    throw new Error('rootfs packages must include a kernel (linux-image-…): the host boots it from its disk');
  }
  return { suite, arch, packages };
}

/** Where the tarball for `spec` lives; the name carries the key. */
export function rootfsPath(imagesDir: string, spec: RootfsSpec): string {
  const n = normalise(spec);
  const key = createHash('sha256')
    .update(JSON.stringify({ ...n, preparation: PREPARATION }))
    .digest('hex')
    .slice(0, 16);
  return join(imagesDir, 'rootfs', `${n.suite}-${n.arch}-${key}.tar.gz`);
}

/** The cached tarball for `spec`, checked against its manifest's SHA-256; undefined if there is none. */
export async function findRootfs(imagesDir: string, spec: RootfsSpec): Promise<RootfsImage | undefined> {
  const path = rootfsPath(imagesDir, spec);
  const mf = `${path}.json`;
  if (!existsSync(path) || !existsSync(mf)) return undefined;
  const m = JSON.parse(readFileSync(mf, 'utf8')) as RootfsImage;
  const got = await sha256File(path);
  if (got !== m.sha256) {
    throw new Error(`${path}: sha256 ${got}, but its manifest says ${m.sha256}; remove it and make it again`);
  }
  return { ...m, path };
}

const NETWORK = `# osstest: DHCP on every Ethernet interface.
[Match]
Type=ether

[Network]
DHCP=ipv4
`;

export const BOOT_SERVICE = `[Unit]
Description=osstest: report the boot to the controller, then mark it complete
After=network-online.target ssh.service
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/osstest-boot

[Install]
WantedBy=multi-user.target
`;

/** Reads /etc/osstest/host.conf, which the install writes (see hostConf in ramdisk-files.ts). */
export const BOOT_SCRIPT = `#!/bin/bash
# osstest: tell the controller this host booted from its disk, then write the boot-complete marker.
. /etc/osstest/host.conf
say() { echo "osstest-image: $*" > /dev/console; }
report() {
  local status
  exec 3<>"/dev/tcp/$OSSTEST_PROGRESS_ADDR/$OSSTEST_PROGRESS_PORT" || return 1
  printf 'GET %s/%s HTTP/1.0\\r\\nHost: %s\\r\\nUser-Agent: osstest-image\\r\\n\\r\\n' \\
    "$OSSTEST_PROGRESS_PATH" "$1" "$OSSTEST_PROGRESS_ADDR" >&3
  read -r -t 10 status <&3
  exec 3<&-
  case "$status" in *" 200 "*) return 0 ;; *) return 1 ;; esac
}
event=boot
[ -e /var/lib/osstest/first-boot-reported ] || event=first-boot
root=$(awk '$2 == "/" { print $1 }' /proc/mounts)
say "host $(hostname), kernel $(uname -r), root $root"
for i in $(seq 30); do
  if report "$event"; then break; fi
  say "could not report $event to $OSSTEST_PROGRESS_ADDR:$OSSTEST_PROGRESS_PORT (try $i)"
  sleep 2
done
mkdir -p /var/lib/osstest && touch /var/lib/osstest/first-boot-reported
cat /proc/sys/kernel/random/boot_id > /run/osstest-boot-complete
say "boot complete"
`;

function extlinuxConf(release: string): string {
  return `# osstest: written when the root filesystem image was made.
SERIAL 0 115200
DEFAULT osstest
PROMPT 0
TIMEOUT 0
LABEL osstest
  LINUX /boot/vmlinuz-${release}
  INITRD /boot/initrd.img-${release}
  APPEND root=LABEL=${ROOT_LABEL} ro console=ttyS0,115200n8 osstest.installed=image
`;
}

async function run(
  argv: string[],
  what: string,
  say: UpdateProgress,
  opts: { env?: Record<string, string> } = {},
) {
  const sub = execa(argv[0]!, argv.slice(1), { reject: false, all: true, env: opts.env });
  let last = '';
  sub.all?.on('data', (d: Buffer) => {
    for (const line of d.toString().split('\n')) {
      const l = line.trim();
      // debootstrap's "I: Retrieving …" / "I: Unpacking …" lines are its progress.
      if (l !== '' && l !== last) say(`${what}: ${l}`);
      last = l;
    }
  });
  const r = await sub;
  if (r.exitCode !== 0)
    throw new Error(
      `${argv.join(' ')} failed (exit ${r.exitCode}):\n${r.all?.split('\n').slice(-20).join('\n')}`,
    );
}

/**
 * The tarball for `spec`: the cached one, or made now (debootstrap, preparation, tar) and cached.
 */
export async function ensureRootfs(opts: {
  imagesDir: string;
  spec?: RootfsSpec;
  force?: boolean;
  progress?: UpdateProgress;
}): Promise<RootfsImage & { made: boolean }> {
  const spec = opts.spec ?? {};
  const say = opts.progress ?? (() => {});
  const n = normalise(spec);
  const path = rootfsPath(opts.imagesDir, spec);
  if (!opts.force) {
    const have = await findRootfs(opts.imagesDir, spec);
    if (have) {
      say(
        `already have ${have.path} (${(have.bytes / 1e6).toFixed(1)} MB, sha256 ${have.sha256.slice(0, 16)}…)`,
      );
      return { ...have, made: false };
    }
  }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error(
      `making the root filesystem image ${path} needs root (debootstrap); run \`osstest images update --rootfs\` as root`,
    );
  }
  const mirror = spec.mirror ?? aptMirror();
  const started = Date.now();
  mkdirSync(join(opts.imagesDir, 'rootfs'), { recursive: true });
  const work = `${path}.work-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  const tree = join(work, 'tree');
  mkdirSync(tree, { recursive: true });
  try {
    say(`debootstrap --variant=minbase ${n.suite} ${n.arch} from ${mirror}, with ${n.packages.join(' ')}`);
    await run(
      [
        'debootstrap',
        '--variant=minbase',
        `--arch=${n.arch}`,
        `--include=${n.packages.join(',')}`,
        n.suite,
        tree,
        mirror,
      ],
      'debootstrap',
      say,
      { env: { DEBIAN_FRONTEND: 'noninteractive' } },
    );
    say('preparing the tree: network, boot loader configuration, osstest-boot.service');
    const boot = readdirSync(join(tree, 'boot'));
    const vmlinuz = boot
      .filter((f) => f.startsWith('vmlinuz-'))
      .sort()
      .at(-1);
    if (!vmlinuz) throw new Error(`debootstrap left no kernel in ${tree}/boot`);
    const release = vmlinuz.slice('vmlinuz-'.length);
    if (!boot.includes(`initrd.img-${release}`)) throw new Error(`debootstrap left no initrd.img-${release}`);
    const put = (p: string, text: string, mode = 0o644) => {
      mkdirSync(join(tree, p, '..'), { recursive: true });
      writeAtomic(join(tree, p), text, mode);
    };
    put('etc/systemd/network/50-osstest.network', NETWORK);
    put('etc/systemd/system/osstest-boot.service', BOOT_SERVICE);
    put('usr/local/sbin/osstest-boot', BOOT_SCRIPT, 0o755);
    put('boot/extlinux/extlinux.conf', extlinuxConf(release));
    put('etc/fstab', `LABEL=${ROOT_LABEL} / ext4 errors=remount-ro 0 1\n`);
    await run(
      [
        'chroot',
        tree,
        'systemctl',
        'enable',
        'systemd-networkd.service',
        'systemd-networkd-wait-online.service',
        'osstest-boot.service',
      ],
      'systemctl',
      say,
    );
    // Per-host keys are written by each install; nothing made here may be shared between hosts.
    for (const f of readdirSync(join(tree, 'etc', 'ssh'))) {
      if (f.startsWith('ssh_host_')) rmSync(join(tree, 'etc', 'ssh', f));
    }
    rmSync(join(tree, 'etc', 'machine-id'), { force: true });
    put('etc/machine-id', '', 0o444); // empty: systemd makes one at first boot
    for (const d of [
      'var/cache/apt/archives',
      'var/lib/apt/lists',
      'usr/share/doc',
      'usr/share/man',
      'usr/share/info',
      'usr/share/locale',
    ]) {
      const p = join(tree, d);
      if (existsSync(p))
        for (const f of readdirSync(p))
          if (f !== 'partial' && f !== 'lock') rmSync(join(p, f), { recursive: true, force: true });
    }
    say('packing the tree');
    const tmp = join(work, 'rootfs.tar.gz');
    await run(['tar', '--numeric-owner', '-C', tree, '-czf', tmp, '.'], 'tar', say);
    const sha256 = await sha256File(tmp);
    const image: RootfsImage = {
      path,
      suite: n.suite,
      arch: n.arch,
      packages: [...n.packages],
      mirror,
      sha256,
      bytes: statSync(tmp).size,
      kernelRelease: release,
      madeAt: new Date().toISOString(),
      seconds: Math.round((Date.now() - started) / 100) / 10,
    };
    renameSync(tmp, path);
    writeAtomic(`${path}.json`, `${JSON.stringify(image, null, 2)}\n`, 0o644);
    say(
      `root filesystem ${path}: ${(image.bytes / 1e6).toFixed(1)} MB, kernel ${release}, sha256 ${sha256} (${image.seconds} s)`,
    );
    return { ...image, made: true };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
