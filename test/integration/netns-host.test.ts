/**
 * NetnsHost and its slot allocation: names and subnets, allocation racing across real processes,
 * the namespace's network and private home, destroy, and the reaping of a dead owner's host.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupStaleNetns, listNetnsHosts, NetnsHost } from '../../src/lab/netns-host.js';
import { NETNS_RUN_DIR, slotFor } from '../../src/lab/netns-names.js';
import { RemoteSession } from '../../src/remote/session.js';
import {
  createTestHosts,
  netnsPrerequisites,
  sshTarget,
  type TestHost,
  testClientKey,
} from '../helpers/netns.js';

const run = promisify(execFile);
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ok = netnsPrerequisites();

/** A process that exists and is not a zombie waiting to be reaped. */
function alive(pid: number): boolean {
  try {
    return !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'osstest-netnstest-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('slots', () => {
  it('carve 10.213.0.0/16 into /30s with short interface names', () => {
    expect(slotFor(0)).toMatchObject({
      rootAddress: '10.213.0.1',
      hostAddress: '10.213.0.2',
      namespace: 'osstest-h0',
    });
    expect(slotFor(64)).toMatchObject({ rootAddress: '10.213.1.1', hostAddress: '10.213.1.2' });
    const last = slotFor(16383);
    expect(last).toMatchObject({ rootAddress: '10.213.255.253', hostAddress: '10.213.255.254' });
    expect(last.vethRoot.length).toBeLessThanOrEqual(15);
    expect(() => slotFor(16384)).toThrow(/outside 0\.\.16383/);
  });

  it('are never handed out twice, even to processes racing for them', async () => {
    // The allocator is run as it is, in several real processes at once: transpiled (Node 20 cannot load
    // TypeScript) into a temp dir, against a private run dir.
    const dir = join(tmp, 'alloc');
    mkdirSync(dir, { recursive: true });
    const src = readFileSync(join(repoRoot, 'src/lab/netns-names.ts'), 'utf8');
    const js = ts.transpileModule(src, {
      compilerOptions: {
        module: ts.ModuleKind.ES2022,
        target: ts.ScriptTarget.ES2022,
        verbatimModuleSyntax: true,
      },
    }).outputText;
    writeFileSync(join(dir, 'netns-names.mjs'), js);
    const runDir = join(dir, 'run');
    writeFileSync(
      join(dir, 'grab.mjs'),
      `import { acquireSlot } from './netns-names.mjs';
const got = [];
for (let i = 0; i < 25; i++) got.push(acquireSlot({ name: 'x' + i, stateDir: '/nowhere' }, ${JSON.stringify(runDir)}).slot.index);
process.stdout.write(JSON.stringify(got));`,
    );
    const outs = await Promise.all(Array.from({ length: 4 }, () => run('node', [join(dir, 'grab.mjs')])));
    const all = outs.flatMap((o) => JSON.parse(o.stdout) as number[]);
    expect(all).toHaveLength(100);
    expect(new Set(all).size).toBe(100);
    expect(readdirSync(runDir).filter((f) => f.endsWith('.lock'))).toHaveLength(100);
  });
});

describe.skipIf(!ok)('netns hosts', () => {
  let a: TestHost;
  let b: TestHost;
  beforeAll(async () => {
    [a, b] = await createTestHosts(2, { namePrefix: 'nh' });
  });

  it('each get their own namespace, /30 and lease, and no route beyond their link', async () => {
    expect(a.namespace).not.toBe(b.namespace);
    expect(a.address).not.toBe(b.address);
    const leases = listNetnsHosts();
    for (const h of [a, b]) {
      const lease = leases.find((l) => l.namespace === h.namespace)!;
      expect(lease).toMatchObject({ name: h.name, ownerPid: process.pid, stateDir: h.stateDir });
      const addr = await h.exec(['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0']);
      expect(addr.stdout).toContain(`inet ${h.address}/30`);
      const routes = (await h.exec(['ip', '-4', 'route'])).stdout.trim().split('\n');
      expect(routes).toHaveLength(1);
      expect(routes[0]).not.toMatch(/default/);
    }
    // The host reaches the controller's end of its link (a listener there, probed with bash's /dev/tcp).
    const server = createServer((c) => c.end('hi\n'));
    await new Promise<void>((r) => server.listen(0, a.controllerAddress, r));
    const port = (server.address() as { port: number }).port;
    try {
      const probe = await a.exec(['bash', '-c', `exec 3<>/dev/tcp/${a.controllerAddress}/${port}; cat <&3`]);
      expect(probe.stdout).toBe('hi\n');
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('runs sshd with the given keys, a private root home, and the controller filesystem', async () => {
    const s = await RemoteSession.connect(sshTarget(a));
    try {
      const r = await s.exec('echo "$HOME"; ls -A "$HOME"; touch "$HOME/marker"; cat /etc/hostname');
      expect(r.stdout).toBe(`/root\n${readFileSync('/etc/hostname', 'utf8')}`);
      expect(existsSync(join(a.homeDir, 'marker'))).toBe(true);
      expect(existsSync('/root/marker')).toBe(false);
      const sshdConfig = readFileSync(a.sshdConfigPath, 'utf8');
      expect(sshdConfig).toMatch(/^PermitRootLogin prohibit-password$/m);
      expect(sshdConfig).toMatch(/^PasswordAuthentication no$/m);
      expect(readFileSync(join(a.stateDir, 'authorized_keys'), 'utf8')).toContain(testClientKey().publicKey);
    } finally {
      await s.close();
    }
  });

  it('destroy removes sshd, namespace, veth and lease, and may be repeated', async () => {
    const h = await NetnsHost.create({
      name: 'doomed',
      authorizedKeys: testClientKey().publicKey,
      stateDir: join(tmp, 'doomed'),
    });
    const pid = Number(readFileSync(join(h.stateDir, 'sshd.pid'), 'utf8'));
    expect(alive(pid)).toBe(true);
    await h.destroy();
    await h.destroy();
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toMatch(
      new RegExp(`^${h.namespace}\\b`, 'm'),
    );
    expect(() => execFileSync('ip', ['link', 'show', h.slot.vethRoot], { stdio: 'ignore' })).toThrow();
    expect(alive(pid)).toBe(false);
    expect(existsSync(join(NETNS_RUN_DIR, `${h.slot.index}.lock`))).toBe(false);
  });

  it('cleanupStaleNetns removes the hosts of a dead owner and leaves live ones alone', async () => {
    const owner: ChildProcess = spawn('sleep', ['600'], { stdio: 'ignore' });
    const h = await NetnsHost.create({
      name: 'orphan',
      authorizedKeys: testClientKey().publicKey,
      stateDir: join(tmp, 'orphan'),
      ownerPid: owner.pid,
    });
    const pid = Number(readFileSync(join(h.stateDir, 'sshd.pid'), 'utf8'));
    expect(await cleanupStaleNetns()).toEqual([]);
    owner.kill('SIGKILL');
    await new Promise((r) => owner.once('exit', r));
    const removed = await cleanupStaleNetns();
    expect(removed.map((l) => l.namespace)).toEqual([h.namespace]);
    expect(existsSync(join(NETNS_RUN_DIR, `${h.slot.index}.lock`))).toBe(false);
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toMatch(
      new RegExp(`^${h.namespace}\\b`, 'm'),
    );
    await expect.poll(() => alive(pid)).toBe(false);
    // The live hosts are untouched.
    const s = await RemoteSession.connect(sshTarget(b));
    expect((await s.exec('echo alive')).stdout).toBe('alive\n');
    await s.close();
    await h.destroy();
  });
});
