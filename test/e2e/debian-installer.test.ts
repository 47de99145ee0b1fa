/**
 * Install method `debian-installer`, the first half, for real: `images update --installer` (Debian's
 * netboot installer package), `lab up` with one QEMU host, `ts-host-install` with InstallMethod
 * debian-installer — the host boots the installer by iPXE, the installer gets its address from our DHCP,
 * fetches its preseed file from our webspace (the controller then switches the host to local boot) and
 * runs the preseed's early_command, which reports `preseed-loaded`. The test stops there: a full install
 * would fetch packages from a Debian mirror, which a host in the lab's namespace cannot reach (and under
 * TCG it would take far longer than CI allows).
 *
 * About 80 s from power-on to the preseed fetch under TCG on a 2-core machine. The installer package
 * (133 MB) is cached in /var/cache/osstest-test-images (OSSTEST_TEST_ROOTFS_IMAGES overrides).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prerequisites } from '../helpers/env.js';
import { cliPath, createWorkspace, type Workspace } from '../helpers/workspace.js';

const ok = prerequisites('debian-installer install', {
  root: true,
  commands: [
    'qemu-system-x86_64',
    'qemu-img',
    'ip',
    '/bin/busybox',
    'dropbearkey',
    'ssh-keygen',
    'apt-get',
    'dpkg-deb',
  ],
});

// Apart from the image install test's lab (10.217.0.0/24), so both can run at once.
const NS = 'ot-img-di';
const SUBNET = '10.217.1';
const IMAGES = process.env.OSSTEST_TEST_ROOTFS_IMAGES || '/var/cache/osstest-test-images';
const HOST = 'imgdi-q0';

describe.skipIf(!ok)('install method debian-installer: the installer boots and fetches its preseed', () => {
  let ws: Workspace;
  let flight: string;
  const job = 'test-di-install';
  const labDir = `/tmp/ot-img/di-${process.pid}`;
  let up = false;
  let child: ChildProcess | undefined;

  const cli = (args: string[], timeoutMs = 150_000) => ws.cliOk(args, timeoutMs);

  beforeAll(async () => {
    mkdirSync(labDir, { recursive: true });
    const h = HOST.replace(/-/g, '_');
    ws = createWorkspace([
      `Images ${IMAGES}`,
      `LabNamespace ${NS}`,
      `LabSubnet ${SUBNET}.0/24`,
      'LabLinkNet 10.217.255.4/30',
      `LabDir ${labDir}`,
      'LabHostPrefix imgdi',
      'LabQemuHosts 1',
      'LabBuildHosts 0',
      // Below about 1 GB the installer stops to say it runs in low-memory mode.
      'LabQemuMemory 1024',
      'LabQemuDisk 2G',
      `LabQemuAccel ${process.env.OSSTEST_TEST_LAB_ACCEL || 'tcg'}`,
      `HostProp_${h}_InstallMethod debian-installer`,
      // Our DHCP hands out no name server; the installer would stop to ask for one.
      `HostProp_${h}_DiKernelArgs netcfg/get_nameservers=${SUBNET}.1`,
      'HostInstallFetchTimeout 240',
      'HostInstallTimeout 600',
    ]);
    ws.configure([`TftpPath ${join(ws.dir, 'tftp')}`, `WebspaceDir ${join(ws.dir, 'webspace')}`]);
    const images = await cli(['images', 'update', '--installer'], 600_000);
    expect(images).toMatch(/installer: (already have|sha256 [0-9a-f]{64} matches)/);
    flight = (await cli(['cs-flight-create', 'play', 'lab'])).trim();
    await cli(['cs-job-create', flight, job, 'build']);
    await cli(['lab', 'up']);
    up = true;
  }, 700_000);

  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGTERM');
    if (ws && up) await ws.cli(['lab', 'down'], {}, 120_000);
    ws?.cleanup();
    rmSync(labDir, { recursive: true, force: true });
  }, 150_000);

  it('boots the installer, which fetches its preseed and runs its early command', async () => {
    let out = '';
    child = spawn(
      process.execPath,
      [cliPath, 'ts', '--flight', flight, '--job', job, 'ts-host-install', `host=${HOST}`],
      { cwd: ws.dir, env: { ...process.env, OSSTEST_CONFIG: ws.configFile, OSSTEST_FLIGHT: '' } },
    );
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const until = Date.now() + 280_000;
    while (!/progress preseed-loaded\n/.test(out) && child.exitCode === null && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 1_000));
    }
    child.kill('SIGTERM');
    const fetched = /host event \+([\d.]+)s fetch http preseed\.cfg \d+ bytes/.exec(out);
    process.stderr.write(`debian-installer: preseed fetched ${fetched?.[1]} s after power-on\n`);
    expect(out).toMatch(/fetch http di-linux \d+ bytes/);
    expect(out).toMatch(/fetch http di-initrd\.gz \d{8} bytes/);
    expect(fetched).not.toBeNull();
    expect(out).toMatch(/boot config: local disk/);
    expect(out).toMatch(/progress preseed-loaded\n/);
    const store = await ws.openStore();
    try {
      expect((await store.getHost(HOST))?.props.SshHostKey).toMatch(/^ssh-ed25519 /);
    } finally {
      await store.close();
    }
  }, 300_000);
});
