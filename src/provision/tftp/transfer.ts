/**
 * One read transfer, on its own UDP port (the server's transfer ID). Sends a window of DATA blocks
 * (1 block = RFC 1350 lock-step; more with RFC 7440 windowsize), slides it on each ACK that
 * acknowledges something new, and retransmits only on timeout: duplicate and old ACKs are ignored,
 * which is what prevents the Sorcerer's Apprentice doubling. Block numbers are 16-bit on the wire and
 * roll over from 65535 to 0; internally they are plain integers, so files of any length work.
 *
 * The port has two sockets (see TransferSockets): one connected to the client, which the kernel
 * hands only the client's packets, and one unconnected that receives everything else and answers
 * it with ERROR 5. Lock-step throughput is bounded by the time from an ACK to the next DATA, so the
 * next window's packets are built right after a window is sent, not when its ACK arrives.
 *
 * This is the JS pump. When the addon is built, NativeReadTransfer (native-transfer.ts) runs the
 * same protocol off the event loop instead; the two must behave alike (the TFTP tests run on both).
 */
import type { Socket } from 'node:dgram';
import type { promises as fsp } from 'node:fs';
import type { Negotiated } from './options.js';
import {
  ErrorCode,
  type ErrorCode as ErrorCodeT,
  encodeData,
  encodeError,
  encodeOack,
  Opcode,
  parsePeerPacket,
} from './packet.js';
import { BlockReader } from './reader.js';

export interface Peer {
  address: string;
  port: number;
}

export interface TransferCounters {
  packetsReceived: number;
  bytesSent: number;
  retransmissions: number;
  timeouts: number;
  droppedMalformed: number;
  droppedWrongTid: number;
}

export interface TransferHooks {
  counters: TransferCounters;
  errorSent(code: ErrorCodeT): void;
  dropped(reason: string, from: Peer): void;
  wrongTid(from: Peer): void;
  socketError(e: Error): void;
  end(result: TransferResult): void;
}

export type TransferOutcome = 'completed' | 'aborted' | 'timeout' | 'failed';

export interface TransferResult {
  outcome: TransferOutcome;
  /** File bytes the client has acknowledged. */
  bytes: number;
  detail?: string;
}

/**
 * Both sockets are bound to the same local address and port (SO_REUSEADDR). `peer` is connected to
 * the client: the kernel delivers the client's packets to it (a connected socket is the more specific
 * match) and skips the route lookup on each send. `strays` is not connected and gets every packet
 * from anyone else, so those can be answered with ERROR 5 as RFC 1350 asks, without touching the
 * transfer.
 */
export interface TransferSockets {
  peer: Socket;
  strays: Socket;
}

/** What the server holds of a running transfer, whichever pump moves its data (this one or native-transfer.ts). */
export interface Transfer {
  start(): void;
  readonly done: boolean;
  /** Ends the transfer from outside (server shutdown); the client gets ERROR 0 with `reason`. */
  abort(reason: string): void;
  /** Counters the transfer has not yet added to hooks.counters (a native pump's, while it runs). */
  liveCounters?(): Partial<TransferCounters>;
}

/**
 * A packet on a transfer's port from anyone but its client. It is answered with ERROR 5 when it came
 * to the strays socket (`answerFrom`), as RFC 1350 asks, but never when it is itself an ERROR: two
 * confused servers would ping-pong forever.
 */
export function onStranger(
  answerFrom: Socket | undefined,
  msg: Buffer,
  from: Peer,
  hooks: TransferHooks,
): void {
  hooks.counters.droppedWrongTid++;
  hooks.wrongTid(from);
  if (answerFrom && !(msg.length >= 2 && msg[0] === 0 && msg[1] === Opcode.ERROR)) {
    answerFrom.send(encodeError(ErrorCode.UnknownTransferId, 'Unknown transfer ID'), from.port, from.address);
    hooks.errorSent(ErrorCode.UnknownTransferId);
  }
}

export interface TransferSetup {
  sockets: TransferSockets;
  peer: Peer;
  handle: fsp.FileHandle;
  negotiated: Negotiated;
  timeoutMs: number;
  retries: number;
}

