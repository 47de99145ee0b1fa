/**
 * Install method `image`: writes a Debian root filesystem to the host's disk and boots it from there.
 *
 * 1. The host boots the ramdisk (as the `ramdisk` method does) with the disk and ext4 modules and one
 *    more initrd, `image-tools.cpio.gz`: this machine's sfdisk, mke2fs and extlinux (with the shared
 *    libraries they load, found with ldd), mke2fs.conf and syslinux's MBR.
 * 2. Over ssh, a script partitions the disk (one bootable partition), makes an ext4 filesystem labelled
 *    `osstest-root`, streams the root filesystem tarball (src/provision/images/rootfs.ts: debootstrap,
 *    cached) from the webspace into it, writes the host's own files (hostname, the lab's authorized key,
 *    an OpenSSH host key made for this install, the progress URL) and installs extlinux and the MBR.
 *    It reports `partitioning`, `writing-rootfs`, `installed` (or `install-failed`) to the webspace.
 * 3. The controller pins the new host key, switches the host's boot config to the local disk and
 *    reboots it; the installed system reports `first-boot` and writes the boot-complete marker; the
 *    controller then checks over ssh that the root filesystem is the disk's and the kernel command line
 *    is the one extlinux passes.
 *
 * The disk is the `ImageDisk` host property (default /dev/vda: the virtual lab's VMs have a virtio disk).
 * Tested with Debian bookworm (linux-image-cloud-amd64, systemd 252, OpenSSH 9.2), syslinux 6.04,
 * util-linux 2.38 and e2fsprogs 1.47 under QEMU 7.2 (TCG), in test/e2e/image-install.test.ts.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Config } from '../../config/config.js';
import { publicKeyOf } from '../../remote/keys.js';
import { waitForSsh } from '../../remote/session.js';
import { ensureRootfs, ROOT_LABEL, type RootfsSpec } from '../images/rootfs.js';
import { writeLocalBoot } from '../pxe/index.js';
import { type CpioEntry, writeCpio } from './cpio.js';
import { makeOpensshHostKey, publish } from './files.js';
import type { InstallDriver, InstallKit, ProvisionContext, RunningInstall } from './host-install.js';
import { InstallError } from './install-error.js';
import { sharedLibraries } from './ramdisk.js';
import { hostConf, shellQuote } from './ramdisk-files.js';

/**
 * Modules the ramdisk loads for this method: a virtio disk (what the virtual lab's VMs have) and ext4.
 * Real hardware with SATA/NVMe disks would add its drivers here (and to the kernel image's extraction).
 */
export const IMAGE_MODULES = ['virtio_pci', 'virtio_blk', 'crc32c_generic', 'ext4'];
export const DEFAULT_IMAGE_DISK = '/dev/vda';

const TOOLS: Array<{ from: string; to: string; pkg: string; exe: boolean }> = [
  { from: '/usr/sbin/sfdisk', to: 'usr/local/sbin/sfdisk', pkg: 'fdisk', exe: true },
  { from: '/usr/sbin/mke2fs', to: 'usr/local/sbin/mke2fs', pkg: 'e2fsprogs', exe: true },
  { from: '/usr/bin/extlinux', to: 'usr/local/sbin/extlinux', pkg: 'extlinux', exe: true },
  { from: '/etc/mke2fs.conf', to: 'usr/local/etc/mke2fs.conf', pkg: 'e2fsprogs', exe: false },
  { from: '/usr/lib/syslinux/mbr/mbr.bin', to: 'usr/local/lib/mbr.bin', pkg: 'syslinux-common', exe: false },
];

