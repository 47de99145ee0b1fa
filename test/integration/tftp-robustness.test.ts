/**
 * Storms at the TFTP server over real UDP: truncated requests, bad opcodes, missing NULs, huge
 * filenames and random bytes — 10,000 of each kind, to the main port and to a live transfer's port
 * (from a stranger and from the transfer's own client). The server must count every packet, never
 * throw, keep the live transfer intact, and serve correctly afterwards. Packets are sent in paced
 * batches (waiting until the server has seen each batch) so none is lost in a socket buffer and the
 * counts can be exact. Runs once per data pump (helpers/tftp-pumps.ts); with the native pump the
 * client's own storm is counted by the pump, so the batches also prove stats() reads it live.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTftpServer, type TftpServer } from '../../src/provision/tftp/index.js';
import { encodeRequest, Opcode } from '../../src/provision/tftp/packet.js';
import { tftpGet, UdpEndpoint } from '../helpers/tftp-client.js';
import { PUMPS } from '../helpers/tftp-pumps.js';

const N = 10_000;
const BATCH = 100;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let base: string;
let server: TftpServer;
let port: number;
const file = randomBytes(300_000);

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'osstest-tftp-storm-'));
  mkdirSync(join(base, 'root'));
  writeFileSync(join(base, 'root', 'boot.bin'), file);
});

afterAll(() => {
  rmSync(base, { recursive: true, force: true });
});

/** Sends packets in batches, waiting after each until the server has received all sent so far. */
async function storm(from: UdpEndpoint, to: number, packets: Iterable<Buffer>): Promise<number> {
  const start = server.stats().packetsReceived;
  let sent = 0;
  const settle = async () => {
    const deadline = Date.now() + 5000;
    while (server.stats().packetsReceived - start < sent) {
      if (Date.now() > deadline) {
        throw new Error(`server saw ${server.stats().packetsReceived - start} of ${sent} packets`);
      }
      await new Promise((r) => setImmediate(r));
    }
  };
  for (const p of packets) {
    from.socket.send(p, to, '127.0.0.1');
    if (++sent % BATCH === 0) await settle();
  }
  await settle();
  from.received.length = 0; // replies (ERROR 5 …) are not under test here
  return sent;
}

const RRQ = encodeRequest(Opcode.RRQ, 'boot.bin', 'octet', { blksize: 1468, tsize: 0 });
const modeEnd = RRQ.indexOf(0, RRQ.indexOf(0, 2) + 1); // the NUL ending the mode

/** 10,000 malformed requests: every truncation short of a complete mode, bad opcodes, no NULs. */
function* malformed(): Generator<Buffer> {
  for (let i = 0; i < N; i++) {
    switch (i % 4) {
      case 0:
        yield RRQ.subarray(0, i % (modeEnd + 1)); // 0 bytes up to the mode without its NUL
        break;
      case 1: {
        const b = Buffer.from(RRQ);
        b.writeUInt16BE(i % 8 === 1 ? 0 : 9 + (i % 65_527), 0); // opcode 0 or 9..65535
        yield b;
        break;
      }
      case 2:
        yield Buffer.concat([Buffer.from([0, 1 + (i % 2)]), Buffer.alloc(1 + (i % 700), 0x41)]); // no NUL at all
        break;
      default:
        yield Buffer.from([0, 1, 0x61, 0, 0x6f, 0x63]); // mode not terminated
    }
  }
}

function* random(avoidPeerOpcodes = false): Generator<Buffer> {
  for (let i = 0; i < N; i++) {
    const b = randomBytes(i % 97 === 0 ? 1400 + (i % 60_000) : i % 600);
    // From the transfer's own client a well-formed ACK or ERROR is legitimate, not noise.
    if (avoidPeerOpcodes && b.length >= 2 && b[0] === 0 && (b[1] === Opcode.ACK || b[1] === Opcode.ERROR))
      b[0] = 0xff;
    yield b;
  }
}

async function fetchWorks(): Promise<void> {
  const r = await tftpGet({ port, file: 'boot.bin', options: { blksize: 1468 } });
  expect(sha(r.data)).toBe(sha(file));
}

