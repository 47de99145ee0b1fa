/**
 * Real ssh hosts for tests: NetnsHosts running sshd, removed after the test file.
 *
 *   const ok = netnsPrerequisites();
 *   describe.skipIf(!ok)('…', () => {
 *     let hosts: TestHost[];
 *     beforeAll(async () => { hosts = await createTestHosts(2); });
 *     it('…', async () => { const s = await RemoteSession.connect(sshTarget(hosts[0]!)); … });
 *   });
 *
 * Cleanup: importing this module registers a file-level afterAll that destroys every host made through
 * it (vitest ignores hooks registered from inside a running hook, so it cannot be done at creation).
 * Leftovers of crashed runs are cleared by cleanupStaleNetns() before the first host is made.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { cleanupStaleNetns, NetnsHost } from '../../src/lab/netns-host.js';
import { generateKeyPair, type KeyPair } from '../../src/remote/keys.js';
import type { SshTarget } from '../../src/remote/session.js';
import { prerequisites } from './env.js';

export type TestHost = NetnsHost;

/** Skips loudly off CI (fails under CI=true) when netns ssh hosts cannot be made here. */
export function netnsPrerequisites(): boolean {
  return prerequisites('netns ssh hosts', { root: true, commands: ['ip', '/usr/sbin/sshd', 'ssh-keygen'] });
}

let clientKey: KeyPair | undefined;
/** A client key pair every test host authorizes (made once per test file). */
export function testClientKey(): KeyPair {
  clientKey ??= generateKeyPair('osstest-test');
  return clientKey;
}

const made: NetnsHost[] = [];
const dirs: string[] = [];
let staleCleared = false;

afterAll(async () => {
  const errors: unknown[] = [];
  for (const h of made.splice(0)) await h.destroy().catch((e: unknown) => errors.push(e));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  if (errors.length) throw errors[0];
});

/**
 * Makes `n` hosts (in parallel) with sshd running unless `startSshd: false`. They authorize
 * testClientKey() and, if given, `authorizedKeys` too.
 */
/** `[T, T, …]` with N elements when N is a literal, so `const [a, b] = await createTestHosts(2)` needs no `!`. */
export type Tuple<T, N extends number, R extends T[] = []> = number extends N
  ? T[]
  : R['length'] extends N
    ? R
    : Tuple<T, N, [T, ...R]>;

export async function createTestHosts<N extends number>(
  n: N,
  opts: { authorizedKeys?: string; startSshd?: boolean; namePrefix?: string; sshdLogLevel?: string } = {},
): Promise<Tuple<TestHost, N>> {
  if (!netnsPrerequisites())
    throw new Error('createTestHosts: prerequisites missing (guard with netnsPrerequisites())');
  if (!staleCleared) {
    await cleanupStaleNetns();
    staleCleared = true;
  }
  const dir = mkdtempSync(join(tmpdir(), 'osstest-netns-'));
  dirs.push(dir);
  const keys = `${testClientKey().publicKey}\n${opts.authorizedKeys?.trim() ?? ''}\n`;
  const results = await Promise.allSettled(
    Array.from({ length: n }, (_, i) =>
      NetnsHost.create({
        name: `${opts.namePrefix ?? 'testhost'}${made.length + i}`,
        authorizedKeys: keys,
        stateDir: join(dir, `host${i}`),
        startSshd: opts.startSshd,
        sshdLogLevel: opts.sshdLogLevel,
      }),
    ),
  );
  const hosts: NetnsHost[] = [];
  // Keep every host that was made, so afterAll removes them even if another failed.
  for (const r of results) if (r.status === 'fulfilled') hosts.push(r.value);
  made.push(...hosts);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  return hosts as Tuple<TestHost, N>;
}

/** An ssh target for a test host with testClientKey() (no host key store unless given in `extra`). */
export function sshTarget(host: TestHost, extra: Partial<SshTarget> = {}): SshTarget {
  return {
    host: host.name,
    address: host.address,
    port: host.port,
    username: 'root',
    privateKey: testClientKey().privateKey,
    connectTimeoutMs: 5_000,
    ...extra,
  };
}
