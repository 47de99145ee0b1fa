/**
 * The native TFTP data pump (native/tftp-pump) itself: that it is built where it must be (CI), that
 * the data phase really runs off the event loop, that nothing leaks (fds, threads) however transfers
 * end, and that the addon refuses bad arguments instead of crashing. The protocol is tested on both
 * pumps by tftp-server.test.ts and tftp-robustness.test.ts.
 */
import { execFile } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import {
  closeSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTftpServer, type TftpRequestEvent } from '../../src/provision/tftp/index.js';
import { nativePump, type PumpBinding, type PumpStart } from '../../src/provision/tftp/native-pump.js';
import { encodeAck, encodeError, encodeRequest, Opcode } from '../../src/provision/tftp/packet.js';
import { prerequisites, underCI } from '../helpers/env.js';
import { tftpGet, UdpEndpoint } from '../helpers/tftp-client.js';

const status = nativePump();
const binding: PumpBinding | undefined = status.available ? status.binding : undefined;
if (!status.available && !underCI) {
  process.stderr.write(`\n*** SKIPPING the native TFTP pump tests: ${status.reason} ***\n\n`);
}
const hasCurl = prerequisites('tftp native pump: curl as a real client', { commands: ['curl'] });

let base: string;
const big = Buffer.alloc(4 * 1024 * 1024 + 77, 0x5a);

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'osstest-tftp-native-'));
  writeFileSync(join(base, 'big.bin'), big);
  writeFileSync(join(base, 'small.bin'), big.subarray(0, 10_000));
});

