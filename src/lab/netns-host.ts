/**
 * Network-namespace hosts: a namespace joined to the root namespace by a veth pair on its own /30,
 * running OpenSSH's sshd inside it and sharing the controller's filesystem. The virtual lab uses them as
 * cheap build hosts; the tests use them as real ssh targets.
 *
 * sshd: root login by key only (the authorized keys given at creation), a per-host ed25519 host key
 * made with ssh-keygen, config, pid file and log in the host's stateDir. Needs root, iproute2 and
 * OpenSSH's server. Tested with OpenSSH 9.2 and iproute2 6.1 (Debian bookworm).
 *
 * The host's namespace has no default route: it can reach the controller's end of its link and
 * nothing else.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import {
  acquireSlot,
  claimStaleSlots,
  finishReap,
  listLeases,
  type NetnsLease,
  type NetnsSlot,
  processStartTime,
  releaseSlot,
  slotFor,
} from './netns-names.js';

export interface NetnsHostOptions {
  /** The host's name (used in logs and the lease; need not be unique). */
  name: string;
  /** authorized_keys text: the keys that may log in as root. */
  authorizedKeys: string;
  /** Holds sshd's config, host key, pid file and log; made if missing. Owned by the caller. */
  stateDir: string;
  /** Start sshd before returning (default true). */
  startSshd?: boolean;
  /**
   * The process whose death makes this host stale for cleanupStaleNetns (default: this one).
   * 0: no owner, for lab hosts that outlive the command that made them; remove with removeNetnsHost.
   */
  ownerPid?: number;
  /** sshd's LogLevel (default INFO; DEBUG3 shows every channel request when chasing a problem). */
  sshdLogLevel?: string;
  /**
   * Let sessions see the controller's own root home directory. By default root's home is replaced (in
   * sshd's mount namespace only) by an empty `stateDir/home`, as on a separate machine: the controller's
   * dotfiles (bash sources ~/.bashrc for every ssh command) then neither slow nor change the host's commands.
   */
  sharedHome?: boolean;
}

export interface NetnsExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

const SSHD = '/usr/sbin/sshd';
const SSHD_READY_TIMEOUT_MS = 10_000;

function ip(args: string[]) {
  return execa('ip', args, { reject: false });
}

async function ipOrThrow(args: string[], what: string): Promise<void> {
  const r = await ip(args);
  if (r.exitCode !== 0)
    throw new Error(`${what}: ip ${args.join(' ')} failed: ${r.stderr.trim() || r.exitCode}`);
}

/** Where root's sessions start: root's home directory from the password database. */
function rootHome(): string {
  return userInfo().uid === 0 ? userInfo().homedir : '/root';
}

function pidAlive(pid: number): boolean {
  return processStartTime(pid) !== undefined;
}

async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

