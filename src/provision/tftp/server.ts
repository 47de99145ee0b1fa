/**
 * The controller's TFTP server: read-only, confined to one root, for PXE clients (pxelinux, iPXE,
 * UEFI firmware). Requests arrive on the main port; each accepted read gets its own ephemeral socket
 * (RFC 1350 transfer ID), and so does each refusal, as dnsmasq and tftpd-hpa do. Nothing a peer sends
 * can throw out of a socket handler: malformed packets are counted and dropped.
 *
 * Modes: octet only. netascii is refused with ERROR 4 (boot clients never ask for it, and serving it
 * as octet would hand out unconverted text under a name that promises conversion).
 *
 * The data phase of a read runs in the native pump when it is built (native-transfer.ts), in JS
 * otherwise (transfer.ts); everything before it, and the answers to strangers, is here either way.
 */
import { createSocket, type Socket, type SocketType } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { realpath, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';
import { nativePump, type PumpBinding } from './native-pump.js';
import { NativeReadTransfer } from './native-transfer.js';
import { BLKSIZE_MAX, BLKSIZE_MIN, negotiate } from './options.js';
import {
  ErrorCode,
  type ErrorCode as ErrorCodeT,
  type ErrorKind,
  encodeError,
  errorKind,
  MAX_FILENAME_BYTES,
  Opcode,
  parseRequest,
} from './packet.js';
import { openInsideRoot } from './paths.js';
import {
  type Peer,
  ReadTransfer,
  type Transfer,
  type TransferCounters,
  type TransferHooks,
  type TransferResult,
  type TransferSockets,
} from './transfer.js';

export type { Peer } from './transfer.js';

export interface TftpServerOptions {
  /** Directory served; everything outside it (after symlinks) is refused. */
  root: string;
  /** Address to bind; default 0.0.0.0. IPv6 addresses bind a udp6 socket. */
  host?: string;
  /** Default 69; 0 picks a free port (see address()). */
  port?: number;
  /** Called for every noteworthy event; must not be slow (it runs on the packet path). */
  log?: (event: TftpLogEvent) => void;
  /** Largest blksize granted; default 1468 (a 1500-byte Ethernet MTU less IP, UDP, TFTP headers). */
  maxBlksize?: number;
  /** Largest windowsize granted (RFC 7440); default 64. */
  maxWindowsize?: number;
  /** Retransmissions of one packet before a transfer is given up; default 5. */
  retries?: number;
  /** Retransmission timeout when the client names none; default 1000 ms. */
  timeoutMs?: number;
  /** Transfers at once; more requests get ERROR 0 "Server busy". Default 256. */
  maxTransfers?: number;
  /**
   * What moves a read's data: 'native' (the addon, native/tftp-pump; start() fails with the reason when
   * it is not built), 'js' (the event loop), or 'auto' (native when available). Default 'auto'.
   */
  dataPump?: DataPump;
}

export type DataPump = 'native' | 'js' | 'auto';

/** How a request ended. */
export type TftpOutcome =
  | 'completed'
  | 'not-found'
  | 'refused'
  | 'refused-write'
  | 'bad-request'
  | 'busy'
  | 'aborted'
  | 'timeout'
  | 'failed';

/** One per request, when it is over: the record the webspace/progress layer keeps ("boot file fetched"). */
export interface TftpRequestEvent {
  /** The filename as the client sent it. */
  file: string;
  client: Peer;
  outcome: TftpOutcome;
  /** The real path served, when the request got that far. */
  path?: string;
  size?: number;
  /** File bytes the client acknowledged. */
  bytes: number;
  blksize?: number;
  windowsize?: number;
  durationMs: number;
  detail?: string;
}

export type TftpLogEvent =
  | { type: 'listening'; address: string; port: number; dataPump: 'native' | 'js' }
  | ({ type: 'request' } & TftpRequestEvent)
  | { type: 'dropped'; reason: string; from: Peer; socket: 'server' | 'transfer' }
  | { type: 'wrong-tid'; from: Peer }
  | { type: 'socket-error'; message: string }
  | { type: 'internal-error'; message: string };

export interface TftpStats {
  /** Packets received on the main port and on transfer sockets. */
  packetsReceived: number;
  /** Well-formed RRQ/WRQ. */
  requests: number;
  /** A request repeated by a client whose transfer is already under way (ignored). */
  duplicateRequests: number;
  transfersStarted: number;
  transfersCompleted: number;
  /** The client ended the transfer with an ERROR (e.g. after reading tsize). */
  transfersAborted: number;
  transfersFailed: number;
  activeTransfers: number;
  /** DATA payload bytes put on the wire, retransmissions included. */
  bytesSent: number;
  errorsSent: Record<ErrorKind, number>;
  refusedWrites: number;
  refusedPaths: number;
  droppedMalformed: number;
  droppedWrongTid: number;
  /** Packets sent again after a timeout. */
  retransmissions: number;
  /** Transfers given up after all retries. */
  timeouts: number;
  internalErrors: number;
}

interface Events {
  request: [TftpRequestEvent];
}

/** A request being served: from the moment it is accepted (the file is still being opened) to its end. */
interface Slot {
  key: string;
  /** The request as received, to recognise a client repeating it. */
  request: Buffer;
  transfer?: Transfer;
  /** Settles when the slot is released (the request is over, whichever way). */
  released: Promise<void>;
  markReleased: () => void;
}

function zeroErrors(): Record<ErrorKind, number> {
  return {
    NotDefined: 0,
    FileNotFound: 0,
    AccessViolation: 0,
    DiskFull: 0,
    IllegalOperation: 0,
    UnknownTransferId: 0,
    FileExists: 0,
    NoSuchUser: 0,
    OptionNegotiation: 0,
  };
}

function intOption(name: string, v: number | undefined, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`tftp: option ${name} must be an integer in ${min}..${max}, got ${v}`);
  }
  return v;
}