/** The tools archive, cached under `<Images>/ramdisk/` by the SHA-256 of its content. */
export async function buildImageTools(imagesDir: string): Promise<{ path: string; cached: boolean }> {
  const entries: CpioEntry[] = [];
  const seen = new Set<string>();
  for (const t of TOOLS) {
    if (!existsSync(t.from)) throw new Error(`${t.from} is missing (Debian package ${t.pkg})`);
    entries.push({ type: 'file', path: t.to, data: readFileSync(t.from), mode: t.exe ? 0o755 : 0o644 });
    seen.add(t.to);
    if (!t.exe) continue;
    for (const [asked, file] of await sharedLibraries(t.from)) {
      const p = asked.replace(/^\/+/, '');
      if (seen.has(p)) continue;
      seen.add(p);
      entries.push({ type: 'file', path: p, data: readFileSync(file), mode: 0o755 });
    }
  }
  const cpio = writeCpio(entries);
  const sha = createHash('sha256').update(cpio).digest('hex');
  const dir = join(imagesDir, 'ramdisk');
  const path = join(dir, `image-tools-${sha.slice(0, 20)}.cpio.gz`);
  if (existsSync(path)) return { path, cached: true };
  mkdirSync(dir, { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, gzipSync(cpio, { level: 6 }));
  chmodSync(tmp, 0o644);
  renameSync(tmp, path);
  return { path, cached: false };
}

export interface ImageScriptInputs {
  host: string;
  mac: string;
  disk: string;
  /** http://ADDR:PORT/host/NAME/progress */
  progressUrl: string;
  /** http://ADDR:PORT/host/NAME/rootfs.tar.gz */
  rootfsUrl: string;
  authorizedKeys: string;
  /** OpenSSH private key (PEM-like text) and its `ssh-ed25519 AAAA…` public half. */
  hostKey: { privateKey: string; publicKey: string };
}

/** The script the ramdisk runs (busybox sh) to write the disk. Pure: unit-tested. */
export function imageInstallScript(o: ImageScriptInputs): string {
  if (!/^\/dev\/[a-z][a-z0-9]*$/.test(o.disk))
    throw new Error(`ImageDisk ${JSON.stringify(o.disk)} must be like /dev/vda`);
  const rootfs = new URL(o.rootfsUrl);
  const part = /\d$/.test(o.disk) ? `${o.disk}p1` : `${o.disk}1`;
  const conf = hostConf({ host: o.host, mac: o.mac, progressUrl: o.progressUrl });
  const q = shellQuote;
  return `#!/bin/sh
# osstest image install for ${o.host}: written by the controller, run by the ramdisk's shell.
set -e
set -o pipefail
${conf}
DISK=${q(o.disk)}
PART=${q(part)}
say() { echo "osstest-image: $*"; echo "osstest-image: $*" > /dev/console; }
# (busybox 1.35's wget crashes with -T: no timeout option.)
report() {
  wget -q -O /dev/null "http://$OSSTEST_PROGRESS_ADDR:$OSSTEST_PROGRESS_PORT$OSSTEST_PROGRESS_PATH/$1" || true
}
trap 'rc=$?; if [ $rc != 0 ]; then say "install failed (exit $rc)"; report install-failed; fi' EXIT
if [ ! -b "$DISK" ]; then
  say "no disk $DISK (block devices: $(ls /sys/block | tr '\\n' ' '))"
  exit 1
fi
say "partitioning $DISK ($(($(cat /sys/block/\${DISK##*/}/size) / 2048)) MiB)"
report partitioning
printf 'label: dos\\n,,L,*\\n' | /usr/local/sbin/sfdisk --quiet --wipe always --wipe-partitions always "$DISK"
n=0
while [ ! -b "$PART" ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
[ -b "$PART" ] || { say "$PART did not appear"; exit 1; }
say "making ext4 on $PART"
# Without 64bit and metadata_csum, which extlinux cannot read.
MKE2FS_CONFIG=/usr/local/etc/mke2fs.conf /usr/local/sbin/mke2fs -q -F -t ext4 -L ${ROOT_LABEL} \\
  -O ^64bit,^metadata_csum "$PART"
mkdir -p /mnt
mount -t ext4 "$PART" /mnt
say "writing the root filesystem from ${rootfs.href}"
report writing-rootfs
# busybox's wget, given the port: without one it looks the "http" service up through glibc's NSS, which
# the static busybox cannot load. (Its small nc closes the connection as soon as its input ends.)
wget -q -O - ${q(`http://${rootfs.hostname}:${rootfs.port || '80'}${rootfs.pathname}`)} | gunzip -c | tar -x -f - -C /mnt
[ -L /mnt/sbin/init ] || [ -x /mnt/sbin/init ] || { say "the root filesystem has no /sbin/init"; exit 1; }
say "root filesystem written ($(df -m /mnt | awk 'NR == 2 { print $3 }') MiB used)"
say "writing ${o.host}'s own files"
echo ${q(o.host)} > /mnt/etc/hostname
printf '127.0.0.1\\tlocalhost\\n127.0.1.1\\t%s\\n' ${q(o.host)} > /mnt/etc/hosts
mkdir -p /mnt/root/.ssh /mnt/etc/osstest
chmod 700 /mnt/root/.ssh
printf '%s\\n' ${q(o.authorizedKeys.trim())} > /mnt/root/.ssh/authorized_keys
chmod 600 /mnt/root/.ssh/authorized_keys
rm -f /mnt/etc/ssh/ssh_host_*
umask 077
printf '%s\\n' ${q(o.hostKey.privateKey.trim())} > /mnt/etc/ssh/ssh_host_ed25519_key
umask 022
printf '%s\\n' ${q(o.hostKey.publicKey)} > /mnt/etc/ssh/ssh_host_ed25519_key.pub
printf '%s' ${q(conf)} > /mnt/etc/osstest/host.conf
say "installing extlinux and the MBR on $DISK"
/usr/local/sbin/extlinux --install /mnt/boot/extlinux
dd if=/usr/local/lib/mbr.bin of="$DISK" bs=440 count=1 conv=notrunc 2>/dev/null
sync
umount /mnt
report installed
say "installed"
`;
}

/** The root filesystem settings: ImagesRootfsSuite, ImagesRootfsPackages, ImagesRootfsMirror. */
export function rootfsSpecOf(config: Config): RootfsSpec {
  const packages = config.optString('ImagesRootfsPackages');
  return {
    suite: config.optString('ImagesRootfsSuite'),
    packages: packages ? packages.split(/[\s,]+/).filter((p) => p) : undefined,
    mirror: config.optString('ImagesRootfsMirror'),
  };
}

async function install(ctx: ProvisionContext, kit: InstallKit): Promise<RunningInstall> {
  const { config, host } = ctx;
  if (!host.mac)
    throw new InstallError(`host ${host.name}: the image method needs its MAC in the host database`);
  const imagesDir = config.path('Images');
  const t0 = Date.now();
  const rootfs = await ensureRootfs({
    imagesDir,
    spec: rootfsSpecOf(config),
    progress: (l) => ctx.log(`rootfs: ${l}`),
  });
  ctx.log(
    `rootfs: ${rootfs.made ? 'made' : 'cached'} ${rootfs.path} (${(rootfs.bytes / 1e6).toFixed(1)} MB, kernel ${rootfs.kernelRelease}, ${((Date.now() - t0) / 1000).toFixed(1)} s)`,
  );
  const tools = await buildImageTools(imagesDir);
  ctx.log(`image tools: ${tools.cached ? 'cached' : 'built'} ${tools.path}`);
  const web = join(kit.pxe.webspaceDir, host.name);
  mkdirSync(web, { recursive: true, mode: 0o755 });
  // Only the webspace: the host fetches it over HTTP, never over TFTP.
  const dst = join(web, 'rootfs.tar.gz');
  publish(rootfs.path, dst);

  const run = await kit.bootRamdisk({
    modules: IMAGE_MODULES,
    initrds: [{ name: 'image-tools.cpio.gz', path: tools.path }],
  });
  const disk = host.prop('ImageDisk') ?? DEFAULT_IMAGE_DISK;
  const key = await makeOpensshHostKey(host.name, join(imagesDir, 'ramdisk', '.keys'));
  const keyPath = config.path('TestHostKeypairPath');
  const script = imageInstallScript({
    host: host.name,
    mac: host.mac,
    disk,
    progressUrl: `${ctx.webspaceUrl}host/${host.name}/progress`,
    rootfsUrl: `${ctx.webspaceUrl}host/${host.name}/rootfs.tar.gz`,
    authorizedKeys: publicKeyOf(readFileSync(keyPath), keyPath),
    hostKey: key,
  });
  const w0 = Date.now();
  let pending = '';
  const r = await run.session.exec('sh -s', {
    stdin: script,
    allowFailure: true,
    timeoutMs: Math.max(10_000, run.deadline - Date.now()),
    output: (text) => {
      pending += text;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const l of lines) if (l.trim() !== '') ctx.log(`install: ${l}`);
    },
  });
  if (pending.trim() !== '') ctx.log(`install: ${pending}`);
  if (r.exitCode !== 0) {
    await run.session.close();
    throw new InstallError(
      `host ${host.name}: writing the disk failed (${r.timedOut ? 'timed out' : `exit ${r.exitCode}`}): ${r.stderr.trim().split('\n').slice(-5).join(' | ')}`,
    );
  }
  ctx.log(`disk ${disk} written in ${((Date.now() - w0) / 1000).toFixed(1)} s`);
  await run.watch.poll();

  // From here on the host must boot its disk, and its sshd must present the key just written.
  await ctx.store.setHostProp(host.name, 'SshHostKey', key.publicKey);
  ctx.log(`ssh host key of ${host.name} is now ${key.publicKey.slice(0, 40)}… (installed system)`);
  const local = writeLocalBoot(kit.pxe, host);
  ctx.log(`boot config: local disk (${local.ipxe}, ${local.pxelinux})`);
  ctx.log(`rebooting ${host.name} into its disk`);
  await run.session.exec('(sleep 1; reboot) </dev/null >/dev/null 2>&1 &', { timeoutMs: 30_000 });
  await run.session.close();
  await run.watch.waitFor(
    '"first-boot" report from the installed system',
    (e) => e.kind === 'progress' && e.detail === 'first-boot',
    run.deadline,
    (e) => e.kind === 'progress' && /failed$/.test(e.detail),
  );
  const session = await waitForSsh(ctx.sshTarget(), {
    timeoutMs: Math.max(5_000, run.deadline - Date.now()),
    intervalMs: 500,
    log: ctx.log,
  });
  const bootId = await kit.bootComplete(session, 30_000);
  if (bootId === run.bootId)
    throw new InstallError(`host ${host.name}: still the ramdisk's boot ${bootId} after the reboot`);
  const check = await session.exec(
    `cat /proc/cmdline; awk '$2 == "/" { print $1 }' /proc/mounts; readlink -f /dev/disk/by-label/${ROOT_LABEL}`,
    {
      timeoutMs: 30_000,
    },
  );
  const [cmdline = '', root = '', labelled = ''] = check.stdout.split('\n').map((l) => l.trim());
  ctx.log(`installed system: root ${root} (label ${ROOT_LABEL} is ${labelled}); cmdline ${cmdline}`);
  if (!/\bosstest\.installed=image\b/.test(cmdline) || !root.startsWith(disk) || labelled !== root) {
    await session.close();
    throw new InstallError(
      `host ${host.name} did not boot from its disk: root ${root || 'unknown'}, label ${labelled || 'none'}, cmdline ${cmdline}`,
    );
  }
  return { session, watch: run.watch, started: run.started, deadline: run.deadline, bootId };
}

export const imageDriver: InstallDriver = { method: 'image', install };