export class ReadTransfer implements Transfer {
  private readonly sockets: TransferSockets;
  private readonly peer: Peer;
  private readonly handle: fsp.FileHandle;
  private readonly blksize: number;
  private readonly windowsize: number;
  private readonly retries: number;
  private readonly reader: BlockReader;
  private readonly oack: Buffer | undefined;
  private state: 'oack' | 'data' | 'done' = 'data';
  /** First block not yet acknowledged. */
  private winStart = 1;
  /**
   * Encoded DATA packets for blocks winStart, winStart+1, …: the first `sent` are in flight (kept for
   * retransmission), up to a window more are built ahead.
   */
  private queue: Buffer[] = [];
  private sent = 0;
  /** The final (short or empty) block, once it has been read. */
  private lastBlock = Number.POSITIVE_INFINITY;
  private waitingForDisk = false;
  private tries = 0;
  /** File bytes acknowledged so far. */
  private acked = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    setup: TransferSetup,
    private readonly hooks: TransferHooks,
  ) {
    this.sockets = setup.sockets;
    this.peer = setup.peer;
    this.handle = setup.handle;
    this.blksize = setup.negotiated.blksize;
    this.windowsize = setup.negotiated.windowsize;
    this.retries = setup.retries;
    this.reader = new BlockReader(setup.handle, this.blksize);
    this.oack = setup.negotiated.oack.size > 0 ? encodeOack(setup.negotiated.oack) : undefined;
    this.timer = setTimeout(() => this.onTimeout(), setup.timeoutMs);
    this.timer.unref();
    for (const s of [this.sockets.peer, this.sockets.strays]) {
      s.on('message', (msg, rinfo) => {
        try {
          this.onMessage(s, msg, rinfo);
        } catch (e) {
          this.fail(`internal error: ${e instanceof Error ? e.message : String(e)}`);
        }
      });
      s.on('error', (e) => this.hooks.socketError(e));
    }
  }

  start(): void {
    if (this.oack) {
      this.state = 'oack';
      this.send(this.oack);
      this.timer.refresh();
    } else {
      this.pump();
    }
  }

  get done(): boolean {
    return this.state === 'done';
  }

  /** Ends the transfer from outside (server shutdown). */
  abort(reason: string): void {
    if (this.state === 'done') return;
    this.finish({ outcome: 'failed', bytes: this.acked, detail: reason }, ErrorCode.NotDefined, reason);
  }

  private onMessage(socket: Socket, msg: Buffer, rinfo: { address: string; port: number }): void {
    if (this.state === 'done') return;
    this.hooks.counters.packetsReceived++;
    if (rinfo.port !== this.peer.port || rinfo.address !== this.peer.address) {
      const from = { address: rinfo.address, port: rinfo.port };
      onStranger(socket === this.sockets.strays ? socket : undefined, msg, from, this.hooks);
      return;
    }
    // The hot path: a well-formed ACK from our peer.
    if (msg.length >= 4 && msg[0] === 0 && msg[1] === Opcode.ACK) {
      this.onAck(msg.readUInt16BE(2));
      return;
    }
    const p = parsePeerPacket(msg);
    if (!p.ok) {
      this.hooks.counters.droppedMalformed++;
      this.hooks.dropped(p.reason, this.peer);
      return;
    }
    if (p.value.opcode === Opcode.ERROR) {
      const { code, message } = p.value;
      this.finish({ outcome: 'aborted', bytes: this.acked, detail: `client sent error ${code}: ${message}` });
      return;
    }
    this.hooks.counters.droppedMalformed++;
    this.hooks.dropped(`unexpected opcode ${p.value.opcode} in a read transfer`, this.peer);
  }

  private onAck(block: number): void {
    if (this.state === 'oack') {
      if (block !== 0) return;
      this.state = 'data';
      this.tries = 0;
      this.pump();
      return;
    }
    // Which of the blocks in flight does this acknowledge? delta 0 = the one before the window
    // (a duplicate or old ACK), anything beyond what was sent = stale from an earlier wrap.
    const delta = (block - (this.winStart - 1)) & 0xffff;
    if (delta === 0 || delta > this.sent) return;
    for (let i = 0; i < delta; i++) this.acked += this.queue[i]!.length - 4;
    this.queue.splice(0, delta);
    this.sent = 0;
    this.winStart += delta;
    this.tries = 0;
    if (this.winStart > this.lastBlock) {
      this.finish({ outcome: 'completed', bytes: this.acked });
      return;
    }
    this.pump();
  }

  /**
   * Builds packets until the queue holds `want` or the file ends. Returns false when a block is not
   * read from disk yet (its read has been started).
   */
  private fill(want: number): boolean {
    while (this.queue.length < want) {
      const n = this.winStart + this.queue.length;
      if (n > this.lastBlock) return true;
      const payload = this.reader.block(n);
      if (payload === undefined) return false;
      if (payload.length < this.blksize) this.lastBlock = n;
      this.queue.push(encodeData(n, payload));
    }
    return true;
  }

  /** Sends the window starting at winStart (RFC 7440: after a partial ACK, from the block after it). */
  private pump(): void {
    if (this.waitingForDisk || this.state !== 'data') return;
    if (!this.fill(this.windowsize)) {
      if (this.reader.error) {
        this.fail(`read error: ${this.reader.error.message}`);
        return;
      }
      this.waitingForDisk = true;
      void this.reader.whenReady(this.winStart + this.queue.length).then(() => {
        this.waitingForDisk = false;
        if (this.reader.error) this.fail(`read error: ${this.reader.error.message}`);
        else this.pump();
      });
      return;
    }
    const n = Math.min(this.windowsize, this.queue.length);
    for (let i = 0; i < n; i++) this.send(this.queue[i]!);
    this.sent = n;
    this.timer.refresh();
    // Off the critical path now: the client is busy with what we just sent.
    this.fill(2 * this.windowsize);
  }

  private onTimeout(): void {
    if (this.state === 'done') return;
    if (this.waitingForDisk) {
      this.timer.refresh();
      return;
    }
    this.tries++;
    if (this.tries > this.retries) {
      this.hooks.counters.timeouts++;
      const block = this.state === 'oack' ? 0 : this.winStart;
      const detail = `no ACK for block ${block} after ${this.retries} retransmissions`;
      this.finish({ outcome: 'timeout', bytes: this.acked, detail }, ErrorCode.NotDefined, 'Timeout');
      return;
    }
    if (this.state === 'oack' && this.oack) {
      this.hooks.counters.retransmissions++;
      this.send(this.oack);
    } else {
      // Resend the whole window (RFC 7440: the receiver discards what it already has).
      for (let i = 0; i < this.sent; i++) {
        this.hooks.counters.retransmissions++;
        this.send(this.queue[i]!);
      }
    }
    this.timer.refresh();
  }

  private send(pkt: Buffer): void {
    if (pkt[1] === Opcode.DATA) this.hooks.counters.bytesSent += pkt.length - 4;
    this.sockets.peer.send(pkt);
  }

  private fail(detail: string): void {
    this.finish({ outcome: 'failed', bytes: this.acked, detail }, ErrorCode.NotDefined, detail.slice(0, 200));
  }

  private finish(result: TransferResult, errorCode?: ErrorCodeT, errorMessage?: string): void {
    if (this.state === 'done') return;
    this.state = 'done';
    clearTimeout(this.timer);
    this.reader.release();
    this.queue = [];
    const close = (s: Socket) => {
      try {
        s.close();
      } catch {
        // already closed
      }
    };
    close(this.sockets.strays);
    if (errorCode !== undefined) {
      this.hooks.errorSent(errorCode);
      // Close only once the error is on the wire; closing first could cancel the send.
      this.sockets.peer.send(encodeError(errorCode, errorMessage ?? ''), () => close(this.sockets.peer));
    } else close(this.sockets.peer);
    this.handle.close().catch(() => {});
    this.hooks.end(result);
  }
}