export class TftpServer extends EventEmitter<Events> {
  private readonly counters: TransferCounters & Omit<TftpStats, keyof TransferCounters | 'activeTransfers'>;
  private readonly slots = new Set<Slot>();
  /** The latest slot of each client address|port, for spotting repeated requests. */
  private readonly byClient = new Map<string, Slot>();
  private closed = false;

  private constructor(
    private readonly socket: Socket,
    private readonly rootReal: string,
    private readonly cfg: Required<Omit<TftpServerOptions, 'log' | 'root' | 'port' | 'dataPump'>> & {
      log: TftpServerOptions['log'];
      type: SocketType;
    },
    /** The native pump's binding, when reads use it. */
    private readonly pump: PumpBinding | undefined,
  ) {
    super();
    this.counters = {
      packetsReceived: 0,
      requests: 0,
      duplicateRequests: 0,
      transfersStarted: 0,
      transfersCompleted: 0,
      transfersAborted: 0,
      transfersFailed: 0,
      bytesSent: 0,
      errorsSent: zeroErrors(),
      refusedWrites: 0,
      refusedPaths: 0,
      droppedMalformed: 0,
      droppedWrongTid: 0,
      retransmissions: 0,
      timeouts: 0,
      internalErrors: 0,
    };
    socket.on('message', (msg, rinfo) => {
      try {
        this.onRequestPacket(msg, { address: rinfo.address, port: rinfo.port });
      } catch (e) {
        this.internalError(e);
      }
    });
    socket.on('error', (e) => this.log({ type: 'socket-error', message: `main socket: ${e.message}` }));
  }