/** Kills every process in the namespace, removes it and the root end of the veth. Tolerates their absence. */
async function teardownSlot(slot: NetnsSlot): Promise<void> {
  const pids = await ip(['netns', 'pids', slot.namespace]);
  if (pids.exitCode === 0) {
    for (const p of pids.stdout.split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(p), 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
  const del = await ip(['netns', 'del', slot.namespace]);
  if (del.exitCode !== 0 && !/No such file/.test(del.stderr)) {
    throw new Error(`removing namespace ${slot.namespace}: ${del.stderr.trim()}`);
  }
  // The kernel destroys a namespace (and with it the veth) asynchronously; delete the link ourselves so
  // the slot's names are free at once.
  const link = await ip(['link', 'del', slot.vethRoot]);
  // The kernel may finish destroying it between our lookup and the delete: "No such device".
  if (link.exitCode !== 0 && !/Cannot find device|does not exist|No such device/.test(link.stderr)) {
    throw new Error(`removing interface ${slot.vethRoot}: ${link.stderr.trim()}`);
  }
}

export class NetnsHost {
  readonly name: string;
  readonly namespace: string;
  /** The host's address, where its sshd listens. */
  readonly address: string;
  readonly port = 22;
  /** The root namespace's end of the link, as the host sees the controller. */
  readonly controllerAddress: string;
  readonly stateDir: string;
  readonly slot: NetnsSlot;
  private sshd: ChildProcess | undefined;
  private destroyed = false;

  private constructor(
    slot: NetnsSlot,
    private readonly opts: NetnsHostOptions,
  ) {
    this.slot = slot;
    this.name = opts.name;
    this.namespace = slot.namespace;
    this.address = slot.hostAddress;
    this.controllerAddress = slot.rootAddress;
    this.stateDir = opts.stateDir;
  }

  static async create(opts: NetnsHostOptions): Promise<NetnsHost> {
    if (!opts.name) throw new Error('NetnsHost.create: name is empty');
    mkdirSync(opts.stateDir, { recursive: true });
    const { slot } = acquireSlot({ name: opts.name, stateDir: opts.stateDir, ownerPid: opts.ownerPid });
    const host = new NetnsHost(slot, opts);
    try {
      // We hold the slot, so anything under its names is a leftover of an owner that crashed.
      await teardownSlot(slot);
      const what = `netns host ${opts.name}`;
      await ipOrThrow(['netns', 'add', slot.namespace], what);
      await ipOrThrow(
        [
          'link',
          'add',
          slot.vethRoot,
          'type',
          'veth',
          'peer',
          'name',
          slot.vethHost,
          'netns',
          slot.namespace,
        ],
        what,
      );
      await ipOrThrow(
        ['addr', 'add', `${slot.rootAddress}/${slot.prefixLength}`, 'dev', slot.vethRoot],
        what,
      );
      await ipOrThrow(['link', 'set', slot.vethRoot, 'up'], what);
      const n = ['-n', slot.namespace];
      await ipOrThrow(
        [...n, 'addr', 'add', `${slot.hostAddress}/${slot.prefixLength}`, 'dev', slot.vethHost],
        what,
      );
      await ipOrThrow([...n, 'link', 'set', slot.vethHost, 'up'], what);
      await ipOrThrow([...n, 'link', 'set', 'lo', 'up'], what);
      host.writeSshdFiles();
      await host.ensureHostKey();
      if (opts.startSshd !== false) await host.startSshd();
      return host;
    } catch (err) {
      await host.destroy().catch(() => {});
      throw err;
    }
  }

  private get hostKeyPath(): string {
    return join(this.stateDir, 'ssh_host_ed25519_key');
  }
  get sshdConfigPath(): string {
    return join(this.stateDir, 'sshd_config');
  }
  get sshdLogPath(): string {
    return join(this.stateDir, 'sshd.log');
  }
  /** Root's home directory inside the host's sessions (unless sharedHome). */
  get homeDir(): string {
    return join(this.stateDir, 'home');
  }
  private get pidPath(): string {
    return join(this.stateDir, 'sshd.pid');
  }

  /** `"ssh-ed25519 AAAA…"`: the key sshd presents (after the next start, if rotateHostKey was called). */
  get hostPublicKey(): string {
    const text = readFileSync(`${this.hostKeyPath}.pub`, 'utf8').trim();
    return text.split(/\s+/).slice(0, 2).join(' ');
  }

  private writeSshdFiles(): void {
    const authorized = join(this.stateDir, 'authorized_keys');
    writeFileSync(
      authorized,
      this.opts.authorizedKeys.endsWith('\n') ? this.opts.authorizedKeys : `${this.opts.authorizedKeys}\n`,
      {
        mode: 0o600,
      },
    );
    const config = [
      `# sshd for netns host ${this.name} (${this.namespace}); written by osstest`,
      `ListenAddress ${this.address}:${this.port}`,
      `HostKey ${this.hostKeyPath}`,
      `PidFile ${this.pidPath}`,
      `AuthorizedKeysFile ${authorized}`,
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      // The state dir lives wherever the caller put it (often a world-writable temp dir).
      'StrictModes no',
      'UseDNS no',
      'PrintMotd no',
      'Subsystem sftp internal-sftp',
      // Sessions run several commands at once over one connection; OpenSSH's default is 10.
      'MaxSessions 64',
      'MaxStartups 64:30:128',
      `LogLevel ${this.opts.sshdLogLevel ?? 'INFO'}`,
      '',
    ].join('\n');
    writeFileSync(this.sshdConfigPath, config);
  }

  private async ensureHostKey(): Promise<void> {
    if (existsSync(this.hostKeyPath) && existsSync(`${this.hostKeyPath}.pub`)) return;
    rmSync(this.hostKeyPath, { force: true });
    rmSync(`${this.hostKeyPath}.pub`, { force: true });
    const r = await execa(
      'ssh-keygen',
      ['-q', '-t', 'ed25519', '-N', '', '-C', `root@${this.name}`, '-f', this.hostKeyPath],
      {
        reject: false,
      },
    );
    if (r.exitCode !== 0) throw new Error(`netns host ${this.name}: ssh-keygen failed: ${r.stderr.trim()}`);
  }

  /** A new host key (as after a reinstall); sshd presents it from its next start. */
  async rotateHostKey(): Promise<void> {
    rmSync(this.hostKeyPath, { force: true });
    await this.ensureHostKey();
  }

  get sshdRunning(): boolean {
    const pid = this.sshdPid();
    return pid !== undefined && pidAlive(pid);
  }

  private sshdPid(): number | undefined {
    if (this.sshd?.pid !== undefined && this.sshd.exitCode === null && this.sshd.signalCode === null) {
      return this.sshd.pid;
    }
    try {
      const pid = Number(readFileSync(this.pidPath, 'utf8').trim());
      return pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /** Starts sshd in the namespace and returns once it accepts connections. */
  async startSshd(): Promise<void> {
    if (this.destroyed) throw new Error(`netns host ${this.name} is destroyed`);
    if (this.sshdRunning) return;
    // sshd's privilege separation needs this directory; a fresh container may lack it.
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    this.writeSshdFiles();
    await this.ensureHostKey();
    if (!this.opts.sharedHome) mkdirSync(this.homeDir, { recursive: true, mode: 0o700 });
    const log = openSync(this.sshdLogPath, 'a');
    let child: ChildProcess;
    try {
      // `ip netns exec` (and the shell, by exec) runs sshd in place, so the child's pid is sshd's.
      // It also gives sshd its own mount namespace, so the home bind mount stays there. Detached: sshd
      // must not get the terminal's signals meant for the test runner; stopSshd/destroy/cleanup stop it.
      const argv = this.opts.sharedHome
        ? [SSHD, '-D', '-e', '-f', this.sshdConfigPath]
        : [
            'sh',
            '-c',
            'mount --bind "$1" "$2" && exec "$3" -D -e -f "$4"',
            'sh',
            this.homeDir,
            rootHome(),
            SSHD,
            this.sshdConfigPath,
          ];
      child = spawn('ip', ['netns', 'exec', this.namespace, ...argv], {
        stdio: ['ignore', log, log],
        detached: true,
      });
    } finally {
      closeSync(log);
    }
    child.unref();
    this.sshd = child;
    let spawnError: Error | undefined;
    child.on('error', (e) => {
      spawnError = e;
    });
    const deadline = Date.now() + SSHD_READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (spawnError) throw new Error(`netns host ${this.name}: cannot run sshd: ${spawnError.message}`);
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(
          `netns host ${this.name}: sshd exited (${child.exitCode ?? child.signalCode}); log ${this.sshdLogPath}:\n${this.logTail()}`,
        );
      }
      if (await this.portOpen()) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(
      `netns host ${this.name}: sshd did not listen on ${this.address}:${this.port} within ${SSHD_READY_TIMEOUT_MS} ms; log:\n${this.logTail()}`,
    );
  }

  private logTail(): string {
    try {
      return readFileSync(this.sshdLogPath, 'utf8').trimEnd().split('\n').slice(-15).join('\n');
    } catch {
      return '(no log)';
    }
  }

  private portOpen(): Promise<boolean> {
    return new Promise((resolve) => {
      const s = connect({ host: this.address, port: this.port });
      const done = (ok: boolean) => {
        s.destroy();
        resolve(ok);
      };
      s.setTimeout(500, () => done(false));
      s.once('connect', () => done(true));
      s.once('error', () => done(false));
    });
  }

  /**
   * Stops the listening sshd (connections already made keep their own sshd processes, as on a real host
   * whose sshd is restarted; destroy() ends those too).
   */
  async stopSshd(): Promise<void> {
    const pid = this.sshdPid();
    if (pid === undefined || !pidAlive(pid)) return;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    if (!(await waitUntil(() => !pidAlive(pid), 3_000))) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone in between.
      }
      await waitUntil(() => !pidAlive(pid), 2_000);
    }
    rmSync(this.pidPath, { force: true });
  }

  /** Runs argv inside the host's namespace (on the controller's filesystem), without ssh. */
  async exec(
    argv: string[],
    opts: { allowFailure?: boolean; input?: string; timeoutMs?: number } = {},
  ): Promise<NetnsExecResult> {
    if (argv.length === 0) throw new Error(`netns host ${this.name}: exec of an empty command`);
    const r = await execa('ip', ['netns', 'exec', this.namespace, ...argv], {
      reject: false,
      input: opts.input,
      timeout: opts.timeoutMs,
      // Raw output, as RemoteSession.exec gives it.
      stripFinalNewline: false,
    });
    const result = { exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
    if (!opts.allowFailure && (r.failed || r.exitCode !== 0)) {
      throw new Error(`in netns host ${this.name}: ${r.message}`);
    }
    return result;
  }

  /** Stops sshd and everything else in the namespace, removes namespace and veth, frees the slot. Idempotent. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await this.stopSshd().catch(() => {});
    await teardownSlot(this.slot);
    releaseSlot(this.slot.index);
  }
}

/** Every netns host known on this machine (live or stale), from the slot leases. */
export function listNetnsHosts(): NetnsLease[] {
  return listLeases();
}

/** Removes a host by its lease (e.g. one made by another process with ownerPid 0). */
export async function removeNetnsHost(lease: NetnsLease): Promise<void> {
  const slot = slotFor(lease.index);
  await teardownSlot(slot);
  releaseSlot(slot.index);
}

/**
 * Removes the hosts of processes that died without destroying them (their sshd, namespace and veth)
 * and frees their slots. Safe to run while other processes make and destroy hosts. Returns what it removed.
 */
export async function cleanupStaleNetns(): Promise<NetnsLease[]> {
  const claimed = claimStaleSlots();
  for (const lease of claimed) {
    await teardownSlot(slotFor(lease.index));
    finishReap(lease.index);
  }
  return claimed;
}
