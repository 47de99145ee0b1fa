/**
 * Install method `debian-installer`, the way real labs install real machines: the host network-boots
 * Debian's netboot installer (`osstest images update --installer`), which fetches its answers (a
 * preseed file, src/provision/install/preseed.ts) from the host's webspace and installs Debian on the
 * host's disk from the mirror; its late_command installs the lab's key, a host key made for this
 * install and the osstest-boot service, and reports `installed`.
 *
 * The controller: power off; webspace files (installer kernel and initrd, preseed.cfg, late.sh) and the
 * boot config (`auto=true priority=critical url=…preseed.cfg`); pin the host key; power on; wait for the
 * fetch of preseed.cfg (HostInstallFetchTimeout) — the install has begun, so the boot config goes to
 * the local disk, and the installer's own reboot boots the installed system; wait for `installed`, then
 * `first-boot`, then ssh (HostInstallTimeout) and the boot-complete marker.
 *
 * Host properties: `DiDisk` (default /dev/sda), `DiPartitioning` (lvm, the default, or regular),
 * `DiSuite` (bookworm), `DiMirror` (http:// mirror; default the first Debian mirror of apt's sources),
 * `DiDomain` (default osstest.test), `DiPackages` (extra packages), `DiKernelArgs` (more installer
 * boot parameters, e.g. `netcfg/get_nameservers=ADDR` where DHCP hands out no name server).
 *
 * Tested with Debian 12's netboot installer (20230607+deb12u15) under QEMU 7.2 (TCG): the preseed and
 * late script rendering (test/unit/preseed.test.ts), and the real installer booted by iPXE up to its fetch
 * of preseed.cfg and its early_command (test/e2e/debian-installer.test.ts). Not run through a full
 * install (the lab's namespace has no route to a Debian mirror) nor yet on real hardware.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostEvent } from '../../db/types.js';
import { publicKeyOf } from '../../remote/keys.js';
import { waitForSsh } from '../../remote/session.js';
import { findInstallerImage } from '../images/installer.js';
import { aptMirror } from '../images/rootfs.js';
import { bootLoaderOf, writeLocalBoot, writeNetboot } from '../pxe/index.js';
import { makeOpensshHostKey, publish, writeFileAtomic } from './files.js';
import type { InstallDriver, InstallKit, ProvisionContext, RunningInstall } from './host-install.js';
import { InstallError } from './install-error.js';
import { renderLateScript, renderPreseed } from './preseed.js';
import { hostConf } from './ramdisk-files.js';

async function install(ctx: ProvisionContext, kit: InstallKit): Promise<RunningInstall> {
  const { config, host } = ctx;
  if (!host.mac || !host.ip) {
    throw new InstallError(
      `host ${host.name}: a network-booted install needs its MAC and IP in the host database`,
    );
  }
  const imagesDir = config.path('Images');
  const di = findInstallerImage(imagesDir, 'amd64');
  const hostUrl = `${ctx.webspaceUrl}host/${host.name}/`;
  const partitioning = host.prop('DiPartitioning') ?? 'lvm';
  if (partitioning !== 'lvm' && partitioning !== 'regular') {
    throw new InstallError(`host ${host.name}: DiPartitioning must be lvm or regular, not ${partitioning}`);
  }
  const domain = host.prop('DiDomain') ?? 'osstest.test';
  const preseed = renderPreseed({
    host: host.name,
    domain,
    mirror: host.prop('DiMirror') ?? aptMirror(),
    suite: host.prop('DiSuite') ?? 'bookworm',
    disk: host.prop('DiDisk') ?? '/dev/sda',
    partitioning,
    hostUrl,
    packages: (host.prop('DiPackages') ?? '').split(/[\s,]+/).filter((p) => p),
  });
  const key = await makeOpensshHostKey(host.name, join(imagesDir, 'ramdisk', '.keys'));
  const keyPath = config.path('TestHostKeypairPath');
  const late = renderLateScript({
    hostUrl,
    hostConf: hostConf({ host: host.name, mac: host.mac, progressUrl: `${hostUrl}progress` }),
    authorizedKeys: publicKeyOf(readFileSync(keyPath), keyPath),
    hostKey: key,
  });
  const web = join(kit.pxe.webspaceDir, host.name);
  mkdirSync(web, { recursive: true, mode: 0o755 });
  publish(di.linux, join(web, 'di-linux'));
  publish(di.initrd, join(web, 'di-initrd.gz'));
  writeFileAtomic(join(web, 'preseed.cfg'), preseed);
  writeFileAtomic(join(web, 'late.sh'), late);
  // The late script holds the host's private key: over HTTP only, where the webspace checks the
  // client's address. The installer's kernel and initrd go to TFTP too for pxelinux hosts.
  const tftpRel = join('hosts', host.name);
  if (bootLoaderOf(host.prop, host.name) === 'pxelinux') {
    mkdirSync(join(kit.pxe.tftpRoot, tftpRel), { recursive: true });
    for (const f of ['di-linux', 'di-initrd.gz']) publish(join(web, f), join(kit.pxe.tftpRoot, tftpRel, f));
  }
  const file = (name: string) => ({ tftpPath: join(tftpRel, name), url: `${hostUrl}${name}` });
  const written = writeNetboot(kit.pxe, host, {
    purpose: `Debian installer ${di.version}`,
    kernel: file('di-linux'),
    initrds: [file('di-initrd.gz')],
    cmdline: [
      'auto=true',
      'priority=critical',
      `url=${hostUrl}preseed.cfg`,
      'interface=auto',
      `hostname=${host.name}`,
      `domain=${domain}`,
      'console=ttyS0,115200n8',
      // e.g. netcfg/get_nameservers=ADDR where DHCP gives no name server (d-i asks for one otherwise).
      ...(host.prop('DiKernelArgs') ?? '').split(/\s+/).filter((a) => a),
      '---',
      'console=ttyS0,115200n8',
    ].join(' '),
  });
  ctx.log(
    `boot config: ${written.ipxe} (iPXE), ${written.pxelinux} (pxelinux); preseed ${hostUrl}preseed.cfg`,
  );
  await ctx.store.setHostProp(host.name, 'SshHostKey', key.publicKey);
  ctx.log(`ssh host key of ${host.name} is now ${key.publicKey.slice(0, 40)}…`);

  const since = Date.now();
  ctx.log(`power: ${kit.power.method} on`);
  await kit.power.set('on');
  const started = Date.now();
  const deadline = started + config.int('HostInstallTimeout') * 1000;
  const fetchDeadline = Math.min(deadline, started + config.int('HostInstallFetchTimeout') * 1000);
  const watch = kit.watch(since, started);
  const failed = (e: HostEvent) => e.kind === 'progress' && /failed$/.test(e.detail);
  await watch.waitFor(
    'fetch of its preseed file',
    (e) => e.kind === 'fetch' && /^http preseed\.cfg /.test(e.detail),
    fetchDeadline,
    failed,
  );
  // The install has begun: whatever boots next must be the installed system.
  const local = writeLocalBoot(kit.pxe, host);
  ctx.log(`boot config: local disk (${local.ipxe}, ${local.pxelinux})`);
  await watch.waitFor(
    '"installed" report',
    (e) => e.kind === 'progress' && e.detail === 'installed',
    deadline,
    failed,
  );
  await watch.waitFor(
    '"first-boot" report',
    (e) => e.kind === 'progress' && e.detail === 'first-boot',
    deadline,
    failed,
  );
  const session = await waitForSsh(ctx.sshTarget(), {
    timeoutMs: Math.max(5_000, deadline - Date.now()),
    intervalMs: 1_000,
    log: ctx.log,
  });
  const bootId = await kit.bootComplete(session, 30_000);
  return { session, watch, started, deadline, bootId };
}

export const debianInstallerDriver: InstallDriver = { method: 'debian-installer', install };
