/**
 * bench/remote-overhead: what running many small commands on a host costs through RemoteSession (one
 * ssh2 connection, connect time included) against OpenSSH's `ssh` started once per command (a key
 * exchange and authentication every time: the original's way). Both run `true` COMMANDS times on the
 * same NetnsHost (sshd in a network namespace, made and removed here; needs root). Rounds alternate
 * ours/OpenSSH; medians are compared. The ssh client uses a temp identity and known_hosts and no
 * config file, so nothing touches ~/.ssh.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cleanupStaleNetns, NetnsHost } from '../src/lab/netns-host.js';
import type { HostKeyStore } from '../src/remote/hostkeys.js';
import { ensureKeyPair } from '../src/remote/keys.js';
import { RemoteSession } from '../src/remote/session.js';

const COMMANDS = Number(process.env.COMMANDS ?? 200);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const run = promisify(execFile);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
  console.error('bench/remote-overhead: needs root (it creates a network namespace running sshd)');
  process.exit(2);
}
for (const cmd of ['/usr/sbin/sshd', 'ssh', 'ip', 'ssh-keygen']) {
  try {
    await run('sh', ['-c', `command -v ${cmd}`]);
  } catch {
    console.error(`bench/remote-overhead: needs ${cmd} (Debian: openssh-server, openssh-client, iproute2)`);
    process.exit(2);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'osstest-bench-remote-'));
let host: NetnsHost | undefined;
const cleanup = async () => {
  await host?.destroy().catch((e: unknown) => console.error(`cleanup: ${(e as Error).message}`));
  rmSync(dir, { recursive: true, force: true });
};
process.once('SIGINT', () => {
  void cleanup().then(() => process.exit(130));
});

try {
  await cleanupStaleNetns();
  const keyFile = join(dir, 'id_ed25519');
  const key = ensureKeyPair(keyFile, 'osstest-bench');
  host = await NetnsHost.create({
    name: 'bench',
    authorizedKeys: key.publicKey,
    stateDir: join(dir, 'host'),
  });
  const h = host;
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, `${h.address} ${h.hostPublicKey}\n`);
  // Both sides check the host key against the pinned one.
  const pinned: HostKeyStore = { get: async () => h.hostPublicKey, record: async () => {} };
  const sshArgs = [
    '-F',
    '/dev/null',
    '-o',
    'BatchMode=yes',
    '-o',
    `UserKnownHostsFile=${knownHosts}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'ControlMaster=no',
    '-o',
    'ControlPath=none',
    '-i',
    keyFile,
    '-l',
    'root',
    h.address,
    'true',
  ];
  const sshEnv = { ...process.env };
  delete sshEnv.SSH_AUTH_SOCK;

  const ours = async (): Promise<number> => {
    const t0 = performance.now();
    const s = await RemoteSession.connect({
      host: h.name,
      address: h.address,
      privateKey: key.privateKey,
      hostKeys: pinned,
    });
    for (let i = 0; i < COMMANDS; i++) await s.exec('true');
    await s.close();
    return performance.now() - t0;
  };
  const openssh = async (): Promise<number> => {
    const t0 = performance.now();
    for (let i = 0; i < COMMANDS; i++) await run('ssh', sshArgs, { env: sshEnv });
    return performance.now() - t0;
  };

  // One untimed pass each, so neither side pays first-use costs (page cache, sshd's first fork).
  await ours();
  await run('ssh', sshArgs, { env: sshEnv });

  const a: number[] = [];
  const b: number[] = [];
  const fmt = (ms: number) => `${(ms / 1000).toFixed(3)} s (${(ms / COMMANDS).toFixed(2)} ms/command)`;
  console.log(`${COMMANDS} x \`true\` on netns host ${h.address}, ${ROUNDS} rounds`);
  for (let round = 1; round <= ROUNDS; round++) {
    a.push(await ours());
    b.push(await openssh());
    console.log(`round ${round}: RemoteSession ${fmt(a.at(-1)!)}; ssh per command ${fmt(b.at(-1)!)}`);
  }
  console.log(`median RemoteSession (one connection, connect included): ${fmt(median(a))}`);
  console.log(`median OpenSSH ssh, one connection per command: ${fmt(median(b))}`);
  console.log(`result: ratio=${(median(a) / median(b)).toFixed(3)}`);
} finally {
  await cleanup();
}