describe.each(PUMPS)('TFTP server under packet storms (%s pump)', (pump) => {
  beforeAll(async () => {
    // A long timeout so the paused transfer survives the storm without retransmitting.
    server = await startTftpServer({
      root: join(base, 'root'),
      host: '127.0.0.1',
      port: 0,
      timeoutMs: 30_000,
      dataPump: pump,
    });
    expect(server.dataPump).toBe(pump);
    port = server.address().port;
  });

  afterAll(async () => {
    await server?.close();
  });

  it('counts and drops 10,000 malformed requests and 10,000 random packets on the main port', async () => {
    const ep = await UdpEndpoint.open();
    try {
      const before = server.stats();
      expect(await storm(ep, port, malformed())).toBe(N);
      const mid = server.stats();
      expect(mid.droppedMalformed - before.droppedMalformed).toBe(N);
      expect(mid.requests).toBe(before.requests);

      expect(await storm(ep, port, random())).toBe(N);
      const after = server.stats();
      // A random packet could, rarely, parse as a request (it then gets a refusal); none can start a transfer.
      expect(after.droppedMalformed - mid.droppedMalformed + (after.requests - mid.requests)).toBe(N);
      expect(after.droppedMalformed - mid.droppedMalformed).toBeGreaterThan(N - 10);
      expect(after.transfersStarted).toBe(before.transfersStarted);
      expect(after.internalErrors).toBe(0);
    } finally {
      ep.close();
    }
    await fetchWorks();
  });

  it('refuses huge filenames (up to a 60 kB datagram) with ERROR 4', async () => {
    const ep = await UdpEndpoint.open();
    try {
      const before = server.stats();
      for (const len of [1025, 4096, 60_000]) {
        ep.socket.send(encodeRequest(Opcode.RRQ, 'a'.repeat(len), 'octet'), port, '127.0.0.1');
        const { msg } = await ep.next(2000, `the refusal of a ${len}-byte filename`);
        expect([msg.readUInt16BE(0), msg.readUInt16BE(2)]).toEqual([Opcode.ERROR, 4]);
      }
      expect(server.stats().errorsSent.IllegalOperation - before.errorsSent.IllegalOperation).toBe(3);
    } finally {
      ep.close();
    }
  });

  it('survives storms at a live transfer port, from a stranger and from its own client, and finishes it', async () => {
    const stranger = await UdpEndpoint.open();
    const before = server.stats();
    let during: { wrongTid: number; malformed: number; unknownTid: number } | undefined;
    try {
      const r = await tftpGet({
        port,
        file: 'boot.bin',
        options: { blksize: 1024 },
        onData: async (n, { serverPort, endpoint }) => {
          if (n !== 3) return undefined;
          const s0 = server.stats();
          await storm(stranger, serverPort, malformed());
          await storm(stranger, serverPort, random());
          const s1 = server.stats();
          // The client's own socket, still holding its ACK for block 3: garbage from the right TID.
          const queuedBefore = endpoint.received.length;
          await storm(endpoint, serverPort, malformed());
          await storm(endpoint, serverPort, random(true));
          endpoint.received.length = queuedBefore;
          const s2 = server.stats();
          during = {
            wrongTid: s1.droppedWrongTid - s0.droppedWrongTid,
            unknownTid: s1.errorsSent.UnknownTransferId - s0.errorsSent.UnknownTransferId,
            malformed: s2.droppedMalformed - s1.droppedMalformed,
          };
          return undefined;
        },
      });
      expect(sha(r.data)).toBe(sha(file));
    } finally {
      stranger.close();
    }
    expect(during!.wrongTid).toBe(2 * N);
    // Every stray gets ERROR 5, except strays that are themselves ERROR packets.
    expect(during!.unknownTid).toBeGreaterThan(2 * N - 10);
    expect(during!.malformed).toBe(2 * N);
    // The client is done once it has sent its last ACK; give the server a moment to take it.
    for (let i = 0; i < 200 && server.stats().transfersCompleted === before.transfersCompleted; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    const after = server.stats();
    expect(after.transfersCompleted - before.transfersCompleted).toBe(1);
    expect(after.retransmissions - before.retransmissions).toBe(0);
    expect(after.internalErrors).toBe(0);
    expect(after.activeTransfers).toBe(0);
    await fetchWorks();
  });
});
