/**
 * SSH sessions to hosts, on ssh2: one connection per session, reused for many commands and file
 * transfers (a fresh `ssh` per command costs a key exchange each time; see bench/remote-overhead).
 *
 * Host keys: with `target.hostKeys`, the first connection records the host's key and any later one
 * that presents another key is refused (HostKeyMismatchError names both fingerprints). Without a
 * store every key is accepted: that is only for tests and benchmarks on hosts we just made ourselves.
 *
 * Commands run through the remote user's login shell, which must be POSIX: env and the timeout kill
 * (see PGID_ANNOUNCE) are shell text prepended to the command.
 *
 * Tested against OpenSSH 9.2 (Debian bookworm) sshd in a network namespace (test/integration/remote.test.ts).
 */
import { performance } from 'node:perf_hooks';
import { StringDecoder } from 'node:string_decoder';
import type { ClientChannel, ConnectConfig, SFTPWrapper } from 'ssh2';
import ssh2 from 'ssh2';
import { fingerprint, type HostKeyStore, keyBlob, keyText } from './hostkeys.js';

export interface SshTarget {
  /** The host's name: what errors and the host key store use. */
  host: string;
  /** Where to connect (an IP address or a resolvable name). */
  address: string;
  port?: number;
  /** Default `root`, as test hosts are administered as root. */
  username?: string;
  privateKey: string | Buffer;
  hostKeys?: HostKeyStore;
  /** Covers TCP connect, key exchange and authentication. Default 20 s. */
  connectTimeoutMs?: number;
}

export type OutputSink = (text: string, stream: 'stdout' | 'stderr') => void;

export interface ExecOptions {
  /** Past this the remote command is sent KILL and the result is marked timedOut. */
  timeoutMs?: number;
  /** Written to the command's stdin, then EOF. Without it the command gets EOF at once. */
  stdin?: string | Buffer;
  /**
   * Set in the remote shell before the command runs (as `export NAME='value';` — sshd drops ssh
   * `env` requests unless its AcceptEnv allows the name, so they cannot be relied on).
   */
  env?: Record<string, string>;
  /** Receives output as it arrives (decoded as UTF-8; characters split across packets are kept whole). */
  output?: OutputSink;
  /** Return the result instead of throwing when the command fails or times out. */
  allowFailure?: boolean;
  /** Run under a pseudo-terminal (stderr then arrives merged into stdout). */
  pty?: boolean;
}

export interface ExecResult {
  command: string;
  host: string;
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  durationMs: number;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 20_000;
/** How long to wait for the channel to close after a timed-out command was sent KILL. */
const KILL_GRACE_MS = 3_000;
const STDERR_TAIL_CHARS = 2_000;

function describeTarget(t: SshTarget): string {
  return `host ${t.host} (${t.address}:${t.port ?? 22})`;
}

function tail(text: string, max: number): string {
  const t = text.trimEnd();
  return t.length <= max ? t : `…${t.slice(t.length - max)}`;
}

/** An exec that failed, timed out, was killed by a signal, or lost its connection. */
export class RemoteExecError extends Error {
  override readonly name = 'RemoteExecError';
  constructor(readonly result: ExecResult) {
    super(RemoteExecError.describe(result));
  }

