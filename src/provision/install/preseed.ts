/**
 * The Debian installer's answers for one host (a preseed file), and the script its late_command runs.
 *
 * The preseed answers every question d-i would ask at priority critical: locale and keyboard, the
 * network (DHCP on the interface it booted from, the host's name), the mirror, no users but root (its
 * password locked: logins are by the lab's key), UTC, partitioning of the whole disk (LVM by default,
 * as the original did), a minimal package set with OpenSSH, GRUB on the disk, and the console on the
 * serial port. `preseed/late_command` fetches `late.sh` from the host's webspace and runs it; that
 * script, also made here, installs the lab's authorized key, the host key the controller made for this
 * install (pinned before the host boots), the osstest-boot service that reports `first-boot` and writes
 * the boot-complete marker, and reports `installed`.
 */
import { BOOT_SCRIPT, BOOT_SERVICE } from '../images/rootfs.js';
import { shellQuote } from './ramdisk-files.js';

export interface PreseedInputs {
  host: string;
  domain: string;
  /** e.g. http://deb.debian.org/debian */
  mirror: string;
  suite: string;
  /** e.g. /dev/sda */
  disk: string;
  partitioning: 'lvm' | 'regular';
  /** URL of the host's directory in the webspace, ending in /: …/host/NAME/ */
  hostUrl: string;
  /** Extra packages (pkgsel/include); openssh-server is always included. */
  packages?: readonly string[];
}

function oneLine(name: string, v: string): string {
  if (/[\r\n\0]/.test(v) || v.trim() !== v)
    throw new Error(`preseed: ${name} ${JSON.stringify(v)} must be one line without outer blanks`);
  return v;
}

export function renderPreseed(o: PreseedInputs): string {
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(o.host))
    throw new Error(`preseed: host name ${JSON.stringify(o.host)} is not a DNS label`);
  if (!/^\/dev\/[A-Za-z0-9/_-]+$/.test(o.disk))
    throw new Error(`preseed: disk ${JSON.stringify(o.disk)} is not a device path`);
  let mirror: URL;
  try {
    mirror = new URL(o.mirror);
  } catch {
    throw new Error(`preseed: mirror ${JSON.stringify(o.mirror)} is not a URL`);
  }
  if (mirror.protocol !== 'http:')
    throw new Error(`preseed: mirror ${o.mirror} must be http:// (d-i's netboot image has no https)`);
  if (!o.hostUrl.endsWith('/') || !/^http:\/\/[^/]+\//.test(o.hostUrl))
    throw new Error(`preseed: host URL ${o.hostUrl} must be http://…/`);
  const packages = ['openssh-server', ...(o.packages ?? [])].map((p) => {
    if (!/^[a-z0-9][a-z0-9+.-]+$/.test(p))
      throw new Error(`preseed: ${JSON.stringify(p)} is not a package name`);
    return p;
  });
  const lines = [
    `# osstest: answers for the Debian installer on ${o.host}; written for this install.`,
    'd-i debian-installer/locale string en_US.UTF-8',
    'd-i keyboard-configuration/xkb-keymap select us',
    'd-i netcfg/choose_interface select auto',
    `d-i netcfg/get_hostname string ${o.host}`,
    `d-i netcfg/get_domain string ${oneLine('domain', o.domain)}`,
    `d-i netcfg/hostname string ${o.host}`,
    'd-i hw-detect/load_firmware boolean false',
    'd-i mirror/country string manual',
    `d-i mirror/http/hostname string ${mirror.host}`,
    `d-i mirror/http/directory string ${mirror.pathname.replace(/\/$/, '') || '/'}`,
    'd-i mirror/http/proxy string',
    `d-i mirror/suite string ${oneLine('suite', o.suite)}`,
    'd-i passwd/root-login boolean true',
    'd-i passwd/make-user boolean false',
    'd-i passwd/root-password-crypted password !',
    'd-i clock-setup/utc boolean true',
    'd-i time/zone string UTC',
    'd-i clock-setup/ntp boolean false',
    `d-i partman-auto/disk string ${o.disk}`,
    `d-i partman-auto/method string ${o.partitioning === 'lvm' ? 'lvm' : 'regular'}`,
    'd-i partman-auto/choose_recipe select atomic',
    'd-i partman-auto-lvm/guided_size string max',
    `d-i partman-auto-lvm/new_vg_name string ${o.host}-vg`,
    'd-i partman-lvm/device_remove_lvm boolean true',
    'd-i partman-md/device_remove_md boolean true',
    'd-i partman-lvm/confirm boolean true',
    'd-i partman-lvm/confirm_nooverwrite boolean true',
    'd-i partman-partitioning/confirm_write_new_label boolean true',
    'd-i partman/choose_partition select finish',
    'd-i partman/confirm boolean true',
    'd-i partman/confirm_nooverwrite boolean true',
    'd-i apt-setup/cdrom/set-first boolean false',
    'd-i apt-setup/non-free-firmware boolean false',
    'tasksel tasksel/first multiselect',
    `d-i pkgsel/include string ${packages.join(' ')}`,
    'd-i pkgsel/upgrade select none',
    'popularity-contest popularity-contest/participate boolean false',
    'd-i grub-installer/only_debian boolean true',
    `d-i grub-installer/bootdev string ${o.disk}`,
    'd-i debian-installer/add-kernel-opts string console=ttyS0,115200n8',
    'd-i finish-install/reboot_in_progress note',
    `d-i preseed/early_command string wget -q -O /dev/null ${o.hostUrl}progress/preseed-loaded || true`,
    `d-i preseed/late_command string wget -q -O /tmp/osstest-late.sh ${o.hostUrl}late.sh && sh /tmp/osstest-late.sh`,
    '',
  ];
  return lines.join('\n');
}

/** The late_command's script: runs in d-i's shell with the installed system under /target. */
export function renderLateScript(o: {
  hostUrl: string;
  hostConf: string;
  authorizedKeys: string;
  hostKey: { privateKey: string; publicKey: string };
}): string {
  const q = shellQuote;
  return `#!/bin/sh
# osstest: the Debian installer's late_command: make the installed system reachable and reporting.
set -e
report() { wget -q -O /dev/null ${q(o.hostUrl)}"progress/$1" || true; }
trap 'rc=$?; [ $rc = 0 ] || report install-failed' EXIT
mkdir -p /target/root/.ssh /target/etc/osstest /target/usr/local/sbin
chmod 700 /target/root/.ssh
printf '%s\\n' ${q(o.authorizedKeys.trim())} > /target/root/.ssh/authorized_keys
chmod 600 /target/root/.ssh/authorized_keys
rm -f /target/etc/ssh/ssh_host_*
umask 077
printf '%s\\n' ${q(o.hostKey.privateKey.trim())} > /target/etc/ssh/ssh_host_ed25519_key
umask 022
printf '%s\\n' ${q(o.hostKey.publicKey)} > /target/etc/ssh/ssh_host_ed25519_key.pub
printf '%s' ${q(o.hostConf)} > /target/etc/osstest/host.conf
printf '%s' ${q(BOOT_SCRIPT)} > /target/usr/local/sbin/osstest-boot
chmod 755 /target/usr/local/sbin/osstest-boot
printf '%s' ${q(BOOT_SERVICE)} > /target/etc/systemd/system/osstest-boot.service
in-target systemctl enable osstest-boot.service
report installed
`;
}