afterAll(() => {
  rmSync(base, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('TFTP native pump: availability', () => {
  // Under CI the native pump must be there: a silent fallback to the JS pump would pass every other test.
  it.skipIf(!status.available && !underCI)('is built and loads (required when CI=true)', () => {
    expect(status.available ? 'available' : status.reason).toBe('available');
  });

  it.skipIf(!binding)("is what dataPump 'auto' picks, and 'native' can be asked for", async () => {
    for (const dataPump of ['auto', 'native'] as const) {
      const s = await startTftpServer({ root: base, host: '127.0.0.1', port: 0, dataPump });
      expect(s.dataPump).toBe('native');
      await s.close();
    }
  });
});

describe.skipIf(!binding)('TFTP native pump: off the event loop, and leak-free', () => {
  it.skipIf(!hasCurl)('finishes a transfer while the event loop is blocked', async () => {
    const server = await startTftpServer({ root: base, host: '127.0.0.1', port: 0, dataPump: 'native' });
    const out = join(base, 'curl.out');
    try {
      const curl = new Promise<void>((resolve, reject) =>
        execFile(
          'curl',
          ['-sS', '--tftp-blksize', '1468', `tftp://127.0.0.1:${server.address().port}/big.bin`, '-o', out],
          (e) => (e ? reject(e) : resolve()),
        ),
      );
      // Once data flows, block this thread: only a pump on its own thread can carry on.
      for (let i = 0; server.stats().bytesSent === 0; i++) {
        if (i > 5000) throw new Error('the transfer never started');
        await sleep(1);
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3000);
      // Still before the event loop has run again: curl has the whole file, the live counters show it.
      expect(statSync(out).size).toBe(big.length);
      expect(server.stats().bytesSent).toBe(big.length);
      await curl;
    } finally {
      await server.close();
    }
  });

  it('leaves no fds or threads behind, however transfers end', async () => {
    // Each open fd with what it is: one that something else in this process closes meanwhile is
    // not ours to count (the count alone once came out one short: 21 against 22 before).
    const fdSet = () =>
      new Set(
        readdirSync('/proc/self/fd').map((fd) => {
          try {
            return `${fd} ${readlinkSync(`/proc/self/fd/${fd}`)}`;
          } catch {
            return `${fd} (gone)`;
          }
        }),
      );
    const leakedFds = (before: Set<string>) =>
      [...fdSet()].filter((f) => !before.has(f) && !f.endsWith('(gone)'));
    const threads = () => readdirSync('/proc/self/task').length;
    // Warm up what Node creates once (libuv's thread pool for file opens).
    const warm = await startTftpServer({ root: base, host: '127.0.0.1', port: 0, dataPump: 'native' });
    await tftpGet({ port: warm.address().port, file: 'small.bin' });
    await warm.close();
    const before = { fds: fdSet(), threads: threads() };

    const server = await startTftpServer({
      root: base,
      host: '127.0.0.1',
      port: 0,
      dataPump: 'native',
      timeoutMs: 50,
      retries: 1,
    });
    const port = server.address().port;
    const events: TftpRequestEvent[] = [];
    server.on('request', (e) => events.push(e));
    // Completed, several at once.
    await Promise.all(Array.from({ length: 8 }, () => tftpGet({ port, file: 'small.bin' })));
    // Aborted by the client after the OACK and during the data.
    await tftpGet({
      port,
      file: 'small.bin',
      options: { tsize: 0 },
      abortAfterOack: { code: 0, message: 'x' },
    });
    const ep = await UdpEndpoint.open();
    try {
      await ep.send(encodeRequest(Opcode.RRQ, 'big.bin', 'octet'), port);
      const d1 = await ep.next();
      await ep.send(encodeAck(1), d1.rinfo.port);
      await ep.next();
      await ep.send(encodeError(0, 'enough'), d1.rinfo.port);
      // Timed out: ask and never answer.
      await ep.send(encodeRequest(Opcode.RRQ, 'small.bin', 'octet'), port);
      // Left running, for close() to end.
      const other = await UdpEndpoint.open();
      try {
        await other.send(encodeRequest(Opcode.RRQ, 'big.bin', 'octet', { timeout: 60 }), port);
        await other.next();
        for (let i = 0; events.length < 11 && i < 400; i++) await sleep(5);
        expect(server.stats().activeTransfers).toBe(1);
        await server.close();
      } finally {
        other.close();
      }
    } finally {
      ep.close();
    }
    expect(events.map((e) => e.outcome).sort()).toEqual([
      'aborted',
      'aborted',
      ...Array<string>(8).fill('completed'),
      'failed',
      'timeout',
    ]);
    // File handles close asynchronously; give them a moment.
    for (let i = 0; i < 100 && (leakedFds(before.fds).length > 0 || threads() > before.threads); i++)
      await sleep(10);
    expect(leakedFds(before.fds)).toEqual([]);
    expect(threads()).toBeLessThanOrEqual(before.threads);
  });
});

describe.skipIf(!binding)('TFTP native pump: the binding refuses bad arguments', () => {
  let fd: number;
  let held: Socket;
  let heldPort: number;
  const opts = (o: Partial<PumpStart> = {}): PumpStart => ({
    fd,
    localAddress: '127.0.0.1',
    localPort: heldPort,
    peerAddress: '127.0.0.1',
    peerPort: 9,
    blksize: 512,
    windowsize: 1,
    timeoutMs: 1000,
    retries: 1,
    ...o,
  });
  beforeAll(async () => {
    fd = openSync(join(base, 'small.bin'), 'r');
    // Bound without SO_REUSEADDR: the pump's bind to the same port must fail, and say so.
    held = createSocket('udp4');
    await new Promise<void>((r) => held.bind(0, '127.0.0.1', r));
    heldPort = held.address().port;
  });
  afterAll(() => {
    closeSync(fd);
    held.close();
  });

  it('throws on missing, mistyped and out-of-range options, naming them', () => {
    const start = (o: unknown) => () => binding!.start(o as PumpStart, () => {});
    const { blksize: _omit, ...noBlksize } = opts();
    expect(start(noBlksize)).toThrow(/option blksize is required/);
    expect(start(opts({ blksize: 7 }))).toThrow(RangeError);
    expect(start(opts({ blksize: 65_465 }))).toThrow(/blksize must be an integer in 8\.\.65464/);
    expect(start(opts({ windowsize: 1.5 }))).toThrow(/windowsize/);
    expect(start(opts({ timeoutMs: Number.NaN }))).toThrow(/timeoutMs/);
    expect(start(opts({ peerAddress: 'localhost' }))).toThrow(/peerAddress/);
    expect(start(opts({ peerAddress: '::1' }))).toThrow(/peerAddress/); // v6 peer on a v4 socket
    expect(start(opts({ oack: Buffer.alloc(1) }))).toThrow(/oack/);
    expect(() => binding!.start(opts(), undefined as unknown as () => void)).toThrow(TypeError);
  });

  it('reports a bind failure as an error, not a crash', () => {
    expect(() => binding!.start(opts(), () => {})).toThrow(/bind: Address already in use/);
  });

  it('refuses a handle that is not a pump', () => {
    const notAHandle = {} as unknown as Parameters<PumpBinding['counters']>[0];
    expect(() => binding!.counters(notAHandle)).toThrow(/not a pump handle/);
    expect(() => binding!.abort(notAHandle, 0, Buffer.alloc(0))).toThrow(/not a pump handle/);
  });
});
