/**
 * A read transfer whose data phase runs in the native pump (native/tftp-pump): OACK, DATA windows,
 * ACKs, retransmission and giving up all happen on the pump's thread with its own socket connected
 * to the client, so a lock-step block costs one send and one recv instead of a trip through the event
 * loop. This side keeps the strays socket (strangers get ERROR 5, as in ReadTransfer), starts the
 * pump, forwards an abort, and on the pump's report feeds the same hooks ReadTransfer does: counters,
 * ERRORs sent, drops, socket errors and the end. Per-packet log events are summarised once per
 * transfer (the pump does not call into JS per packet; that is the point of it).
 */
import type { Socket } from 'node:dgram';
import type { promises as fsp } from 'node:fs';
import type { PumpBinding, PumpHandle, PumpResult } from './native-pump.js';
import type { Negotiated } from './options.js';
import { type ErrorCode, encodeError, encodeOack } from './packet.js';
import {
  onStranger,
  type Peer,
  type Transfer,
  type TransferCounters,
  type TransferHooks,
  type TransferResult,
} from './transfer.js';

export interface NativeTransferSetup {
  /** The unconnected socket on the transfer's port; the pump binds its own connected one beside it. */
  strays: Socket;
  peer: Peer;
  handle: fsp.FileHandle;
  negotiated: Negotiated;
  timeoutMs: number;
  retries: number;
}

/** The error message the JS pump would send, cut the same way. */
const ERROR_TEXT_MAX = 200;

export class NativeReadTransfer implements Transfer {
  private state: 'ready' | 'running' | 'done' = 'ready';
  private pump: PumpHandle | undefined;
  private abortReason: string | undefined;

  constructor(
    private readonly binding: PumpBinding,
    private readonly setup: NativeTransferSetup,
    private readonly hooks: TransferHooks,
  ) {
    const { strays, peer } = setup;
    strays.on('message', (msg, rinfo) => {
      if (this.state === 'done') return;
      try {
        hooks.counters.packetsReceived++;
        // The kernel gives the client's packets to the pump's connected socket; one that reaches us
        // anyway (there is no such window today) must not be called a stranger's.
        if (rinfo.port === peer.port && rinfo.address === peer.address) return;
        onStranger(strays, msg, { address: rinfo.address, port: rinfo.port }, hooks);
      } catch (e) {
        hooks.socketError(e instanceof Error ? e : new Error(String(e)));
      }
    });
    strays.on('error', (e) => hooks.socketError(e));
  }

  get done(): boolean {
    return this.state === 'done';
  }

  start(): void {
    if (this.state !== 'ready') return;
    const { strays, peer, handle, negotiated } = this.setup;
    const local = strays.address();
    try {
      this.pump = this.binding.start(
        {
          fd: handle.fd,
          localAddress: local.address,
          localPort: local.port,
          peerAddress: peer.address,
          peerPort: peer.port,
          blksize: negotiated.blksize,
          windowsize: negotiated.windowsize,
          timeoutMs: this.setup.timeoutMs,
          retries: this.setup.retries,
          ...(negotiated.oack.size > 0 ? { oack: encodeOack(negotiated.oack) } : {}),
        },
        (r) => this.onEnd(r),
      );
      this.state = 'running';
    } catch (e) {
      // The pump could not bind or start: tell the client from the transfer's port, as a failure would.
      const detail = `native pump: ${e instanceof Error ? e.message : String(e)}`;
      strays.send(encodeError(0, detail.slice(0, ERROR_TEXT_MAX)), peer.port, peer.address, () =>
        this.closeAll(),
      );
      this.hooks.errorSent(0);
      this.state = 'done';
      this.hooks.end({ outcome: 'failed', bytes: 0, detail });
    }
  }

  abort(reason: string): void {
    if (this.state !== 'running' || this.abortReason !== undefined || !this.pump) return;
    this.abortReason = reason;
    this.binding.abort(this.pump, 0, Buffer.from(reason.slice(0, ERROR_TEXT_MAX), 'latin1'));
  }

  liveCounters(): Partial<TransferCounters> {
    return this.state === 'running' && this.pump ? this.binding.counters(this.pump) : {};
  }

  private onEnd(r: PumpResult): void {
    // Runs from the addon's thread-safe call: an exception here would be uncaught, so none may escape.
    try {
      this.finish(r);
    } catch (e) {
      this.hooks.socketError(new Error(`native pump report: ${e instanceof Error ? e.message : String(e)}`));
    }
  }

  private finish(r: PumpResult): void {
    if (this.state === 'done') return;
    this.state = 'done';
    const c = this.hooks.counters;
    c.packetsReceived += r.packetsReceived;
    c.bytesSent += r.bytesSent;
    c.retransmissions += r.retransmissions;
    c.timeouts += r.timeouts;
    c.droppedMalformed += r.droppedMalformed;
    // The pump sends only ERROR 0 (timeout, read error) or the code abort() gave it (0).
    if (r.errorSent >= 0) this.hooks.errorSent(r.errorSent as ErrorCode);
    if (r.droppedMalformed > 0) {
      const more = r.droppedMalformed > 1 ? ` (and ${r.droppedMalformed - 1} more)` : '';
      this.hooks.dropped(`${r.firstDrop}${more}`, this.setup.peer);
    }
    if (r.socketErrors > 0) {
      this.hooks.socketError(
        new Error(`${r.socketErrors} send/receive error(s), the last: ${r.lastSocketError}`),
      );
    }
    this.closeAll();
    this.hooks.end(this.result(r));
  }

  private result(r: PumpResult): TransferResult {
    const bytes = r.bytes;
    switch (r.outcome) {
      case 'completed':
        return { outcome: 'completed', bytes };
      case 'aborted': {
        const message = r.peerErrorMessage.toString('latin1');
        return { outcome: 'aborted', bytes, detail: `client sent error ${r.peerErrorCode}: ${message}` };
      }
      case 'timeout': {
        const detail = `no ACK for block ${r.timeoutBlock} after ${this.setup.retries} retransmissions`;
        return { outcome: 'timeout', bytes, detail };
      }
      default:
        // A pump failure of its own (a read error) says so; otherwise it was our abort.
        return { outcome: 'failed', bytes, detail: r.failure || this.abortReason || 'failed' };
    }
  }

  /** The pump has closed its socket by now; the file stays ours to close. */
  private closeAll(): void {
    try {
      this.setup.strays.close();
    } catch {
      // already closed
    }
    this.setup.handle.close().catch(() => {});
  }
}
