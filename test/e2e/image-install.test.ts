/**
 * Install method `image` end to end: `images update --rootfs` (Debian's kernel package and a debootstrap
 * root filesystem), `lab up` with one QEMU host with a virtio disk, `ts-host-install` with
 * InstallMethod image — the ramdisk partitions the disk, writes the root filesystem and extlinux, the
 * host reboots from its disk — then ssh to the installed system, pinned to the key the install wrote,
 * checking that its root is the disk's partition; `lab down`.
 *
 * The root filesystem is cached in /var/cache/osstest-test-images (OSSTEST_TEST_ROOTFS_IMAGES
 * overrides): made from scratch, debootstrap takes about 3-4 minutes on a loaded 2-core machine; later
 * runs reuse it. Software emulation (TCG) unless OSSTEST_TEST_LAB_ACCEL=kvm. Its own lab network
 * (namespace ot-img, 10.217.0.0/24) so that other labs on the machine are not disturbed.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteSession } from '../../src/remote/session.js';
import { DbHostKeyStore } from '../../src/testcase/hosts.js';
import { prerequisites } from '../helpers/env.js';
import { createWorkspace, type Workspace } from '../helpers/workspace.js';

const ok = prerequisites('image install', {
  root: true,
  commands: [
    'qemu-system-x86_64',
    'qemu-img',
    'ip',
    '/bin/busybox',
    '/usr/sbin/dropbear',
    'dropbearkey',
    'ssh-keygen',
    'apt-get',
    'dpkg-deb',
    'debootstrap',
    'extlinux',
    '/usr/sbin/sfdisk',
    '/usr/sbin/mke2fs',
  ],
});

const NS = 'ot-img';
const SUBNET = '10.217.0';
const IMAGES = process.env.OSSTEST_TEST_ROOTFS_IMAGES || '/var/cache/osstest-test-images';
const HOST = 'img-q0';

describe.skipIf(!ok)('install method image: ramdisk writes the disk, the host boots from it', () => {
  let ws: Workspace;
  let flight: string;
  const job = 'test-image-install';
  const labDir = `/tmp/ot-img/lab-${process.pid}`;
  let up = false;

  const cli = (args: string[], timeoutMs = 150_000) => ws.cliOk(args, timeoutMs);

  beforeAll(async () => {
    mkdirSync(labDir, { recursive: true });
    ws = createWorkspace([
      `Images ${IMAGES}`,
      `LabNamespace ${NS}`,
      `LabSubnet ${SUBNET}.0/24`,
      'LabLinkNet 10.217.255.0/30',
      `LabDir ${labDir}`,
      'LabHostPrefix img',
      'LabQemuHosts 1',
      'LabBuildHosts 0',
      'LabQemuMemory 512',
      'LabQemuDisk 3G',
      // Debian's cloud kernel (the root filesystem's) drives virtio-net, not e1000.
      'LabQemuNic virtio',
      `LabQemuAccel ${process.env.OSSTEST_TEST_LAB_ACCEL || 'tcg'}`,
      `HostProp_${HOST.replace(/-/g, '_')}_InstallMethod image`,
      'HostInstallTimeout 600',
    ]);
    ws.configure([`TftpPath ${join(ws.dir, 'tftp')}`, `WebspaceDir ${join(ws.dir, 'webspace')}`]);
    const images = await cli(['images', 'update', '--rootfs'], 900_000);
    expect(images).toMatch(/rootfs: (already have|root filesystem) \S+\.tar\.gz/);
    flight = (await cli(['cs-flight-create', 'play', 'lab'])).trim();
    await cli(['cs-job-create', flight, job, 'build']);
    await cli(['lab', 'up']);
    up = true;
  }, 960_000);

  afterAll(async () => {
    if (ws && up) await ws.cli(['lab', 'down'], {}, 120_000);
    ws?.cleanup();
    rmSync(labDir, { recursive: true, force: true });
  }, 150_000);

  it('ts-host-install (image) writes the disk, reboots the host into it and reaches its sshd', async () => {
    const hosts = JSON.parse(await cli(['hosts', 'list', '--json'])) as { name: string; flags: string[] }[];
    expect(hosts.find((h) => h.name === HOST)?.flags).toContain('disk');
    const t0 = Date.now();
    const out = await cli(
      ['ts', '--flight', flight, '--job', job, 'ts-host-install', `host=${HOST}`],
      700_000,
    );
    process.stderr.write(
      `image install: power-on to ssh of the installed system ${/answering ssh ([\d.]+) s after power-on/.exec(out)?.[1]} s (testcase ${((Date.now() - t0) / 1000).toFixed(1)} s)\n`,
    );
    // The ramdisk phase, the disk writing, the reboot, the installed system.
    for (const ev of ['booted', 'ssh-ready', 'partitioning', 'writing-rootfs', 'installed', 'first-boot']) {
      expect(out).toMatch(new RegExp(`host event \\+[\\d.]+s progress ${ev}\\n`));
    }
    expect(out).toMatch(/fetch http rootfs\.tar\.gz \d{8,} bytes/);
    expect(out).toMatch(/boot config: local disk/);
    expect(out).toMatch(/installed system: root \/dev\/vda1 \(label osstest-root is \/dev\/vda1\)/);
    expect(out).toMatch(/installed \(image\) and answering ssh/);
    expect(out).toMatch(/running kernel \d+\.\d+\.\d+-\d+-cloud-amd64/);

    const jobLogs = join(ws.dir, 'logs', flight, job);
    const serial = readFileSync(join(jobLogs, `serial-${HOST}.log`), 'utf8');
    const order = [
      `osstest-ramdisk: host ${HOST}`,
      'osstest-image: installed',
      `osstest: ${HOST}: booting from the local disk`,
      'osstest-image: host img-q0, kernel',
      'osstest-image: boot complete',
    ].map((s) => serial.indexOf(s));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(readFileSync(join(jobLogs, `host-events-${HOST}.log`), 'utf8')).toMatch(/ progress first-boot\n/);
  }, 720_000);

  it('the installed system answers ssh with the key the install wrote, root on its disk', async () => {
    const store = await ws.openStore();
    try {
      const s = await RemoteSession.connect({
        host: HOST,
        address: `${SUBNET}.10`,
        privateKey: readFileSync(join(ws.dir, 'keys', 'id_ed25519')),
        hostKeys: new DbHostKeyStore(store),
      });
      const r = await s.exec(
        'hostname; cat /proc/cmdline; findmnt -no SOURCE /; systemctl is-active ssh osstest-boot',
      );
      await s.close();
      const [hostname, cmdline, root, ssh, boot] = r.stdout.split('\n');
      expect(hostname).toBe(HOST);
      expect(cmdline).toMatch(/root=LABEL=osstest-root .*osstest\.installed=image/);
      expect(root).toBe('/dev/vda1');
      expect([ssh, boot]).toEqual(['active', 'active']);
      const pinned = (await store.getHost(HOST))?.props.SshHostKey;
      expect(pinned).toMatch(/^ssh-ed25519 /);
    } finally {
      await store.close();
    }
    // The disk holds the installed system (the qcow2 grew by the root filesystem).
    const info = JSON.parse(
      execFileSync('qemu-img', [
        'info',
        '--force-share',
        '--output=json',
        join(labDir, 'vms', HOST, 'disk.qcow2'),
      ]).toString(),
    ) as { 'actual-size': number };
    expect(info['actual-size']).toBeGreaterThan(100e6);
  }, 60_000);
});