  static describe(r: ExecResult): string {
    let what: string;
    if (r.timedOut) what = `Command timed out after ${Math.round(r.durationMs)} ms`;
    else if (r.signal) what = `Command was killed with ${r.signal}`;
    else if (r.exitCode !== null) what = `Command failed with exit code ${r.exitCode}`;
    else what = 'Command lost its connection before reporting an exit status';
    const errTail = tail(r.stderr, STDERR_TAIL_CHARS);
    return `${what} on host ${r.host}: ${r.command}${errTail ? `\n${errTail}` : ''}`;
  }
}

/** Connecting failed (refused, unreachable, timed out, authentication, host key); names where to. */
export class RemoteConnectError extends Error {
  override readonly name: string = 'RemoteConnectError';
  readonly host: string;
  readonly address: string;
  readonly port: number;
  constructor(target: SshTarget, detail: string, options?: { cause?: unknown }) {
    super(`ssh to ${describeTarget(target)}: ${detail}`, options);
    this.host = target.host;
    this.address = target.address;
    this.port = target.port ?? 22;
  }
}

/** The host presented a key other than the one recorded for it. Never retried by waitForSsh. */
export class HostKeyMismatchError extends RemoteConnectError {
  override readonly name = 'HostKeyMismatchError';
  constructor(
    target: SshTarget,
    readonly expected: string,
    readonly presented: string,
  ) {
    super(
      target,
      `host key changed: recorded ${fingerprint(expected)}, presented ${fingerprint(presented)}; refusing to connect ` +
        '(if the host was reinstalled, remove its recorded key)',
    );
  }
}

/** `export NAME='value';` for each entry; names are checked so nothing but an assignment reaches the shell. */
function envPrefix(env: Record<string, string> | undefined, host: string): string {
  if (!env) return '';
  let out = '';
  for (const [k, v] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) {
      throw new Error(`exec on host ${host}: bad environment variable name ${JSON.stringify(k)}`);
    }
    out += `export ${k}='${String(v).replace(/'/g, `'\\''`)}'; `;
  }
  return out;
}

/**
 * Every command starts by announcing its process group on stderr (sshd makes the command's shell a
 * session leader, so its pid is the group id); exec strips the line. On timeout the group is killed
 * from a second channel. The record-separator character keeps the line from being mistaken for output.
 */
const PGID_MARK = '\u001eosstest-pgid ';
const MARK_SEARCH_CHARS = 4096;
const PGID_ANNOUNCE = `printf '\\036osstest-pgid %s\\n' "$$" >&2; `;

/** The ssh2 internals sendKill reaches for; checked at run time, since they are not public API. */
interface ChannelInternals {
  outgoing?: { id?: number; state?: string };
  _client?: { _protocol?: { signal?: (id: number, signal: string) => void } };
}

/**
 * Sends KILL to the command; OpenSSH's sshd (≥ 7.9) delivers it to the command's whole process group,
 * except for root logins, which it refuses ("session signalling requires privilege separation"): the
 * group kill from a second channel (RemoteSession.killGroup) covers those.
 * ssh2 1.17's `channel.signal()` silently does nothing once our side of the channel has sent EOF (which
 * exec always does, so commands see the end of stdin), although SSH allows signals until the channel is
 * closed (mscdex/ssh2 PR #1510). So the request is written through ssh2's protocol object directly,
 * falling back to the public method if those internals ever change shape.
 */
function sendKill(ch: ClientChannel): void {
  const internals = ch as unknown as ChannelInternals;
  const out = internals.outgoing;
  const signal = internals._client?._protocol?.signal;
  try {
    if (out && typeof out.id === 'number' && (out.state === 'open' || out.state === 'eof') && signal) {
      signal.call(internals._client!._protocol, out.id, 'KILL');
    } else {
      ch.signal('KILL');
    }
  } catch {
    // The channel is already closing; the caller's close() ends our side regardless.
  }
}

export class RemoteSession {
  private closed = false;
  private lastError: Error | undefined;
  private sftpPromise: Promise<SFTPWrapper> | undefined;

  private constructor(
    readonly target: SshTarget,
    private readonly client: ssh2.Client,
  ) {
    client.on('error', (err) => {
      this.lastError = err;
    });
    client.on('close', () => {
      this.closed = true;
      this.sftpPromise = undefined;
    });
  }

  static connect(target: SshTarget): Promise<RemoteSession> {
    const port = target.port ?? 22;
    const timeout = target.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const client = new ssh2.Client();
    // Set by the host key check so the caller gets our reason, not ssh2's generic "verification failed".
    let refusal: Error | undefined;

    const hostVerifier = (key: Buffer, verify: (ok: boolean) => void): void => {
      const store = target.hostKeys;
      if (!store) {
        verify(true);
        return;
      }
      const presented = keyText(key);
      store
        .get(target.host)
        .then(async (known) => {
          if (known === undefined) {
            await store.record(target.host, presented);
            verify(true);
          } else if (keyBlob(known).equals(key)) {
            verify(true);
          } else {
            refusal = new HostKeyMismatchError(target, known, presented);
            verify(false);
          }
        })
        .catch((err: unknown) => {
          refusal = new RemoteConnectError(target, `host key store failed: ${(err as Error).message}`, {
            cause: err,
          });
          verify(false);
        });
    };

    const config: ConnectConfig = {
      host: target.address,
      port,
      username: target.username ?? 'root',
      privateKey: target.privateKey,
      readyTimeout: timeout,
      keepaliveInterval: 15_000,
      keepaliveCountMax: 4,
      hostVerifier,
    };

    return new Promise<RemoteSession>((resolve, reject) => {
      let settled = false;
      const fail = (detail: string, cause?: unknown): void => {
        if (settled) return;
        settled = true;
        client.removeAllListeners('ready');
        client.end();
        // ssh2 may emit further errors while tearing down; nobody is listening for them any more.
        client.on('error', () => {});
        reject(refusal ?? new RemoteConnectError(target, detail, { cause }));
      };
      client.once('ready', () => {
        if (settled) return;
        settled = true;
        client.removeAllListeners('error');
        client.removeAllListeners('close');
        // Each exec is a few small request/response packets; with Nagle's algorithm on, one of them
        // regularly waits for the peer's delayed ACK (about 40 ms per command on Linux).
        client.setNoDelay(true);
        resolve(new RemoteSession(target, client));
      });
      client.on('error', (err: Error & { level?: string }) => {
        if (err.level === 'client-timeout') fail(`connect timed out after ${timeout} ms`, err);
        else if (err.level === 'client-authentication')
          fail(`authentication as ${config.username} failed (${err.message})`, err);
        else fail(err.message, err);
      });
      client.on('close', () => fail('connection closed before the session was ready'));
      try {
        client.connect(config);
      } catch (err) {
        // Synchronous throws are bad configuration, e.g. an unparsable private key.
        fail((err as Error).message, err);
      }
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private ensureOpen(what: string): void {
    if (this.closed) {
      const why = this.lastError ? `: ${this.lastError.message}` : '';
      throw new RemoteConnectError(this.target, `${what}: the connection is closed${why}`);
    }
  }

  async exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    this.ensureOpen(`exec ${JSON.stringify(command)}`);
    const host = this.target.host;
    const full = PGID_ANNOUNCE + envPrefix(opts.env, host) + command;
    const start = performance.now();

    return new Promise<ExecResult>((resolve, reject) => {
      this.client.exec(full, { pty: opts.pty ? { term: 'dumb' } : false }, (err, ch) => {
        if (err) {
          reject(
            new RemoteConnectError(this.target, `could not start ${JSON.stringify(command)}: ${err.message}`),
          );
          return;
        }
        this.runChannel(ch, command, opts, start).then(resolve, reject);
      });
    });
  }

  /**
   * Kills a remote process group from a second channel on the same connection. The group exists while
   * its command's channel is open, so its id cannot have been reused for another group meanwhile.
   */
  private killGroup(pgid: number): void {
    if (this.closed) return;
    try {
      this.client.exec(`kill -KILL -- -${pgid} 2>/dev/null; true`, (err, ch) => {
        if (err) return;
        ch.on('data', () => {});
        ch.stderr.on('data', () => {});
        ch.end();
      });
    } catch {
      // The connection went away; the command died with it.
    }
  }

  private runChannel(
    ch: ClientChannel,
    command: string,
    opts: ExecOptions,
    start: number,
  ): Promise<ExecResult> {
    const host = this.target.host;
    return new Promise<ExecResult>((resolve, reject) => {
      const out: string[] = [];
      const err: string[] = [];
      const decOut = new StringDecoder('utf8');
      const decErr = new StringDecoder('utf8');
      let sinkError: unknown;
      const emit = (text: string, stream: 'stdout' | 'stderr'): void => {
        if (!text) return;
        (stream === 'stdout' ? out : err).push(text);
        if (opts.output && sinkError === undefined) {
          try {
            opts.output(text, stream);
          } catch (e) {
            // A throw inside a stream event would crash the process; report it when the command ends.
            sinkError = e;
          }
        }
      };

      // The announcement is the first line the shell writes to stderr (to the terminal, i.e. stdout,
      // under a pty); only a server's own chatter (sshd at debug log levels) can precede it. Complete
      // lines are passed on as they come, the announcement is taken out, and the search ends with it
      // or after the first few KB.
      const markStream: 'stdout' | 'stderr' = opts.pty ? 'stdout' : 'stderr';
      let pgid: number | undefined;
      let held: string | undefined = '';
      let searched = 0;
      const receive = (text: string, stream: 'stdout' | 'stderr', flush = false): void => {
        if (stream !== markStream || held === undefined) {
          emit(text, stream);
          return;
        }
        held += text;
        let passed = '';
        for (;;) {
          const nl = held.indexOf('\n');
          if (nl < 0) break;
          const line = held.slice(0, nl + 1);
          held = held.slice(nl + 1);
          searched += line.length;
          if (line.startsWith(PGID_MARK)) {
            const n = Number(line.slice(PGID_MARK.length).trim());
            if (Number.isInteger(n) && n > 1) pgid = n;
            emit(passed + held, stream);
            held = undefined;
            return;
          }
          passed += line;
        }
        if (flush || searched + held.length > MARK_SEARCH_CHARS) {
          emit(passed + held, stream);
          held = undefined;
          return;
        }
        emit(passed, stream);
      };
      ch.on('data', (chunk: Buffer) => receive(decOut.write(chunk), 'stdout'));
      ch.stderr.on('data', (chunk: Buffer) => receive(decErr.write(chunk), 'stderr'));

      let exitCode: number | null = null;
      let signal: string | null = null;
      ch.on('exit', (code: number | null, sig?: string) => {
        exitCode = code ?? null;
        signal = sig ?? null;
      });

      let timedOut = false;
      let finished = false;
      let graceTimer: NodeJS.Timeout | undefined;
      const timer =
        opts.timeoutMs !== undefined
          ? setTimeout(() => {
              timedOut = true;
              // The signal request is the protocol's way, but OpenSSH refuses it for root logins (their
              // sessions run without privilege separation); killing the group by id works for any user.
              sendKill(ch);
              if (pgid !== undefined) this.killGroup(pgid);
              ch.close();
              // A server that honours neither must not hang us.
              graceTimer = setTimeout(finish, KILL_GRACE_MS);
            }, opts.timeoutMs)
          : undefined;

      const finish = (): void => {
        if (finished) return;
        finished = true;
        if (timer) clearTimeout(timer);
        if (graceTimer) clearTimeout(graceTimer);
        receive(decOut.end(), 'stdout', true);
        receive(decErr.end(), 'stderr', true);
        const result: ExecResult = {
          command,
          host,
          exitCode,
          signal,
          stdout: out.join(''),
          stderr: err.join(''),
          timedOut,
          durationMs: performance.now() - start,
        };
        if (sinkError !== undefined) reject(sinkError);
        else if (!opts.allowFailure && (timedOut || exitCode !== 0)) reject(new RemoteExecError(result));
        else resolve(result);
      };
      ch.on('close', finish);

      if (opts.stdin !== undefined) ch.end(opts.stdin);
      else ch.end();
    });
  }

  private sftp(): Promise<SFTPWrapper> {
    this.ensureOpen('sftp');
    if (!this.sftpPromise) {
      const p = new Promise<SFTPWrapper>((resolve, reject) => {
        this.client.sftp((err, sftp) => {
          if (err) {
            reject(new RemoteConnectError(this.target, `could not start sftp: ${err.message}`));
            return;
          }
          sftp.on('close', () => {
            if (this.sftpPromise === p) this.sftpPromise = undefined;
          });
          resolve(sftp);
        });
      });
      p.catch(() => {
        if (this.sftpPromise === p) this.sftpPromise = undefined;
      });
      this.sftpPromise = p;
    }
    return this.sftpPromise;
  }

  private async sftpOp<T>(
    what: string,
    op: (sftp: SFTPWrapper, cb: (err: Error | null | undefined, v?: T) => void) => void,
  ): Promise<T> {
    const sftp = await this.sftp();
    return new Promise<T>((resolve, reject) => {
      op(sftp, (err, v) => {
        if (err)
          reject(new Error(`sftp ${what} on host ${this.target.host}: ${err.message}`, { cause: err }));
        else resolve(v as T);
      });
    });
  }

  async put(localPath: string, remotePath: string): Promise<void> {
    await this.sftpOp<void>(`put ${localPath} -> ${remotePath}`, (s, cb) =>
      s.fastPut(localPath, remotePath, cb),
    );
  }

  async get(remotePath: string, localPath: string): Promise<void> {
    await this.sftpOp<void>(`get ${remotePath} -> ${localPath}`, (s, cb) =>
      s.fastGet(remotePath, localPath, cb),
    );
  }

  /** Writes the whole file; with `mode`, the file ends with exactly that mode whatever the remote umask. */
  async writeFile(remotePath: string, data: string | Buffer, mode?: number): Promise<void> {
    const what = `write ${remotePath}`;
    const opts = mode === undefined ? {} : { mode };
    await this.sftpOp<void>(what, (s, cb) => s.writeFile(remotePath, data, opts, cb));
    if (mode !== undefined) await this.sftpOp<void>(what, (s, cb) => s.chmod(remotePath, mode, cb));
  }

  async readFile(remotePath: string): Promise<Buffer> {
    return this.sftpOp<Buffer>(`read ${remotePath}`, (s, cb) => s.readFile(remotePath, cb));
  }

  /** Ends the connection; resolves once it is closed (or after 2 s if the server does not answer). */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.client.destroy();
        resolve();
      }, 2_000);
      this.client.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      this.client.end();
    });
  }
}

/**
 * Connects, retrying until `timeoutMs` has passed: for hosts that are booting. A changed host key is
 * not retried (it will not fix itself). The error says how long it tried and the last failure.
 */
export async function waitForSsh(
  target: SshTarget,
  opts: { timeoutMs: number; intervalMs?: number; log?: (msg: string) => void },
): Promise<RemoteSession> {
  const interval = opts.intervalMs ?? 1_000;
  const start = performance.now();
  const deadline = start + opts.timeoutMs;
  let attempts = 0;
  let last: Error | undefined;
  for (;;) {
    const left = deadline - performance.now();
    if (left <= 0) break;
    attempts++;
    const perTry = Math.max(1, Math.min(target.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, left));
    try {
      const s = await RemoteSession.connect({ ...target, connectTimeoutMs: Math.ceil(perTry) });
      opts.log?.(
        `ssh to ${describeTarget(target)} up after ${((performance.now() - start) / 1000).toFixed(1)} s`,
      );
      return s;
    } catch (err) {
      if (err instanceof HostKeyMismatchError) throw err;
      last = err as Error;
      opts.log?.(`waiting for ssh (attempt ${attempts}): ${last.message}`);
    }
    const pause = Math.min(interval, deadline - performance.now());
    if (pause > 0) await new Promise((r) => setTimeout(r, pause));
  }
  const secs = ((performance.now() - start) / 1000).toFixed(1);
  throw new RemoteConnectError(
    target,
    `not reachable after ${secs} s (${attempts} attempt${attempts === 1 ? '' : 's'}, limit ${opts.timeoutMs} ms)` +
      `; last error: ${last ? last.message.replace(/^ssh to host \S+ \([^)]*\): /, '') : 'none'}`,
    { cause: last },
  );
}
