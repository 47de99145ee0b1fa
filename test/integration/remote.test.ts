/**
 * src/remote against OpenSSH's sshd running in network-namespace hosts (test/helpers/netns.ts):
 * exec (exit codes, output, streaming, stdin, env, timeout, pty), sftp, wait-for-ssh, host key pinning,
 * connection errors, and key files checked with ssh-keygen itself.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileHostKeyStore, fingerprint } from '../../src/remote/hostkeys.js';
import { ensureKeyPair, generateKeyPair } from '../../src/remote/keys.js';
import {
  HostKeyMismatchError,
  RemoteConnectError,
  RemoteExecError,
  RemoteSession,
  waitForSsh,
} from '../../src/remote/session.js';
import { createTestHosts, netnsPrerequisites, sshTarget, type TestHost } from '../helpers/netns.js';

const ok = netnsPrerequisites();
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function rejection<E = Error>(p: Promise<unknown>): Promise<E> {
  try {
    await p;
  } catch (e) {
    return e as E;
  }
  throw new Error('expected a rejection, got success');
}

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'osstest-remote-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('keys and fingerprints (checked with ssh-keygen)', () => {
  it('ensureKeyPair makes a 0600 ed25519 key that ssh-keygen reads, and reuses it', () => {
    const path = join(tmp, 'keys', 'sub', 'id_ed25519');
    const a = ensureKeyPair(path, 'osstest@test');
    expect(a.created).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(a.publicKey).toMatch(/^ssh-ed25519 AAAA\S+ osstest@test$/);
    expect(readFileSync(`${path}.pub`, 'utf8').trim()).toBe(a.publicKey);
    const derived = execFileSync('ssh-keygen', ['-y', '-f', path], { encoding: 'utf8' }).trim();
    expect(derived.split(' ').slice(0, 2)).toEqual(a.publicKey.split(' ').slice(0, 2));
    const b = ensureKeyPair(path, 'other comment');
    expect(b.created).toBe(false);
    expect(b.privateKey).toBe(a.privateKey);
    expect(b.publicKey).toBe(a.publicKey);
  });

  it('ensureKeyPair names the file when it holds no key', () => {
    const path = join(tmp, 'garbage_key');
    writeFileSync(path, 'not a key\n');
    expect(() => ensureKeyPair(path, 'x')).toThrow(new RegExp(`${path}: not a usable SSH private key`));
  });

  it('fingerprint() agrees with ssh-keygen -l', () => {
    const pub = join(tmp, 'fp.pub');
    const k = generateKeyPair('fp');
    writeFileSync(pub, `${k.publicKey}\n`);
    const expected = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', pub], {
      encoding: 'utf8',
    }).split(' ')[1];
    expect(fingerprint(k.publicKey)).toBe(expected);
  });

  it('FileHostKeyStore records, replaces and rereads keys', async () => {
    const path = join(tmp, 'hk', 'known_hosts');
    const s = new FileHostKeyStore(path);
    expect(await s.get('a')).toBeUndefined();
    const k1 = generateKeyPair('k1').publicKey;
    const k2 = generateKeyPair('k2').publicKey;
    await s.record('a', k1);
    await s.record('b', k2);
    expect(await new FileHostKeyStore(path).get('a')).toBe(k1.split(' ').slice(0, 2).join(' '));
    await s.record('a', k2);
    expect(await s.get('a')).toBe(k2.split(' ').slice(0, 2).join(' '));
    expect(readFileSync(path, 'utf8').trim().split('\n')).toHaveLength(2);
    writeFileSync(path, 'justonefield\n');
    await expect(s.get('a')).rejects.toThrow(`${path}:1: expected "HOST TYPE KEY"`);
  });
});

describe('connection errors (loopback only)', () => {
  let silent: Server;
  let silentPort: number;
  beforeAll(async () => {
    // Accepts TCP and never speaks SSH: a host whose sshd hangs.
    silent = createServer((sock) => sock.resume());
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    silentPort = (silent.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((r) => silent.close(() => r())));

  const key = generateKeyPair('x').privateKey;

  it('a refused connection names host, address and port', async () => {
    // A port that was free a moment ago: bind, read, close.
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as { port: number }).port;
    await new Promise<void>((r) => s.close(() => r()));
    const err = await rejection<Error>(
      RemoteSession.connect({
        host: 'nohost',
        address: '127.0.0.1',
        port,
        privateKey: key,
      }),
    );
    expect(err).toBeInstanceOf(RemoteConnectError);
    expect((err as Error).message).toMatch(
      new RegExp(`^ssh to host nohost \\(127\\.0\\.0\\.1:${port}\\): .*ECONNREFUSED`),
    );
    expect(err).toMatchObject({ host: 'nohost', address: '127.0.0.1', port });
  });

  it('a host that never answers times out at connectTimeoutMs', async () => {
    const t0 = Date.now();
    const err = await rejection<Error>(
      RemoteSession.connect({
        host: 'mute',
        address: '127.0.0.1',
        port: silentPort,
        privateKey: key,
        connectTimeoutMs: 400,
      }),
    );
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect((err as Error).message).toBe(
      `ssh to host mute (127.0.0.1:${silentPort}): connect timed out after 400 ms`,
    );
  });
});

describe.skipIf(!ok)('remote sessions against sshd in network namespaces', () => {
  let host: TestHost;
  let late: TestHost;
  let s: RemoteSession;

  beforeAll(async () => {
    [host, late] = await createTestHosts(2, { namePrefix: 'remote' });
    s = await RemoteSession.connect(sshTarget(host));
  });
  afterAll(async () => {
    await s?.close();
  });

  it('returns exit codes, and throws an execa-like error on failure', async () => {
    const r = await s.exec('true');
    expect(r).toMatchObject({ exitCode: 0, signal: null, timedOut: false, host: host.name, command: 'true' });
    const f = await s.exec('echo oops >&2; exit 3', { allowFailure: true });
    expect(f.exitCode).toBe(3);
    const err = await rejection<Error>(s.exec('echo something broke >&2; exit 2'));
    expect(err).toBeInstanceOf(RemoteExecError);
    expect((err as Error).message).toBe(
      `Command failed with exit code 2 on host ${host.name}: echo something broke >&2; exit 2\nsomething broke`,
    );
    expect((err as RemoteExecError).result.exitCode).toBe(2);
  });

  it('reports a command killed by a signal', async () => {
    const err = await rejection<RemoteExecError>(s.exec('kill -TERM $$'));
    expect(err.result.signal).toBe('SIGTERM');
    expect(err.message).toMatch(
      new RegExp(`^Command was killed with SIGTERM on host ${host.name}: kill -TERM`),
    );
  });

  it('captures stdout and stderr separately, keeping UTF-8 intact', async () => {
    const r = await s.exec(`printf 'out\\n'; printf 'err\\n' >&2; printf 'ünïcødé ✓\\n'`);
    expect(r.stdout).toBe('out\nünïcødé ✓\n');
    expect(r.stderr).toBe('err\n');
  });

  it('streams output as it arrives', async () => {
    const seen: { t: number; text: string; stream: string }[] = [];
    const t0 = Date.now();
    const r = await s.exec('for i in 1 2 3; do echo line$i; echo warn$i >&2; sleep 0.4; done', {
      output: (text, stream) => seen.push({ t: Date.now() - t0, text, stream }),
    });
    const total = Date.now() - t0;
    const first = seen.find((x) => x.text.includes('line1'))!;
    expect(first.t).toBeLessThan(total - 600);
    expect(
      seen
        .filter((x) => x.stream === 'stdout')
        .map((x) => x.text)
        .join(''),
    ).toBe(r.stdout);
    expect(
      seen
        .filter((x) => x.stream === 'stderr')
        .map((x) => x.text)
        .join(''),
    ).toBe('warn1\nwarn2\nwarn3\n');
    expect(new Set(seen.map((x) => x.t)).size).toBeGreaterThanOrEqual(3);
  });

  it('feeds stdin and ends it; without stdin the command sees EOF at once', async () => {
    const input = randomBytes(200_000);
    const r = await s.exec('sha256sum', { stdin: input });
    expect(r.stdout.split(' ')[0]).toBe(sha256(input));
    expect((await s.exec('cat', { stdin: 'hello\nworld' })).stdout).toBe('hello\nworld');
    expect((await s.exec('cat', { timeoutMs: 5_000 })).stdout).toBe('');
  });

  it('passes env, quoting values, and rejects bad names before sending anything', async () => {
    const r = await s.exec('printf "%s|%s" "$FOO" "$BAR"', { env: { FOO: `it's "x" $HOME`, BAR: 'a b;c' } });
    expect(r.stdout).toBe(`it's "x" $HOME|a b;c`);
    await expect(s.exec('true', { env: { 'A;rm': 'x' } })).rejects.toThrow(
      `exec on host ${host.name}: bad environment variable name "A;rm"`,
    );
  });

  it('runs under a pty when asked', async () => {
    expect((await s.exec('tty', { pty: true })).stdout).toMatch(/^\/dev\/pts\/\d+\r?\n$/);
    expect((await s.exec('tty', { allowFailure: true })).stdout).toBe('not a tty\n');
  });

  it('kills a command at its timeout, and the session still works', async () => {
    let pids = '';
    const t0 = Date.now();
    // Two processes in the command's group: the shell and a background sleep; both must die.
    const err = await rejection<RemoteExecError>(
      s.exec('sleep 60 & echo $$ $!; wait', { timeoutMs: 1_000, output: (t) => (pids += t) }),
    );
    const elapsed = Date.now() - t0;
    expect(err).toBeInstanceOf(RemoteExecError);
    expect(err.result.timedOut).toBe(true);
    expect(err.message).toMatch(
      new RegExp(`^Command timed out after \\d+ ms on host ${host.name}: sleep 60`),
    );
    expect(elapsed).toBeLessThan(4_500);
    // The hosts share our pid namespace, so the remote processes are visible here.
    const [shell, sleeper] = pids.trim().split(' ').map(Number);
    expect(shell).toBeGreaterThan(0);
    const gone = (pid: number) =>
      !existsSync(`/proc/${pid}`) || /\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    await expect.poll(() => gone(shell!) && gone(sleeper!), { timeout: 3_000 }).toBe(true);
    expect((await s.exec('echo still here')).stdout).toBe('still here\n');
    const soft = await s.exec('sleep 5', { timeoutMs: 300, allowFailure: true });
    expect(soft.timedOut).toBe(true);
  });

  it('runs many commands on one connection, in sequence and at once', async () => {
    for (let i = 0; i < 100; i++) expect((await s.exec(`echo ${i}`)).stdout).toBe(`${i}\n`);
    const all = await Promise.all(Array.from({ length: 20 }, (_, i) => s.exec(`sleep 0.1; echo ${i}`)));
    expect(all.map((r) => r.stdout)).toEqual(Array.from({ length: 20 }, (_, i) => `${i}\n`));
  });

  it('put/get a 5 MB file, writeFile/readFile, with checksums and modes', async () => {
    const data = randomBytes(5 * 1024 * 1024);
    const local = join(tmp, 'big.bin');
    writeFileSync(local, data);
    const remote = join(host.stateDir, 'big-remote.bin');
    await s.put(local, remote);
    expect((await s.exec(`sha256sum ${remote}`)).stdout.split(' ')[0]).toBe(sha256(data));
    const back = join(tmp, 'big-back.bin');
    await s.get(remote, back);
    expect(sha256(readFileSync(back))).toBe(sha256(data));

    const small = join(host.stateDir, 'small.conf');
    await s.writeFile(small, 'a=1\n', 0o640);
    expect((await s.exec(`stat -c %a ${small}; cat ${small}`)).stdout).toBe('640\na=1\n');
    await s.writeFile(small, data.subarray(0, 1000));
    expect(sha256(await s.readFile(small))).toBe(sha256(data.subarray(0, 1000)));
    expect(sha256(await s.readFile(remote))).toBe(sha256(data));

    await expect(s.readFile('/nonexistent/file')).rejects.toThrow(
      `sftp read /nonexistent/file on host ${host.name}:`,
    );
    await expect(s.put(join(tmp, 'missing'), remote)).rejects.toThrow(/sftp put .*missing/);
  });

  it('refuses a wrong client key, naming the user', async () => {
    const err = await rejection<Error>(
      RemoteSession.connect(sshTarget(host, { privateKey: generateKeyPair('intruder').privateKey })),
    );
    expect(err.message).toMatch(
      new RegExp(`^ssh to host ${host.name} \\(${host.address}:22\\): authentication as root failed`),
    );
  });

  it('exec after close fails clearly', async () => {
    const t = await RemoteSession.connect(sshTarget(host));
    await t.close();
    await t.close();
    await expect(t.exec('true')).rejects.toThrow(/the connection is closed/);
  });

  it('waitForSsh connects once a late sshd starts', async () => {
    await late.stopSshd();
    const log: string[] = [];
    const t0 = Date.now();
    const starting = new Promise((r) => setTimeout(r, 1_200)).then(() => late.startSshd());
    const w = await waitForSsh(sshTarget(late), {
      timeoutMs: 20_000,
      intervalMs: 200,
      log: (m) => log.push(m),
    });
    await starting;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1_100);
    expect((await w.exec('echo up')).stdout).toBe('up\n');
    await w.close();
    expect(log.some((l) => /waiting for ssh \(attempt 1\)/.test(l))).toBe(true);
  });

  it('waitForSsh gives up at its deadline and says how long it tried and why', async () => {
    await late.stopSshd();
    const t0 = Date.now();
    const err = await rejection<Error>(waitForSsh(sshTarget(late), { timeoutMs: 1_500, intervalMs: 200 }));
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(1_500);
    expect(elapsed).toBeLessThan(3_500);
    expect(err.message).toMatch(
      new RegExp(
        `^ssh to host ${late.name} \\(${late.address}:22\\): not reachable after 1\\.\\d s \\(\\d+ attempts, limit 1500 ms\\); last error: .*ECONNREFUSED`,
      ),
    );
    await late.startSshd();
  });

  it('records a host key on first contact and refuses a changed one', async () => {
    const store = new FileHostKeyStore(join(tmp, 'known_hosts'));
    const target = sshTarget(late, { hostKeys: store });
    const oldKey = late.hostPublicKey;
    await (await RemoteSession.connect(target)).close();
    expect(await store.get(late.name)).toBe(oldKey);
    await (await RemoteSession.connect(target)).close();

    await late.stopSshd();
    await late.rotateHostKey();
    await late.startSshd();
    const newKey = late.hostPublicKey;
    expect(newKey).not.toBe(oldKey);
    const err = await rejection<Error>(RemoteSession.connect(target));
    expect(err).toBeInstanceOf(HostKeyMismatchError);
    expect(err.message).toContain(`ssh to host ${late.name} (${late.address}:22): host key changed`);
    expect(err.message).toContain(`recorded ${fingerprint(oldKey)}, presented ${fingerprint(newKey)}`);
    expect(await store.get(late.name)).toBe(oldKey);
    // Not something waiting will fix: waitForSsh fails at once.
    const t0 = Date.now();
    await expect(waitForSsh(target, { timeoutMs: 10_000 })).rejects.toBeInstanceOf(HostKeyMismatchError);
    expect(Date.now() - t0).toBeLessThan(3_000);
  });
});
