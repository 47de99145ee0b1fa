/**
 * The virtual lab's boot-services process (dist/src/lab/services-main.js) with each `BootServices`
 * backend that runs a daemon, builtin and dnsmasq, the way `lab up` runs it: inside a namespace with
 * the lab's bridge, reservations from a real sqlite host database. busybox udhcpc in a second namespace
 * plays the host. A host added to the database while the services run gets its reservation (dnsmasq
 * keeps its own copy, synced from the database), and DHCP and TFTP show up as host events.
 * Needs root and a build (npm test builds first); the namespaces are removed whatever happens.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/db/open.js';
import type { Store } from '../../src/db/store.js';
import { prerequisites } from '../helpers/env.js';
import { curlInNs } from '../helpers/veth.js';
import { cliPath } from '../helpers/workspace.js';

const run = promisify(execFile);
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const servicesMain = join(repoRoot, 'dist', 'src', 'lab', 'services-main.js');
const ok = prerequisites('boot services process in a netns', {
  root: true,
  commands: ['ip', 'busybox', 'curl', '/usr/sbin/dnsmasq'],
});

const sfx = randomBytes(3).toString('hex');
const NS_LAB = `ot-dnsm-${sfx}-l`;
const NS_CLIENT = `ot-dnsm-${sfx}-h`;
const IF_LAB = `otd${sfx}v`;
const IF_CLIENT = `otd${sfx}w`;
const SERVER_IP = '10.219.1.1';
const mac = (n: number) => `52:54:00:${sfx.slice(0, 2)}:${sfx.slice(2, 4)}:${(0x10 + n).toString(16)}`;
const hostIp = (n: number) => `10.219.1.${20 + n}`;
const hostName = (n: number) => `ot-dnsm-h${n}`;

async function ip(...args: string[]): Promise<void> {
  await run('ip', args);
}

describe.skipIf(!ok)('lab boot-services process: builtin and dnsmasq backends', () => {
  let work: string;
  let store: Store;
  let child: ChildProcess | undefined;
  let runs = 0;

  beforeAll(async () => {
    if (!existsSync(servicesMain)) throw new Error(`${servicesMain} is missing: run npm run build`);
    work = mkdtempSync(join(tmpdir(), 'osstest-bootsvc-'));
    chmodSync(work, 0o755);
    await ip('netns', 'add', NS_LAB);
    await ip('netns', 'add', NS_CLIENT);
    const lab = ['-n', NS_LAB];
    await ip(...lab, 'link', 'set', 'lo', 'up');
    await ip(...lab, 'link', 'add', 'br0', 'type', 'bridge');
    await ip(...lab, 'addr', 'add', `${SERVER_IP}/24`, 'dev', 'br0');
    await ip(...lab, 'link', 'set', 'br0', 'up');
    await ip(...lab, 'route', 'add', '255.255.255.255/32', 'dev', 'br0');
    await ip(
      'link',
      'add',
      IF_LAB,
      'netns',
      NS_LAB,
      'type',
      'veth',
      'peer',
      'name',
      IF_CLIENT,
      'netns',
      NS_CLIENT,
    );
    await ip(...lab, 'link', 'set', IF_LAB, 'master', 'br0');
    await ip(...lab, 'link', 'set', IF_LAB, 'up');
    await ip('-n', NS_CLIENT, 'link', 'set', 'lo', 'up');
    await ip('-n', NS_CLIENT, 'link', 'set', IF_CLIENT, 'up');
    store = await openStore({ kind: 'sqlite', path: join(work, 'standalone.db') });
    await store.upsertHost({ name: hostName(0), mac: mac(0), ip: hostIp(0) });
    mkdirSync(join(work, 'tftp'), { recursive: true });
    writeFileSync(join(work, 'tftp', 'pxelinux.0'), randomBytes(5000));
  }, 30_000);

  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await store?.close();
    for (const ns of [NS_LAB, NS_CLIENT]) await run('ip', ['netns', 'del', ns]).catch(() => {});
    if (work) rmSync(work, { recursive: true, force: true });
  });

  async function startServices(kind: string): Promise<ChildProcess> {
    const config = join(work, `config-${kind}`);
    writeFileSync(
      config,
      [
        'JobDB Standalone',
        `StandaloneDb ${join(work, 'standalone.db')}`,
        `LabDir ${join(work, `lab-${kind}`)}`,
        `LabNamespace ${NS_LAB}`,
        'LabSubnet 10.219.1.0/24',
        'LabLinkNet 10.219.255.0/30',
        'LabHttpPort 8080',
        `TftpPath ${join(work, 'tftp')}`,
        `WebspaceDir ${join(work, 'webspace')}`,
        `BootServices ${kind}`,
        '',
      ].join('\n'),
    );
    mkdirSync(join(work, `lab-${kind}`), { recursive: true });
    const servicesFile = join(work, `lab-${kind}`, 'services.json');
    const c = spawn('ip', ['netns', 'exec', NS_LAB, process.execPath, servicesMain], {
      cwd: work,
      env: { ...process.env, OSSTEST_CONFIG: config },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    c.stdout?.on('data', (d) => {
      out += d;
    });
    c.stderr?.on('data', (d) => {
      out += d;
    });
    (c as ChildProcess & { output: () => string }).output = () => out;
    const deadline = Date.now() + 20_000;
    while (!existsSync(servicesFile)) {
      if (c.exitCode !== null || Date.now() > deadline) throw new Error(`services did not come up:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return c;
  }

  async function stopServices(c: ChildProcess): Promise<number | null> {
    const exited = new Promise<number | null>((r) => c.once('exit', (code) => r(code)));
    c.kill('SIGTERM');
    return exited;
  }

  async function udhcpc(extra: string[]): Promise<Record<string, string>> {
    const tag = String(runs++);
    const script = join(work, `udhcpc-${tag}.sh`);
    const envFile = join(work, `bound-${tag}.env`);
    writeFileSync(
      script,
      `#!/bin/sh
case "$1" in
  bound|renew)
    ip addr add "$ip/$mask" dev "$interface"
    env | grep -E '^(ip|boot_file|bootfile|siaddr|hostname)=' > "${envFile}.tmp"
    mv "${envFile}.tmp" "${envFile}" ;;
esac
exit 0
`,
    );
    chmodSync(script, 0o755);
    await run('ip', [
      'netns',
      'exec',
      NS_CLIENT,
      'busybox',
      'udhcpc',
      '-i',
      IF_CLIENT,
      '-n',
      '-q',
      '-f',
      '-t',
      '5',
      '-T',
      '1',
      '-s',
      script,
      ...extra,
    ]).catch((e: Error) => {
      throw new Error(`udhcpc got no lease: ${e.message}`);
    });
    const env: Record<string, string> = {};
    for (const line of readFileSync(envFile, 'utf8').split('\n')) {
      const i = line.indexOf('=');
      if (i > 0) env[line.slice(0, i)] = line.slice(i + 1);
    }
    return env;
  }

  const IPXE = ['-x', '0x4d:69505845', '-O', 'bootfile'];

  for (const [i, kind] of [[1, 'builtin'] as const, [2, 'dnsmasq'] as const]) {
    it(`${kind}: reservations from the database, a host added while running, host events`, async () => {
      await ip('-n', NS_CLIENT, 'addr', 'flush', 'dev', IF_CLIENT);
      await ip('-n', NS_CLIENT, 'link', 'set', IF_CLIENT, 'address', mac(0));
      const since = Date.now();
      child = await startServices(kind);
      const output = () => (child as ChildProcess & { output: () => string }).output();
      try {
        const services = JSON.parse(readFileSync(join(work, `lab-${kind}`, 'services.json'), 'utf8'));
        // lab up recognises the services by this pid (`ip netns exec` execs node in place).
        expect(services).toMatchObject({ bootServices: kind, pid: child.pid });
        const first = await udhcpc(IPXE);
        expect(first, output()).toMatchObject({
          ip: hostIp(0),
          bootfile: `http://${SERVER_IP}:8080/host/${hostName(0)}/boot.ipxe`,
        });

        // A host added to the database while the services run.
        // It boots with pxelinux (set before it has a MAC, so no reservation ever sees it without).
        await store.upsertHost({ name: hostName(i) });
        await store.setHostProp(hostName(i), 'BootLoader', 'pxelinux');
        await store.upsertHost({ name: hostName(i), mac: mac(i), ip: hostIp(i) });
        await ip('-n', NS_CLIENT, 'addr', 'flush', 'dev', IF_CLIENT);
        await ip('-n', NS_CLIENT, 'link', 'set', IF_CLIENT, 'address', mac(i));
        // Its iPXE is sent on to pxelinux.0 over TFTP, not to a script.
        const added = await udhcpc(IPXE);
        expect(added, output()).toMatchObject({ ip: hostIp(i), siaddr: SERVER_IP });
        expect(added.bootfile ?? added.boot_file).toBe('pxelinux.0');
        await curlInNs(NS_CLIENT, `tftp://${SERVER_IP}/pxelinux.0`, join(work, `fetched-${kind}`), 20);
        expect(readFileSync(join(work, `fetched-${kind}`))).toEqual(
          readFileSync(join(work, 'tftp', 'pxelinux.0')),
        );

        let events = await store.listHostEvents(hostName(i), { since });
        for (let n = 0; n < 50 && !events.some((e) => e.kind === 'fetch'); n++) {
          await new Promise((r) => setTimeout(r, 100));
          events = await store.listHostEvents(hostName(i), { since });
        }
        expect(events.map((e) => e.kind)).toEqual(expect.arrayContaining(['dhcp', 'fetch']));
        // The same words from either backend: whatever reads host events need not know which ran.
        expect(events.find((e) => e.kind === 'fetch')?.detail).toMatch(
          /^tftp pxelinux\.0 completed 5000 bytes/,
        );
        expect(events.find((e) => e.kind === 'dhcp')?.detail).toMatch(
          new RegExp(`^ack ${hostIp(i).replace(/\./g, '\\.')} to bios boot pxelinux\\.0`),
        );
        const first0 = (await store.listHostEvents(hostName(0), { since })).find((e) => e.kind === 'dhcp');
        expect(first0?.detail).toMatch(
          new RegExp(`^ack \\S+ to ipxe boot http://${SERVER_IP}:8080/host/${hostName(0)}/boot\\.ipxe`),
        );
      } finally {
        const code = await stopServices(child);
        expect(code, output()).toBe(0);
      }
      // The controller reads back which address each MAC got, from the lease file the server wrote.
      const r = await promisify(execFile)(process.execPath, [cliPath, 'lab', 'leases', '--json'], {
        cwd: work,
        env: { ...process.env, OSSTEST_CONFIG: join(work, `config-${kind}`) },
      });
      const got = JSON.parse(r.stdout) as {
        bootServices: string;
        leases: { mac: string; ip: string; host: string }[];
      };
      expect(got.bootServices).toBe(kind);
      expect(got.leases).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ mac: mac(0), ip: hostIp(0), host: hostName(0) }),
          expect.objectContaining({ mac: mac(i), ip: hostIp(i), host: hostName(i) }),
        ]),
      );
    }, 90_000);
  }
});
