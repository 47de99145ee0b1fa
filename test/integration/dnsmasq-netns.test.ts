/**
 * The dnsmasq boot-services backend against real clients on a real link: two network namespaces joined
 * by a veth pair (10.219.0.0/24 exists only inside them), dnsmasq (Debian's dnsmasq-base) in one,
 * busybox udhcpc and curl in the other. Checks the reservations and boot files we configure, a reload
 * after a host is added, the lease file read back, and a TFTP fetch from dnsmasq. Needs root; the
 * namespaces are removed whatever happens.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type DnsmasqEvent,
  type DnsmasqHost,
  DnsmasqService,
} from '../../src/provision/boot-services/dnsmasq.js';
import { parseDnsmasqLeases } from '../../src/provision/boot-services/leases.js';
import { prerequisites } from '../helpers/env.js';
import { createVethPair, curlInNs, ip } from '../helpers/veth.js';

const run = promisify(execFile);
const DNSMASQ = '/usr/sbin/dnsmasq';
const ok = prerequisites('dnsmasq netns', { root: true, commands: ['ip', 'busybox', 'curl', DNSMASQ] });

const sfx = randomBytes(3).toString('hex');
const NS_SERVER = `ot-dnsm-${sfx}-s`;
const NS_CLIENT = `ot-dnsm-${sfx}-c`;
const IF_SERVER = `otd${sfx}a`;
const IF_CLIENT = `otd${sfx}b`;
const MAC_A = `52:54:00:${sfx.slice(0, 2)}:${sfx.slice(2, 4)}:a0`;
const MAC_B = `52:54:00:${sfx.slice(0, 2)}:${sfx.slice(2, 4)}:b0`;
const SERVER_IP = '10.219.0.1';
const IP_A = '10.219.0.50';
const IP_B = '10.219.0.51';
const SCRIPT_A = `http://${SERVER_IP}:8080/host/dnsm-a/boot.ipxe`;

describe.skipIf(!ok)('dnsmasq boot services with udhcpc and curl across a veth pair', () => {
  let work: string;
  let tftpRoot: string;
  let svc: DnsmasqService | undefined;
  const events: DnsmasqEvent[] = [];
  const logLines: string[] = [];
  const hostA: DnsmasqHost = { name: 'dnsm-a', mac: MAC_A, ip: IP_A, loader: 'ipxe', ipxeScript: SCRIPT_A };
  const hostB: DnsmasqHost = {
    name: 'dnsm-b.example',
    mac: MAC_B,
    ip: IP_B,
    loader: 'pxelinux',
    ipxeScript: `http://${SERVER_IP}:8080/host/dnsm-b/boot.ipxe`,
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'osstest-dnsmasq-netns-'));
    tftpRoot = join(work, 'tftp');
    mkdirSync(tftpRoot);
    await createVethPair({
      serverNs: NS_SERVER,
      clientNs: NS_CLIENT,
      serverIf: IF_SERVER,
      clientIf: IF_CLIENT,
      clientMac: MAC_A,
      serverIp: SERVER_IP,
    });
    // dnsmasq must run inside the server's namespace: `ip netns exec` execs it in place, so the pid and
    // the signals we send are dnsmasq's own.
    const wrapper = join(work, 'dnsmasq-in-ns');
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${NS_SERVER} ${DNSMASQ} "$@"\n`);
    chmodSync(wrapper, 0o755);
    svc = new DnsmasqService({
      binary: wrapper,
      stateDir: join(work, 'dnsmasq'),
      interface: IF_SERVER,
      serverIp: SERVER_IP,
      netmask: '255.255.255.0',
      router: SERVER_IP,
      tftpRoot,
      leaseFile: join(work, 'dnsmasq.leases'),
      leaseTimeSecs: 600,
      log: (line) => logLines.push(line),
      onEvent: (ev) => events.push(ev),
    });
    await svc.start([hostA]);
  }, 30_000);

  afterAll(async () => {
    await svc?.close();
    if (process.env.OSSTEST_TEST_DEBUG) process.stderr.write(`${logLines.join('\n')}\n`);
    for (const ns of [NS_SERVER, NS_CLIENT]) await run('ip', ['netns', 'del', ns]).catch(() => {});
    if (work) rmSync(work, { recursive: true, force: true });
  });

  let runs = 0;
  /** One udhcpc run (-q: quit once bound, keeping the lease); the variables its script saw, or null. */
  async function udhcpc(extra: string[], expectLease = true): Promise<Record<string, string> | null> {
    const tag = String(runs++);
    const script = join(work, `udhcpc-${tag}.sh`);
    const envFile = join(work, `bound-${tag}.env`);
    writeFileSync(
      script,
      `#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface" ;;
  bound|renew)
    ip addr add "$ip/$mask" dev "$interface"
    env | grep -E '^(ip|subnet|router|serverid|lease|boot_file|bootfile|siaddr|hostname|mask)=' > "${envFile}.tmp"
    mv "${envFile}.tmp" "${envFile}" ;;
esac
exit 0
`,
    );
    chmodSync(script, 0o755);
    const args = [
      '-i',
      IF_CLIENT,
      '-n',
      '-q',
      '-f',
      '-t',
      expectLease ? '4' : '2',
      '-T',
      '1',
      '-s',
      script,
      ...extra,
    ];
    const child = spawn('ip', ['netns', 'exec', NS_CLIENT, 'busybox', 'udhcpc', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => {
      output += d;
    });
    child.stderr.on('data', (d) => {
      output += d;
    });
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    if (!existsSync(envFile)) {
      if (expectLease) throw new Error(`udhcpc got no lease (exit ${code}):\n${output}`);
      return null;
    }
    const env: Record<string, string> = {};
    for (const line of readFileSync(envFile, 'utf8').split('\n')) {
      const i = line.indexOf('=');
      if (i > 0) env[line.slice(0, i)] = line.slice(i + 1);
    }
    await ip('-n', NS_CLIENT, 'addr', 'flush', 'dev', IF_CLIENT);
    return env;
  }

  // What firmware says about itself: iPXE's user class, and option 93 (client architecture).
  const IPXE = ['-x', '0x4d:69505845', '-O', 'bootfile'];
  const UEFI_X64 = ['-x', '0x5d:0007'];
  const BIOS = ['-x', '0x5d:0000'];

  it('a reserved MAC gets its address and the boot file for its kind of client', async () => {
    const bios = await udhcpc(BIOS);
    expect(bios).toMatchObject({
      ip: IP_A,
      router: SERVER_IP,
      serverid: SERVER_IP,
      siaddr: SERVER_IP,
      boot_file: 'pxelinux.0',
    });
    expect(bios?.bootfile).toBeUndefined();
    // No option 93 at all is BIOS too.
    expect(await udhcpc([])).toMatchObject({ ip: IP_A, boot_file: 'pxelinux.0' });
    expect(await udhcpc(UEFI_X64)).toMatchObject({ ip: IP_A, boot_file: 'ipxe.efi', siaddr: SERVER_IP });
    // iPXE on a host that boots with iPXE: the URL of its script, nothing over TFTP.
    const ipxe = await udhcpc(IPXE);
    expect(ipxe).toMatchObject({ ip: IP_A, bootfile: SCRIPT_A });
    expect(ipxe?.boot_file).toBeUndefined();
    // In the order of the four exchanges above: what kind of client dnsmasq saw in each.
    expect(
      events.flatMap((e) => (e.type === 'ack' && e.mac === MAC_A && e.ip === IP_A ? [e.clientKind] : [])),
    ).toEqual(['bios', 'bios', 'uefi', 'ipxe']);
  });

  it('an unknown MAC gets nothing until its host is added; after the reload it gets its reservation', async () => {
    await ip('-n', NS_CLIENT, 'link', 'set', IF_CLIENT, 'address', MAC_B);
    expect(await udhcpc([], false)).toBeNull();
    expect(await svc!.setHosts([hostA, hostB])).toBe(true);
    // The same set again changes nothing and sends no signal.
    expect(await svc!.setHosts([hostB, hostA])).toBe(false);
    expect(svc!.stats()).toMatchObject({ reloads: 1, hosts: 2 });
    expect(await udhcpc(BIOS)).toMatchObject({ ip: IP_B, hostname: 'dnsm-b', boot_file: 'pxelinux.0' });
    // A pxelinux host's iPXE is sent on to pxelinux.0, not to a script.
    const ipxe = await udhcpc(IPXE);
    // (dnsmasq puts it in option 67 rather than the file field when the client asks for option 67, as
    // iPXE does; iPXE reads either.)
    expect(ipxe).toMatchObject({ ip: IP_B, siaddr: SERVER_IP });
    expect(ipxe?.bootfile ?? ipxe?.boot_file).toBe('pxelinux.0');
  });

  it('the leases are read back from the lease file', async () => {
    let leases = await svc!.leases();
    for (let i = 0; i < 50 && leases.length < 2; i++) {
      await new Promise((r) => setTimeout(r, 100));
      leases = await svc!.leases();
    }
    expect(leases.map((l) => [l.mac, l.ip])).toEqual(
      expect.arrayContaining([
        [MAC_A, IP_A],
        [MAC_B, IP_B],
      ]),
    );
    expect(leases.find((l) => l.mac === MAC_B)?.hostname).toBe('dnsm-b');
    for (const l of leases) expect(l.expires).toBeGreaterThan(Date.now());
    const raw = parseDnsmasqLeases(readFileSync(join(work, 'dnsmasq.leases'), 'utf8'));
    expect(raw.skipped).toEqual([]);
  });

  it('dnsmasq killed under us is started again and keeps answering', async () => {
    const before = svc!.stats().pid!;
    process.kill(before, 'SIGKILL');
    for (let i = 0; i < 100 && (svc!.stats().pid === before || svc!.stats().pid === undefined); i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(svc!.stats()).toMatchObject({ crashes: 1, pid: expect.any(Number) });
    expect(svc!.stats().pid).not.toBe(before);
    expect(logLines.some((l) => l.includes('died unexpectedly; restarting it'))).toBe(true);
    expect(await udhcpc(BIOS)).toMatchObject({ ip: IP_B, boot_file: 'pxelinux.0' });
  });

  it('a dnsmasq that cannot start is a clear error, with its own words', async () => {
    const base = {
      stateDir: join(work, 'dnsmasq-bad'),
      serverIp: SERVER_IP,
      netmask: '255.255.255.0',
      tftpRoot,
      leaseFile: join(work, 'bad.leases'),
      leaseTimeSecs: 600,
      log: () => {},
    };
    await expect(
      new DnsmasqService({ ...base, binary: join(work, 'no-such-dnsmasq'), interface: IF_SERVER }).start([]),
    ).rejects.toThrow(/did not start: spawn .*no-such-dnsmasq ENOENT/);
    await expect(
      new DnsmasqService({ ...base, binary: join(work, 'dnsmasq-in-ns'), interface: 'nosuchif0' }).start([]),
    ).rejects.toThrow(/did not start:[\s\S]*nosuchif0/);
  });

  it('serves the TFTP root: curl fetches a boot file; a missing one is an error', async () => {
    const data = randomBytes(200_000);
    writeFileSync(join(tftpRoot, 'pxelinux.0'), data);
    const out = join(work, 'fetched');
    await ip('-n', NS_CLIENT, 'addr', 'add', `${IP_B}/24`, 'dev', IF_CLIENT);
    await curlInNs(NS_CLIENT, `tftp://${SERVER_IP}/pxelinux.0`, out, 20);
    expect(readFileSync(out).equals(data)).toBe(true);
    await expect(curlInNs(NS_CLIENT, `tftp://${SERVER_IP}/nope`, out, 10)).rejects.toThrow();
    // Names that climb out of the root are refused.
    writeFileSync(join(work, 'secret'), 'x');
    await expect(curlInNs(NS_CLIENT, `tftp://${SERVER_IP}/../secret`, out, 10)).rejects.toThrow();
    for (let i = 0; i < 50 && !events.some((e) => e.type === 'tftp' && e.outcome === 'failed'); i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(events).toContainEqual(
      expect.objectContaining({
        type: 'tftp',
        outcome: 'sent',
        ip: IP_B,
        file: join(tftpRoot, 'pxelinux.0'),
      }),
    );
    expect(events.some((e) => e.type === 'tftp' && e.outcome === 'failed' && e.ip === IP_B)).toBe(true);
  });
});
