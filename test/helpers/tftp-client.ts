/**
 * A small TFTP client for tests, strict about what it receives so that a test can see exactly what
 * a server put on the wire: every DATA packet is recorded (duplicates included), the server's transfer
 * ID is pinned on the first answer, and hooks let a test withhold, repeat or drop ACKs.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { encodeAck, encodeError, encodeRequest, Opcode, parseOack } from '../../src/provision/tftp/packet.js';

export interface Datagram {
  msg: Buffer;
  rinfo: RemoteInfo;
}

/** A UDP socket on 127.0.0.1 with an awaitable queue of what arrives. */
export class UdpEndpoint {
  readonly received: Datagram[] = [];
  private waiters: ((d: Datagram) => void)[] = [];
  private constructor(readonly socket: Socket) {
    socket.on('message', (msg, rinfo) => {
      const w = this.waiters.shift();
      if (w) w({ msg, rinfo });
      else this.received.push({ msg, rinfo });
    });
  }

  static async open(): Promise<UdpEndpoint> {
    const s = createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    return new UdpEndpoint(s);
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(buf: Buffer, port: number): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.send(buf, port, '127.0.0.1', (e) => (e ? reject(e) : resolve())),
    );
  }

  /** The next datagram, or an error naming what was awaited after `timeoutMs`. */
  next(timeoutMs = 2000, what = 'a packet'): Promise<Datagram> {
    const queued = this.received.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const waiter = (d: Datagram) => {
        clearTimeout(t);
        resolve(d);
      };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no ${what} within ${timeoutMs} ms on port ${this.port}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Resolves with nothing if no datagram arrives within `ms`; otherwise returns it. */
  async quiet(ms: number): Promise<Datagram | undefined> {
    try {
      return await this.next(ms);
    } catch {
      return undefined;
    }
  }

  close(): void {
    this.socket.close();
  }
}

export class TftpClientError extends Error {
  constructor(
    readonly code: number,
    readonly serverMessage: string,
  ) {
    super(`TFTP ERROR ${code}: ${serverMessage}`);
  }
}

export interface GetOptions {
  port: number;
  file: string;
  mode?: string;
  options?: Record<string, string | number>;
  /** Send these bytes as the request instead of encoding one (replaying captured requests). */
  rawRequest?: Buffer;
  /** Wait per packet; default 3000 ms. */
  timeoutMs?: number;
  /** Use this endpoint (and leave it open) instead of a fresh one. */
  endpoint?: UdpEndpoint;
  /**
   * Called for each new in-order DATA block (1-based, unwrapped) before it is handled. Return 'drop'
   * to behave as if it never arrived; it may await (the ACK waits too).
   */
  onData?: (
    n: number,
    ctx: { serverPort: number; endpoint: UdpEndpoint },
  ) => undefined | 'drop' | Promise<undefined | 'drop'>;
  /** Send every ACK this many times (1 = normal). */
  ackCopies?: number;
  /** Abort after the OACK with this ERROR instead of acknowledging it (what tsize probes do). */
  abortAfterOack?: { code: number; message: string };
}

export interface GetResult {
  data: Buffer;
  oack: Map<string, string> | undefined;
  serverPort: number;
  /** Wire block numbers of every DATA received, in order, duplicates included. */
  wireBlocks: number[];
  /** Payload length of the last DATA block. */
  lastBlockLength: number;
}

/** Fetches a file over TFTP from 127.0.0.1:port, honouring blksize/windowsize from the OACK. */
export async function tftpGet(o: GetOptions): Promise<GetResult> {
  const ep = o.endpoint ?? (await UdpEndpoint.open());
  const timeoutMs = o.timeoutMs ?? 3000;
  const copies = o.ackCopies ?? 1;
  try {
    const req = o.rawRequest ?? encodeRequest(Opcode.RRQ, o.file, o.mode ?? 'octet', o.options ?? {});
    await ep.send(req, o.port);
    let serverPort: number | undefined;
    let oack: Map<string, string> | undefined;
    let blksize = 512;
    let windowsize = 1;
    const chunks: Buffer[] = [];
    const wireBlocks: number[] = [];
    let got = 0; // blocks received in order
    let sinceAck = 0;
    const ack = async (n: number) => {
      for (let i = 0; i < copies; i++) await ep.send(encodeAck(n), serverPort!);
      sinceAck = 0;
    };
    for (;;) {
      const { msg, rinfo } = await ep.next(timeoutMs, `answer after block ${got}`);
      if (serverPort === undefined) serverPort = rinfo.port;
      else if (rinfo.port !== serverPort) continue; // not our transfer
      const op = msg.readUInt16BE(0);
      if (op === Opcode.ERROR)
        throw new TftpClientError(msg.readUInt16BE(2), msg.subarray(4, msg.indexOf(0, 4)).toString());
      if (op === Opcode.OACK) {
        if (got > 0 || oack) continue; // a retransmitted OACK
        const p = parseOack(msg);
        if (!p.ok) throw new Error(`bad OACK: ${p.reason}`);
        oack = p.value;
        blksize = Number(oack.get('blksize') ?? 512);
        windowsize = Number(oack.get('windowsize') ?? 1);
        if (o.abortAfterOack) {
          await ep.send(encodeError(o.abortAfterOack.code as 0, o.abortAfterOack.message), serverPort);
          return { data: Buffer.alloc(0), oack, serverPort, wireBlocks, lastBlockLength: 0 };
        }
        await ack(0);
        continue;
      }
      if (op !== Opcode.DATA) throw new Error(`unexpected opcode ${op}`);
      const wire = msg.readUInt16BE(2);
      wireBlocks.push(wire);
      if (wire !== ((got + 1) & 0xffff)) {
        // Not the next block: a duplicate or a gap. Re-acknowledge what we have (RFC 7440).
        if (windowsize > 1 || wire === (got & 0xffff)) await ack(got & 0xffff);
        continue;
      }
      if (o.onData && (await o.onData(got + 1, { serverPort, endpoint: ep })) === 'drop') continue;
      got++;
      sinceAck++;
      const payload = msg.subarray(4);
      chunks.push(Buffer.from(payload));
      const last = payload.length < blksize;
      if (last || sinceAck >= windowsize) await ack(got & 0xffff);
      if (last) {
        return { data: Buffer.concat(chunks), oack, serverPort, wireBlocks, lastBlockLength: payload.length };
      }
    }
  } finally {
    if (!o.endpoint) ep.close();
  }
}