  /** Starts a server; rejects with a message naming the option or the address when it cannot. */
  static async start(opts: TftpServerOptions): Promise<TftpServer> {
    if (typeof opts.root !== 'string' || opts.root === '')
      throw new TypeError('tftp: option root is required');
    let rootReal: string;
    try {
      rootReal = await realpath(opts.root);
      if (!(await stat(rootReal)).isDirectory()) throw new Error('not a directory');
    } catch (e) {
      throw new Error(`tftp: root ${opts.root}: ${e instanceof Error ? e.message : String(e)}`);
    }
    const host = opts.host ?? '0.0.0.0';
    const family = isIP(host);
    if (family === 0)
      throw new TypeError(`tftp: option host must be an IP address, got ${JSON.stringify(host)}`);
    const cfg = {
      host,
      type: (family === 6 ? 'udp6' : 'udp4') as SocketType,
      log: opts.log,
      maxBlksize: intOption('maxBlksize', opts.maxBlksize, 1468, BLKSIZE_MIN, BLKSIZE_MAX),
      maxWindowsize: intOption('maxWindowsize', opts.maxWindowsize, 64, 1, 65535),
      retries: intOption('retries', opts.retries, 5, 0, 1000),
      timeoutMs: intOption('timeoutMs', opts.timeoutMs, 1000, 1, 255_000),
      maxTransfers: intOption('maxTransfers', opts.maxTransfers, 256, 1, 65535),
    };
    const port = intOption('port', opts.port, 69, 0, 65535);
    const pump = choosePump(opts.dataPump);
    const socket = createSocket({ type: cfg.type });
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error) => {
        socket.close();
        reject(new Error(`tftp: cannot listen on ${host}:${port}: ${e.message}`));
      };
      socket.once('error', onError);
      socket.bind(port, host, () => {
        socket.off('error', onError);
        resolve();
      });
    });
    const server = new TftpServer(socket, rootReal, cfg, pump);
    const a = socket.address();
    server.log({ type: 'listening', address: a.address, port: a.port, dataPump: server.dataPump });
    return server;
  }

  address(): AddressInfo {
    return this.socket.address();
  }

  /** What moves the data of reads: the native pump or the event loop. */
  get dataPump(): 'native' | 'js' {
    return this.pump ? 'native' : 'js';
  }

  stats(): TftpStats {
    const out: TftpStats = {
      ...this.counters,
      errorsSent: { ...this.counters.errorsSent },
      activeTransfers: [...this.slots].filter((t) => t.transfer && !t.transfer.done).length,
    };
    // A native pump's counters reach this.counters only when it ends; until then they are read live.
    for (const slot of this.slots) {
      const live = slot.transfer?.liveCounters?.();
      if (!live) continue;
      for (const k of Object.keys(live) as (keyof TransferCounters)[]) out[k] += live[k] ?? 0;
    }
    return out;
  }

  /**
   * Stops listening and ends every transfer (their clients get ERROR 0). Resolves once every request
   * is over: a native pump reports its end a moment after it is asked to stop.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of [...this.slots]) t.transfer?.abort('Server shutting down');
    await Promise.all([...this.slots].map((t) => t.released));
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  private log(event: TftpLogEvent): void {
    if (!this.cfg.log) return;
    try {
      this.cfg.log(event);
    } catch {
      // A failing logger must not take the packet path down with it.
    }
  }

  private internalError(e: unknown): void {
    this.counters.internalErrors++;
    this.log({ type: 'internal-error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  }

  private report(ev: TftpRequestEvent): void {
    this.log({ type: 'request', ...ev });
    try {
      this.emit('request', ev);
    } catch (e) {
      this.internalError(e);
    }
  }

  private onRequestPacket(msg: Buffer, from: Peer): void {
    if (this.closed) return;
    this.counters.packetsReceived++;
    const parsed = parseRequest(msg);
    if (!parsed.ok) {
      this.counters.droppedMalformed++;
      this.log({ type: 'dropped', reason: parsed.reason, from, socket: 'server' });
      return;
    }
    const req = parsed.value;
    this.counters.requests++;
    const t0 = performance.now();
    const key = `${from.address}|${from.port}`;
    const existing = this.byClient.get(key);
    if (
      existing &&
      (existing.transfer === undefined || !existing.transfer.done) &&
      existing.request.equals(msg)
    ) {
      // The client lost our first answer and asked again; the running transfer's retransmission covers it.
      this.counters.duplicateRequests++;
      return;
    }
    const refuse = (
      outcome: TftpOutcome,
      code: ErrorCodeT,
      message: string,
      extra: Partial<TftpRequestEvent> = {},
    ) => {
      this.sendErrorFromNewPort(from, code, message);
      this.report({
        file: req.filename,
        client: from,
        outcome,
        bytes: 0,
        durationMs: performance.now() - t0,
        detail: message,
        ...extra,
      });
    };
    if (req.opcode === Opcode.WRQ) {
      this.counters.refusedWrites++;
      refuse('refused-write', ErrorCode.AccessViolation, 'Server is read-only');
      return;
    }
    if (Buffer.byteLength(req.filename) > MAX_FILENAME_BYTES) {
      this.counters.refusedPaths++;
      refuse('bad-request', ErrorCode.IllegalOperation, `Filename longer than ${MAX_FILENAME_BYTES} bytes`, {
        file: `${req.filename.slice(0, 64)}…`,
      });
      return;
    }
    if (req.mode !== 'octet') {
      const why =
        req.mode === 'netascii' ? 'netascii mode not supported; use octet' : 'Unknown transfer mode';
      refuse('bad-request', ErrorCode.IllegalOperation, why);
      return;
    }
    if (this.slots.size >= this.cfg.maxTransfers) {
      refuse('busy', ErrorCode.NotDefined, 'Server busy');
      return;
    }
    let markReleased = () => {};
    const released = new Promise<void>((resolve) => {
      markReleased = resolve;
    });
    const slot: Slot = { key, request: Buffer.from(msg), released, markReleased };
    this.slots.add(slot);
    this.byClient.set(key, slot);
    this.startRead(req.filename, req.options, from, slot, t0).catch((e: unknown) => {
      this.release(slot);
      this.internalError(e);
    });
  }

  private release(slot: Slot): void {
    this.slots.delete(slot);
    if (this.byClient.get(slot.key) === slot) this.byClient.delete(slot.key);
    slot.markReleased();
  }

  private async startRead(
    filename: string,
    options: Map<string, string>,
    from: Peer,
    slot: Slot,
    t0: number,
  ): Promise<void> {
    const release = () => this.release(slot);
    const resolved = await openInsideRoot(this.rootReal, filename);
    if (!resolved.ok) {
      release();
      if (resolved.refused) this.counters.refusedPaths++;
      this.sendErrorFromNewPort(from, resolved.code, resolved.message);
      this.report({
        file: filename,
        client: from,
        outcome: resolved.refused ? 'refused' : 'not-found',
        bytes: 0,
        durationMs: performance.now() - t0,
        detail: resolved.message,
      });
      return;
    }
    const { handle, size, path } = resolved;
    if (this.closed) {
      release();
      await handle.close();
      return;
    }
    const negotiated = negotiate(options, size, this.cfg);
    // The native pump binds its own socket connected to the client (beside strays): bind only strays.
    let sockets: TransferSockets | { strays: Socket; peer?: undefined };
    try {
      sockets = this.pump ? { strays: await this.bindSocket(0, true) } : await this.bindTransferSockets(from);
    } catch (e) {
      release();
      await handle.close();
      throw e;
    }
    if (this.closed) {
      release();
      sockets.peer?.close();
      sockets.strays.close();
      await handle.close();
      return;
    }
    const counters = this.counters;
    const hooks: TransferHooks = {
      counters,
      errorSent: (code) => this.countError(code),
      dropped: (reason, peer) => this.log({ type: 'dropped', reason, from: peer, socket: 'transfer' }),
      wrongTid: (peer) => this.log({ type: 'wrong-tid', from: peer }),
      socketError: (e) =>
        this.log({ type: 'socket-error', message: `transfer to ${slot.key}: ${e.message}` }),
      end: (r: TransferResult) => {
        release();
        if (r.outcome === 'completed') counters.transfersCompleted++;
        else if (r.outcome === 'aborted') counters.transfersAborted++;
        else counters.transfersFailed++;
        this.report({
          file: filename,
          client: from,
          outcome: r.outcome,
          path,
          size,
          bytes: r.bytes,
          blksize: negotiated.blksize,
          windowsize: negotiated.windowsize,
          durationMs: performance.now() - t0,
          ...(r.detail !== undefined ? { detail: r.detail } : {}),
        });
      },
    };
    const common = {
      peer: from,
      handle,
      negotiated,
      timeoutMs: negotiated.timeoutMs ?? this.cfg.timeoutMs,
      retries: this.cfg.retries,
    };
    const transfer: Transfer =
      sockets.peer === undefined
        ? new NativeReadTransfer(this.pump!, { ...common, strays: sockets.strays }, hooks)
        : new ReadTransfer({ ...common, sockets }, hooks);
    slot.transfer = transfer;
    counters.transfersStarted++;
    transfer.start();
  }

  private countError(code: ErrorCodeT): void {
    this.counters.errorsSent[errorKind(code)]++;
  }

  private bindSocket(port: number, reuseAddr: boolean): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const s = createSocket({ type: this.cfg.type, reuseAddr, lookup: literalLookup });
      const onError = (e: Error) => {
        s.close();
        reject(new Error(`tftp: cannot bind a transfer socket on ${this.cfg.host}: ${e.message}`));
      };
      s.once('error', onError);
      s.bind(port, this.cfg.host, () => {
        s.off('error', onError);
        resolve(s);
      });
    });
  }

  /** The two sockets of one transfer port; see TransferSockets for why two. */
  private async bindTransferSockets(peer: Peer): Promise<TransferSockets> {
    const strays = await this.bindSocket(0, true);
    let connected: Socket | undefined;
    try {
      const s = await this.bindSocket(strays.address().port, true);
      connected = s;
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.connect(peer.port, peer.address, () => {
          s.off('error', reject);
          resolve();
        });
      });
      return { peer: s, strays };
    } catch (e) {
      strays.close();
      connected?.close();
      throw e;
    }
  }

  /** Refusals come from a fresh port too, so the client sees one consistent transfer ID rule. */
  private sendErrorFromNewPort(to: Peer, code: ErrorCodeT, message: string): void {
    this.countError(code);
    this.bindSocket(0, false).then(
      (s) => {
        s.on('error', () => {});
        s.send(encodeError(code, message), to.port, to.address, () => s.close());
      },
      (e: unknown) => this.log({ type: 'socket-error', message: e instanceof Error ? e.message : String(e) }),
    );
  }
}

/**
 * Every address we send to or bind is an IP literal (rinfo.address, or host, checked by isIP), so
 * no resolver is needed; the default one defers each send by a tick, which costs a lock-step transfer
 * measurable throughput.
 */
function literalLookup(
  address: string,
  _options: unknown,
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  callback(null, address, address.includes(':') ? 6 : 4);
}

/** The native pump's binding when reads should use it; throws when 'native' is asked for and not there. */
function choosePump(want: DataPump | undefined): PumpBinding | undefined {
  const mode = want ?? 'auto';
  if (mode !== 'native' && mode !== 'js' && mode !== 'auto') {
    throw new TypeError(`tftp: option dataPump must be native, js or auto, got ${JSON.stringify(want)}`);
  }
  if (mode === 'js') return undefined;
  const status = nativePump();
  if (status.available) return status.binding;
  if (mode === 'native') throw new Error(`tftp: dataPump native is not available: ${status.reason}`);
  return undefined;
}

export function startTftpServer(opts: TftpServerOptions): Promise<TftpServer> {
  return TftpServer.start(opts);
}
