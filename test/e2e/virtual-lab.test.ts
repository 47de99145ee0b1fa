/**
 * The virtual lab end to end, through the CLI as a user runs it: `images update` (Debian's kernel
 * package), `lab up` with two QEMU test hosts and one netns build host, `ts-host-install` (ramdisk) on
 * both QEMU hosts at once from power-off to ssh through our own DHCP, TFTP and HTTP servers (lab-q0 boots
 * by iPXE over HTTP, lab-q1 by pxelinux over TFTP), commands over ssh pinned to the key each install
 * made, a reboot and a power cycle, the serial logs and host events in the job's logs, and `lab down`
 * leaving no process, tap, link or namespace behind.
 *
 * OSSTEST_TEST_BOOT_SERVICES=dnsmasq runs it all with the dnsmasq boot-services backend instead of ours.
 * Software emulation (TCG) unless OSSTEST_TEST_LAB_ACCEL=kvm. The kernel package is kept between runs in
 * /var/tmp/osstest-e2e-images (OSSTEST_TEST_IMAGES overrides), so a re-run does not download it again.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listNetnsHosts } from '../../src/lab/netns-host.js';
import { HostKeyMismatchError, RemoteSession } from '../../src/remote/session.js';
import { DbHostKeyStore } from '../../src/testcase/hosts.js';
import { prerequisites } from '../helpers/env.js';
import { createWorkspace, type Workspace } from '../helpers/workspace.js';

const ok = prerequisites('virtual lab', {
  root: true,
  commands: [
    'qemu-system-x86_64',
    'ip',
    '/usr/sbin/sshd',
    '/bin/busybox',
    '/usr/sbin/dropbear',
    'dropbearkey',
    'apt-get',
    'dpkg-deb',
  ],
});

// A network of its own, so a lab someone has up on this machine is not disturbed.
const third = 16 + (process.pid % 200);
const NS = `osstest-e2e-${process.pid}`;
const SUBNET = `10.215.${third}`;
const IMAGES = process.env.OSSTEST_TEST_IMAGES || '/var/tmp/osstest-e2e-images';

interface Status {
  up: boolean;
  services: { pid: number; running: boolean } | null;
  qemuHosts: { name: string; ip: string; power: string; serialLog: string }[];
  buildHosts: { name: string; address: string; labIp: string }[];
  pids: number[];
}

/** Processes whose command line mentions the workspace (QEMU, boot services, radvd, sshd of build hosts). */
function processesOf(dir: string): string[] {
  const out: string[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      if (/\) Z /.test(stat)) continue;
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(dir) || cmd.includes(NS)) out.push(`${p}: ${cmd}`);
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

