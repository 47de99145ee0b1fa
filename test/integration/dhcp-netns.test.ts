/**
 * Our DHCP server against a real DHCP client on a real link: two network namespaces joined by a veth
 * pair (10.214.0.0/24 exists only inside them), the server in one as a child node process, busybox
 * udhcpc in the other. Needs root; the namespaces are removed whatever happens.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DhcpEvent, DhcpStats } from '../../src/provision/dhcp/server.js';
import { prerequisites } from '../helpers/env.js';
import { createVethPair, ip } from '../helpers/veth.js';

const run = promisify(execFile);
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ok = prerequisites('dhcp netns', { root: true, commands: ['ip', 'busybox'] });

const sfx = randomBytes(3).toString('hex');
const NS_SERVER = `osd${sfx}s`;
const NS_CLIENT = `osd${sfx}c`;
const IF_SERVER = `osd${sfx}a`;
const IF_CLIENT = `osd${sfx}b`;
const CLIENT_MAC = `52:54:00:${sfx.slice(0, 2)}:${sfx.slice(2, 4)}:${sfx.slice(4, 6)}`;
const SERVER_IP = '10.214.0.1';
const RESERVED_IP = '10.214.0.50';

/**
 * The server must run inside the namespace, so it is a child process; node 20 cannot run TypeScript,
 * so the DHCP module (and the one module it imports) is transpiled to a temporary directory first.
 */
function buildServerBundle(dir: string): string {
  const files = [
    ...readdirSync(join(repoRoot, 'src/provision/dhcp'))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => `provision/dhcp/${f}`),
    'config/errors.ts',
  ];
  for (const f of files) {
    const out = ts.transpileModule(readFileSync(join(repoRoot, 'src', f), 'utf8'), {
      compilerOptions: {
        module: ts.ModuleKind.ES2022,
        target: ts.ScriptTarget.ES2022,
        verbatimModuleSyntax: true,
      },
      fileName: f,
    });
    const dest = join(dir, f.replace(/\.ts$/, '.js'));
    mkdirSync(dirname(dest), { recursive: true });
    writeFileSync(dest, out.outputText);
  }
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
  // stdout: one JSON object per line (ready, events, logs, stats); stdin: "stats" or "close".
  const runner = join(dir, 'runner.js');
  writeFileSync(
    runner,
    `import { createInterface } from 'node:readline';
import { startDhcpServer, JsonFileLeaseStore } from './provision/dhcp/index.js';
const cfg = JSON.parse(process.argv[2]);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const server = await startDhcpServer({
  ...cfg.options,
  reservations: (mac) => cfg.reservations[mac],
  leaseStore: new JsonFileLeaseStore(cfg.leaseFile),
  log: (line) => out({ log: line }),
});
server.on('event', (event) => out({ event }));
out({ ready: server.address() });
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'stats') out({ stats: server.stats() });
  if (line === 'close') { await server.close(); out({ closed: true }); process.exit(0); }
}
`,
  );
  return runner;
}

type Msg = { ready?: unknown; event?: DhcpEvent; log?: string; stats?: DhcpStats; closed?: boolean };

class ServerProcess {
  readonly msgs: Msg[] = [];
  private listeners: Array<(m: Msg) => void> = [];
  stderr = '';

  constructor(readonly child: ChildProcess) {
    child.stderr?.on('data', (d) => {
      this.stderr += d;
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = JSON.parse(line) as Msg;
      this.msgs.push(m);
      for (const l of this.listeners) l(m);
    });
  }

  waitFor(pred: (m: Msg) => boolean, what: string, timeoutMs = 10_000): Promise<Msg> {
    const seen = this.msgs.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((res, rej) => {
      const t = setTimeout(
        () => rej(new Error(`DHCP server child: no ${what} in ${timeoutMs} ms; stderr: ${this.stderr}`)),
        timeoutMs,
      );
      const l = (m: Msg) => {
        if (!pred(m)) return;
        clearTimeout(t);
        this.listeners = this.listeners.filter((x) => x !== l);
        res(m);
      };
      this.listeners.push(l);
      this.child.once('exit', (code) =>
        rej(new Error(`DHCP server child exited (${code}); stderr: ${this.stderr}`)),
      );
    });
  }

  async stats(): Promise<DhcpStats> {
    const n = this.msgs.length;
    this.child.stdin!.write('stats\n');
    const m = await this.waitFor((x) => x.stats !== undefined && this.msgs.indexOf(x) >= n, 'stats');
    return m.stats!;
  }
}

describe.skipIf(!ok)('DHCP server with busybox udhcpc across a veth pair', () => {
  let work: string;
  let server: ServerProcess | undefined;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'osstest-dhcp-netns-'));
    await createVethPair({
      serverNs: NS_SERVER,
      clientNs: NS_CLIENT,
      serverIf: IF_SERVER,
      clientIf: IF_CLIENT,
      clientMac: CLIENT_MAC,
      serverIp: SERVER_IP,
    });
    const runner = buildServerBundle(join(work, 'bundle'));
    const cfg = {
      options: {
        serverIp: SERVER_IP,
        subnetMask: '255.255.255.0',
        router: SERVER_IP,
        dnsServers: [SERVER_IP],
        domain: 'osd.test',
        leaseTime: 600,
        boot: { ipxeScript: `http://${SERVER_IP}/boot.ipxe` },
      },
      reservations: { [CLIENT_MAC]: { ip: RESERVED_IP, hostname: 'udhcpc-host' } },
      leaseFile: join(work, 'leases.json'),
    };
    const child = spawn('ip', ['netns', 'exec', NS_SERVER, process.execPath, runner, JSON.stringify(cfg)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    server = new ServerProcess(child);
    await server.waitFor((m) => m.ready !== undefined, 'ready line');
  });

  afterAll(async () => {
    if (server && server.child.exitCode === null) {
      server.child.stdin!.write('close\n');
      const exited = new Promise((r) => server!.child.once('exit', r));
      const t = setTimeout(() => server!.child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    }
    // Deleting a namespace also deletes the veth end in it, and with it the peer.
    for (const ns of [NS_SERVER, NS_CLIENT]) await run('ip', ['netns', 'del', ns]).catch(() => {});
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /**
   * One udhcpc run: obtain a lease and configure it, then SIGTERM, on which (-R) udhcpc releases the
   * lease. (With -q it would quit before reaching the bound state, and 1.35 then sends no RELEASE.)
   */
  async function udhcpc(tag: string): Promise<Record<string, string>> {
    const script = join(work, `udhcpc-${tag}.sh`);
    const envFile = join(work, `bound-${tag}.env`);
    writeFileSync(
      script,
      `#!/bin/sh
# udhcpc calls this with deconfig, bound, renew, ...: record the lease and configure it, so that the
# RELEASE can be sent from the leased address.
case "$1" in
  deconfig) ip addr flush dev "$interface" ;;
  bound|renew)
    ip addr add "$ip/$mask" dev "$interface"
    env | grep -E '^(ip|subnet|router|dns|domain|hostname|serverid|lease|boot_file|siaddr|mask)=' > "${envFile}.tmp"
    mv "${envFile}.tmp" "${envFile}" ;;
esac
exit 0
`,
    );
    chmodSync(script, 0o755);
    const args = ['-i', IF_CLIENT, '-n', '-f', '-R', '-t', '4', '-T', '1', '-s', script];
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
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      const deadline = Date.now() + 15_000;
      while (!existsSync(envFile)) {
        if (child.exitCode !== null || Date.now() > deadline)
          throw new Error(`udhcpc got no lease:\n${output}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    expect(output).toMatch(/unicasting a release of 10\.214\.0\.50 to 10\.214\.0\.1/);
    const env: Record<string, string> = {};
    for (const line of readFileSync(envFile, 'utf8').split('\n')) {
      const i = line.indexOf('=');
      if (i > 0) env[line.slice(0, i)] = line.slice(i + 1);
    }
    return env;
  }

  it('udhcpc gets the reserved address and options; its RELEASE is counted', async () => {
    const s = server!;
    // No route for 255.255.255.255 in the server's namespace: the server falls back to 10.214.0.255.
    const env = await udhcpc('directed');
    expect(env).toMatchObject({
      ip: RESERVED_IP,
      subnet: '255.255.255.0',
      router: SERVER_IP,
      dns: SERVER_IP,
      domain: 'osd.test',
      hostname: 'udhcpc-host',
      serverid: SERVER_IP,
      lease: '600',
      siaddr: SERVER_IP,
      boot_file: 'pxelinux.0',
    });
    await s.waitFor((m) => m.event?.type === 'release', 'RELEASE event');
    expect(s.msgs.some((m) => m.log?.includes('broadcasting to 10.214.0.255 instead'))).toBe(true);
    let st = await s.stats();
    expect(st).toMatchObject({ offers: 1, acks: 1, releases: 1, directedBroadcasts: 2, errors: 0 });
    expect(s.msgs.find((m) => m.event?.type === 'release')?.event).toMatchObject({
      mac: CLIENT_MAC,
      ip: RESERVED_IP,
      applied: true,
    });

    // With the route a lab sets up, replies go to 255.255.255.255 itself.
    await ip('-n', NS_SERVER, 'route', 'add', '255.255.255.255/32', 'dev', IF_SERVER);
    expect((await udhcpc('limited')).ip).toBe(RESERVED_IP);
    await s.waitFor(
      (m) => m.event?.type === 'release' && s.msgs.filter((x) => x.event?.type === 'release').length === 2,
      'second RELEASE',
    );
    st = await s.stats();
    expect(st).toMatchObject({ offers: 2, acks: 2, releases: 2, directedBroadcasts: 2, errors: 0 });
    expect(st.dropped).toEqual({ malformed: 0, notForUs: 0, noAddress: 0, ignored: 0, overload: 0 });
  });
});