describe.skipIf(!ok)('virtual lab: lab up, ts-host-install (ramdisk) on QEMU hosts, lab down', () => {
  let ws: Workspace;
  let flight: string;
  const job = 'test-lab-e2e';
  let down = false;

  const cli = (args: string[], timeoutMs = 150_000) => ws.cliOk(args, timeoutMs);
  const status = async () => JSON.parse(await cli(['lab', 'status', '--json'])) as Status;
  const jobLogs = () => join(ws.dir, 'logs', flight, job);

  beforeAll(async () => {
    ws = createWorkspace([
      `Images ${IMAGES}`,
      `LabNamespace ${NS}`,
      `LabSubnet ${SUBNET}.0/24`,
      `LabLinkNet 10.215.254.${4 * (third % 60)}/30`,
      'LabQemuHosts 2',
      'LabBuildHosts 1',
      `LabQemuAccel ${process.env.OSSTEST_TEST_LAB_ACCEL || 'tcg'}`,
      'HostProp_lab_q1_BootLoader pxelinux',
      'HostInstallTimeout 150',
      'HostRebootTimeout 150',
      ...(process.env.OSSTEST_TEST_BOOT_SERVICES
        ? [`BootServices ${process.env.OSSTEST_TEST_BOOT_SERVICES}`]
        : []),
    ]);
    // The workspace's own directories, named now that it exists.
    ws.configure([
      `LabDir ${join(ws.dir, 'lab')}`,
      `TftpPath ${join(ws.dir, 'tftp')}`,
      `WebspaceDir ${join(ws.dir, 'webspace')}`,
    ]);
    const images = await cli(['images', 'update'], 300_000);
    expect(images).toMatch(
      /sha256 [0-9a-f]{64} matches apt's index|already have linux-image-\S+ \S+ \(sha256/,
    );
    flight = (await cli(['cs-flight-create', 'play', 'lab'])).trim();
    await cli(['cs-job-create', flight, job, 'build']);
  }, 360_000);

  afterAll(async () => {
    if (ws && !down) await ws.cli(['lab', 'down'], {}, 120_000);
    ws?.cleanup();
  }, 150_000);

  it('lab up: namespace, boot services, two QEMU hosts (off) and a build host, registered', async () => {
    const up = await cli(['lab', 'up']);
    expect(up).toContain(`namespace ${NS}: bridge br0 ${SUBNET}.1/24`);
    const s = await status();
    expect(s.up).toBe(true);
    expect(s.services?.running).toBe(true);
    expect(s.qemuHosts.map((h) => [h.name, h.ip, h.power])).toEqual([
      ['lab-q0', `${SUBNET}.10`, 'off'],
      ['lab-q1', `${SUBNET}.11`, 'off'],
    ]);
    expect(s.buildHosts.map((b) => [b.name, b.labIp])).toEqual([['lab-b0', `${SUBNET}.100`]]);
    const hosts = JSON.parse(await cli(['hosts', 'list', '--json'])) as {
      name: string;
      mac: string;
      flags: string[];
      props: Record<string, string>;
    }[];
    const q0 = hosts.find((h) => h.name === 'lab-q0')!;
    expect(q0.mac).toBe(`52:54:00:d7:${third.toString(16).padStart(2, '0')}:0a`);
    expect(q0.flags).toEqual(expect.arrayContaining(['purpose-test', 'arch-amd64']));
    expect(q0.props).toMatchObject({
      InstallMethod: 'ramdisk',
      PowerMethod: expect.stringMatching(/^qemu \//),
      SerialMethod: expect.stringMatching(/^qemu \//),
    });
    expect(hosts.find((h) => h.name === 'lab-b0')?.flags).toContain('purpose-build');
    // A second `up` is refused while the lab is up.
    const again = await ws.cli(['lab', 'up']);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/already up/);
  }, 60_000);

  it('ts-host-install brings both QEMU hosts from power-off to ssh via our DHCP, TFTP and HTTP', async () => {
    const t0 = Date.now();
    const [q0, q1] = await Promise.all(
      ['lab-q0', 'lab-q1'].map((h) =>
        cli(['ts', '--flight', flight, '--job', job, 'ts-host-install', `host=${h}`], 200_000),
      ),
    );
    const seconds = (o: string) => Number(/answering ssh ([\d.]+) s after power-on/.exec(o)?.[1]);
    process.stderr.write(
      `virtual lab: power-on to ssh ${seconds(q0!)} s (iPXE, HTTP) and ${seconds(q1!)} s (pxelinux, TFTP), both in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`,
    );
    // lab-q0: iPXE fetched its script, kernel and initrds over HTTP.
    expect(q0).toMatch(
      /host event \+[\d.]+s dhcp ack \S+ to ipxe boot http:\/\/\S+\/host\/lab-q0\/boot\.ipxe/,
    );
    expect(q0).toMatch(/fetch http vmlinuz 8\d{6} bytes/);
    // lab-q1: pxelinux over TFTP, kernel included.
    expect(q1).toMatch(/dhcp ack \S+ to bios boot pxelinux\.0/);
    expect(q1).toMatch(/fetch tftp pxelinux\.0 completed/);
    expect(q1).toMatch(/fetch tftp hosts\/lab-q1\/vmlinuz completed 8\d{6} bytes/);
    for (const out of [q0!, q1!]) {
      expect(out).toMatch(/progress booted/);
      expect(out).toMatch(/progress ssh-ready/);
      expect(out).toMatch(/running kernel \d+\.\d+/);
    }
    // Serial logs and host events are in the job's logs.
    for (const h of ['lab-q0', 'lab-q1']) {
      const serial = readFileSync(join(jobLogs(), `serial-${h}.log`), 'utf8');
      expect(serial).toContain('iPXE');
      expect(serial).toContain(`osstest-ramdisk: host ${h}`);
      // DHCP waited for the link (a request sent before it is lost).
      expect(serial).toContain('osstest-ramdisk: link up on eth0');
      expect(serial).toContain('osstest-ramdisk: boot complete');
      const ev = readFileSync(join(jobLogs(), `host-events-${h}.log`), 'utf8');
      expect(ev).toMatch(/ dhcp ack /);
      expect(ev).toMatch(/ progress ssh-ready\n/);
    }
    const store = await ws.openStore();
    try {
      const rv = await store.listRunvars(flight, job);
      expect(rv.find((r) => r.name === 'host_install_method')?.val).toBe('ramdisk');
    } finally {
      await store.close();
    }
  }, 220_000);

  it('ssh reaches each host with the key its install made; another key is refused', async () => {
    const store = await ws.openStore();
    const key = readFileSync(join(ws.dir, 'keys', 'id_ed25519'));
    try {
      for (const [h, i] of [
        ['lab-q0', 10],
        ['lab-q1', 11],
      ] as const) {
        const s = await RemoteSession.connect({
          host: h,
          address: `${SUBNET}.${i}`,
          privateKey: key,
          hostKeys: new DbHostKeyStore(store),
        });
        const r = await s.exec(
          'hostname; cat /proc/cmdline; ls /lib/modules; dmesg; ip -6 -o addr show dev eth0',
        );
        await s.close();
        expect(r.stdout).toContain(`${h}\n`);
        expect(r.stdout).toContain(`osstest.host=${h}`);
        expect(r.stdout).toContain('e1000.ko');
        // The kernel skipped its crypto self-tests (cryptomgr.notests, for boot time).
        expect(r.stdout).toContain('alg: self-tests disabled');
        // rcS gave eth0 its link-local address before the link was up: the kernel's own, so the
        // kernel added no second one.
        expect(r.stdout.match(/ inet6 fe80::/g)).toHaveLength(1);
        expect(r.stdout).not.toContain('dadfailed');
      }
      // Pinned: lab-q1 presenting lab-q0's key (as an impostor would) is refused.
      const q0key = (await store.getHost('lab-q0'))!.props.SshHostKey!;
      const fake = { get: async () => q0key, record: async () => {} };
      await expect(
        RemoteSession.connect({ host: 'lab-q1', address: `${SUBNET}.11`, privateKey: key, hostKeys: fake }),
      ).rejects.toBeInstanceOf(HostKeyMismatchError);
    } finally {
      await store.close();
    }
  }, 60_000);

  it("the build host reaches test hosts over the bridge; the webspace refuses it a test host's files", async () => {
    const s = await status();
    const b = s.buildHosts[0]!;
    const store = await ws.openStore();
    try {
      const sess = await RemoteSession.connect({
        host: 'lab-b0',
        address: b.address,
        privateKey: readFileSync(join(ws.dir, 'keys', 'id_ed25519')),
        hostKeys: new DbHostKeyStore(store),
      });
      const r = await sess.exec(
        `timeout 5 bash -c 'exec 3<>/dev/tcp/${SUBNET}.10/22; head -c 7 <&3'; echo; ` +
          `timeout 5 bash -c 'exec 3<>/dev/tcp/${SUBNET}.1/80; printf "GET /host/lab-q0/host.cpio.gz HTTP/1.0\\r\\n\\r\\n" >&3; head -n 1 <&3'`,
        { allowFailure: true },
      );
      await sess.close();
      expect(r.stdout).toContain('SSH-2.0');
      expect(r.stdout).toMatch(/HTTP\/1\.1 403/);
      const refused = (await store.listHostEvents('lab-q0')).filter((e) => e.kind === 'refused');
      expect(refused.at(-1)?.detail).toBe(`fetch host.cpio.gz from ${SUBNET}.100`);
    } finally {
      await store.close();
    }
  }, 60_000);

  it('ts-host-reboot and ts-host-powercycle: down, up, a new boot', async () => {
    const [reboot, cycle] = await Promise.all([
      cli(['ts', '--flight', flight, '--job', job, 'ts-host-reboot', 'host=lab-q0'], 200_000),
      cli(['ts', '--flight', flight, '--job', job, 'ts-host-powercycle', 'host=lab-q1'], 200_000),
    ]);
    expect(reboot).toMatch(/host lab-q0 is down/);
    expect(reboot).toMatch(/host lab-q0 back after [\d.]+ s \(boot [0-9a-f-]{36}\)/);
    expect(cycle).toMatch(/power cycling lab-q1 with qemu/);
    expect(cycle).toMatch(/host lab-q1 back after [\d.]+ s/);
    // The job's serial log runs on across testcases: two boots of lab-q0, with the shutdown between.
    const serial = readFileSync(join(jobLogs(), 'serial-lab-q0.log'), 'utf8');
    expect(serial.split('osstest-ramdisk: boot complete').length - 1).toBe(2);
    expect(serial).toContain('osstest-ramdisk: shutting down');
  }, 220_000);

  it('ts-logs-capture copies what the console printed since, into the same serial log', async () => {
    const store = await ws.openStore();
    try {
      const s = await RemoteSession.connect({
        host: 'lab-q0',
        address: `${SUBNET}.10`,
        privateKey: readFileSync(join(ws.dir, 'keys', 'id_ed25519')),
        hostKeys: new DbHostKeyStore(store),
      });
      await s.exec('echo "e2e: printed between testcases" > /dev/console');
      await s.close();
    } finally {
      await store.close();
    }
    const out = await cli(
      ['ts', '--flight', flight, '--job', job, 'ts-logs-capture', 'host=lab-q0'],
      120_000,
    );
    expect(out).toContain('serial console of lab-q0 up to now');
    expect(readFileSync(join(jobLogs(), 'serial-lab-q0.log'), 'utf8')).toContain(
      'e2e: printed between testcases',
    );
  }, 150_000);

  it('lab down leaves no process, tap, link, namespace or host behind', async () => {
    const before = await status();
    const buildNs = listNetnsHosts()
      .filter((l) => l.stateDir.startsWith(ws.dir))
      .map((l) => l.namespace);
    expect(buildNs).toHaveLength(1);
    await cli(['lab', 'down']);
    down = true;
    const namespaces = execFileSync('ip', ['netns', 'list']).toString();
    expect(namespaces).not.toContain(NS);
    for (const n of buildNs) expect(namespaces.split('\n').map((l) => l.split(' ')[0])).not.toContain(n);
    const links = execFileSync('ip', ['-o', 'link']).toString();
    const routes = execFileSync('ip', ['route']).toString();
    expect(routes).not.toContain(`${SUBNET}.0/24`);
    expect(listNetnsHosts().filter((l) => l.stateDir.startsWith(ws.dir))).toEqual([]);
    // Processes: gone (a killed QEMU may be a zombie for a moment until init reaps it).
    let left = processesOf(ws.dir);
    for (let i = 0; i < 50 && left.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = processesOf(ws.dir);
    }
    expect(left).toEqual([]);
    expect(existsSync(`/proc/${before.services!.pid}/cmdline`) && processesOf(ws.dir).length > 0).toBe(false);
    // The root end of the lab's link is gone (its name is derived from the namespace's).
    const rootIf = `osl${createHash('sha256').update(NS).digest('hex').slice(0, 8)}`;
    expect(links).not.toContain(`${rootIf}@`);
    const s = await status();
    expect(s.up).toBe(false);
    expect(s.qemuHosts).toEqual([]);
    const hosts = JSON.parse(await cli(['hosts', 'list', '--json'])) as { name: string }[];
    expect(hosts.map((h) => h.name)).toEqual([]);
    // Down again is fine (nothing to do).
    await cli(['lab', 'down']);
  }, 90_000);
});
