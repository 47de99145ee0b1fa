/**
 * The TFTP server over real UDP on 127.0.0.1: curl as a real client, pxelinux/UEFI requests replayed
 * byte for byte from the boot-client captures, option negotiation, windowsize, block-number rollover,
 * confinement to the root, the read-only rule, transfer IDs, retransmission and giving up. Every
 * group runs once per data pump (JS, and native when built: see helpers/tftp-pumps.ts).
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type DataPump,
  startTftpServer,
  type TftpRequestEvent,
  type TftpServer,
  type TftpStats,
} from '../../src/provision/tftp/index.js';
import {
  encodeAck,
  encodeError,
  encodeRequest,
  Opcode,
  parseOack,
  parseRequest,
} from '../../src/provision/tftp/packet.js';
import { prerequisites } from '../helpers/env.js';
import { bootClientsDir, readPcapUdp } from '../helpers/pcap.js';
import { TftpClientError, tftpGet, UdpEndpoint } from '../helpers/tftp-client.js';
import { PUMPS, type TestedPump } from '../helpers/tftp-pumps.js';

const run = promisify(execFile);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const hasCurl = prerequisites('tftp: curl as a real client', { commands: ['curl', 'mkfifo'] });

let base: string;
let root: string;
const files = new Map<string, Buffer>();

function put(rel: string, data: Buffer): void {
  const p = join(root, rel);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, data);
  files.set(rel, data);
}

/** The RRQs pxelinux and OVMF sent in the captures, as they were on the wire. */
const capturedRrqs = ['bios-ipxe-pxelinux-udhcpc.pcap', 'uefi-ovmf-pxe.pcap'].flatMap((f) =>
  readPcapUdp(join(bootClientsDir(), f))
    .filter((r) => r.dstPort === 69)
    .map((r) => r.payload),
);

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'osstest-tftp-'));
  root = join(base, 'root');
  mkdirSync(root);
  writeFileSync(join(base, 'secret.txt'), 'outside the root\n');
  put('small.bin', randomBytes(10_000));
  put('big.bin', randomBytes(3 * 1024 * 1024 + 123));
  put('exact512.bin', randomBytes(512 * 4));
  put('exact1468.bin', randomBytes(1468 * 3));
  put('empty.bin', Buffer.alloc(0));
  put('sub/inner.txt', Buffer.from('inside the root\n'));
  put('rollover.bin', randomBytes(600_000));
  put('live.bin', randomBytes(64 * 1024));
  // What the captured clients asked for, with made-up contents of plausible sizes.
  const sizes = [42_000, 120_000, 300, 1_000_000, 2_000_000];
  for (const [i, rrq] of capturedRrqs.entries()) {
    const p = parseRequest(rrq);
    if (!p.ok) throw new Error(`captured RRQ ${i} does not parse: ${p.reason}`);
    if (!files.has(p.value.filename)) put(p.value.filename, randomBytes(sizes[i % sizes.length]!));
  }
  symlinkSync(join(base, 'secret.txt'), join(root, 'link-out'));
  symlinkSync(base, join(root, 'linkdir-out'));
  symlinkSync('sub/inner.txt', join(root, 'link-in'));
  if (hasCurl) await run('mkfifo', [join(root, 'fifo')]);
});

afterAll(() => {
  rmSync(base, { recursive: true, force: true });
});

interface Harness {
  server: TftpServer;
  port: number;
  events: TftpRequestEvent[];
  /** Waits for the request event of `file` (the n-th one since the harness started, default the next unseen). */
  event(file: string): Promise<TftpRequestEvent>;
  delta(before: TftpStats): Record<string, number>;
}

async function harness(
  pump: TestedPump,
  opts: Partial<Parameters<typeof startTftpServer>[0]> = {},
): Promise<Harness> {
  const server = await startTftpServer({ root, host: '127.0.0.1', port: 0, dataPump: pump, ...opts });
  expect(server.dataPump).toBe(pump);
  const events: TftpRequestEvent[] = [];
  const taken = new Set<TftpRequestEvent>();
  server.on('request', (e) => events.push(e));
  return {
    server,
    port: server.address().port,
    events,
    async event(file) {
      const deadline = Date.now() + 5000;
      for (;;) {
        const e = events.find((x) => x.file === file && !taken.has(x));
        if (e) {
          taken.add(e);
          return e;
        }
        if (Date.now() > deadline) throw new Error(`no request event for ${file}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
    delta(before) {
      const now = server.stats();
      const out: Record<string, number> = {};
      for (const [k, v] of Object.entries(now)) {
        if (typeof v === 'number' && v !== (before as unknown as Record<string, number>)[k]) {
          out[k] = v - (before as unknown as Record<string, number>)[k]!;
        }
      }
      for (const [k, v] of Object.entries(now.errorsSent)) {
        const was = before.errorsSent[k as keyof TftpStats['errorsSent']];
        if (v !== was) out[`errorsSent.${k}`] = v - was;
      }
      return out;
    },
  };
}

async function expectTftpError(p: Promise<unknown>, code: number): Promise<TftpClientError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(TftpClientError);
  expect((e as TftpClientError).code).toBe(code);
  return e as TftpClientError;
}

describe.each(PUMPS)('TFTP server: transfers (%s pump)', (pump) => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness(pump);
  });
  afterAll(async () => {
    await h.server.close();
  });

  it.skipIf(!hasCurl)('serves curl (blksize 1468) the exact file, and reports the request', async () => {
    const out = join(base, 'curl.out');
    const before = h.server.stats();
    await run('curl', ['-sS', '--tftp-blksize', '1468', `tftp://127.0.0.1:${h.port}/big.bin`, '-o', out]);
    expect(sha(readFileSync(out))).toBe(sha(files.get('big.bin')!));
    const ev = await h.event('big.bin');
    expect(ev).toMatchObject({
      file: 'big.bin',
      client: { address: '127.0.0.1' },
      outcome: 'completed',
      path: join(root, 'big.bin'),
      size: files.get('big.bin')!.length,
      bytes: files.get('big.bin')!.length,
      blksize: 1468,
      windowsize: 1,
    });
    const d = h.delta(before);
    expect(d).toMatchObject({ requests: 1, transfersStarted: 1, transfersCompleted: 1 });
    expect(d.bytesSent).toBe(files.get('big.bin')!.length);
    expect(d.retransmissions ?? 0).toBe(0);
  });

  it.skipIf(!hasCurl)(
    'serves curl without options (512-byte blocks, no OACK) and with its defaults',
    async () => {
      for (const extra of [['--tftp-no-options'], []]) {
        const out = join(base, 'curl-small.out');
        await run('curl', ['-sS', ...extra, `tftp://127.0.0.1:${h.port}/small.bin`, '-o', out]);
        expect(sha(readFileSync(out))).toBe(sha(files.get('small.bin')!));
      }
    },
  );

  it('answers the captured pxelinux and UEFI requests (blksize 1432/1408/1468, tsize 0, windowsize 4)', async () => {
    expect(capturedRrqs.length).toBe(7);
    for (const rrq of capturedRrqs) {
      const req = parseRequest(rrq);
      if (!req.ok) throw new Error(req.reason);
      const { filename, options } = req.value;
      const r = await tftpGet({ port: h.port, file: filename, rawRequest: rrq });
      expect(sha(r.data), filename).toBe(sha(files.get(filename)!));
      // The OACK answers exactly the options asked, in the order asked; tsize carries the real size.
      expect([...r.oack!.keys()]).toEqual([...options.keys()]);
      expect(r.oack!.get('tsize')).toBe(String(files.get(filename)!.length));
      expect(r.oack!.get('blksize')).toBe(options.get('blksize'));
      if (options.has('windowsize')) expect(r.oack!.get('windowsize')).toBe('4');
      expect((await h.event(filename)).outcome).toBe('completed');
    }
  });

  it('lets a tsize probe end after the OACK (ERROR 8 from the client), as UEFI firmware does', async () => {
    const before = h.server.stats();
    const r = await tftpGet({
      port: h.port,
      file: 'big.bin',
      options: { tsize: 0, blksize: 1468 },
      abortAfterOack: { code: 8, message: 'tsize only' },
    });
    expect(r.oack!.get('tsize')).toBe(String(files.get('big.bin')!.length));
    const ev = await h.event('big.bin');
    expect(ev.outcome).toBe('aborted');
    expect(ev.bytes).toBe(0);
    expect(h.delta(before)).toMatchObject({ transfersAborted: 1 });
  });

  it('sends DATA 1 straight away, 512-byte blocks, when no known option is asked', async () => {
    const r = await tftpGet({ port: h.port, file: 'small.bin', options: { multicast: '', foo: 'bar' } });
    expect(r.oack).toBeUndefined();
    expect(r.data.equals(files.get('small.bin')!)).toBe(true);
    expect(r.wireBlocks.length).toBe(Math.ceil(10_000 / 512));
  });

  it('ends a file of a whole number of blocks with an empty block', async () => {
    const a = await tftpGet({ port: h.port, file: 'exact512.bin' });
    expect(a.wireBlocks).toEqual([1, 2, 3, 4, 5]);
    expect(a.lastBlockLength).toBe(0);
    expect(a.data.equals(files.get('exact512.bin')!)).toBe(true);
    const b = await tftpGet({ port: h.port, file: 'exact1468.bin', options: { blksize: 1468 } });
    expect(b.wireBlocks).toEqual([1, 2, 3, 4]);
    expect(b.lastBlockLength).toBe(0);
    const e = await tftpGet({ port: h.port, file: 'empty.bin', options: { tsize: 0 } });
    expect(e.oack!.get('tsize')).toBe('0');
    expect(e.wireBlocks).toEqual([1]);
    expect(e.data.length).toBe(0);
  });

  it('rolls block numbers over after 65535 (600 kB in 8-byte blocks = 75,000 blocks)', async () => {
    const r = await tftpGet({ port: h.port, file: 'rollover.bin', options: { blksize: 8 } });
    expect(r.oack!.get('blksize')).toBe('8');
    expect(r.wireBlocks.length).toBe(75_001);
    expect(r.wireBlocks.slice(65_534, 65_538)).toEqual([65_535, 0, 1, 2]);
    expect(sha(r.data)).toBe(sha(files.get('rollover.bin')!));
  });

  it('rolls over inside a window too, and slides windows across the wrap (windowsize 16)', async () => {
    const before = h.server.stats();
    const r = await tftpGet({ port: h.port, file: 'rollover.bin', options: { blksize: 8, windowsize: 16 } });
    expect(r.oack!.get('windowsize')).toBe('16');
    // No loss on loopback: every block exactly once, 65535 then 0 in the same window.
    expect(r.wireBlocks.length).toBe(75_001);
    expect(r.wireBlocks.slice(65_530, 65_540)).toEqual([
      65_531, 65_532, 65_533, 65_534, 65_535, 0, 1, 2, 3, 4,
    ]);
    expect(sha(r.data)).toBe(sha(files.get('rollover.bin')!));
    expect((await h.event('rollover.bin')).bytes).toBe(600_000);
    const d = h.delta(before);
    expect(d.bytesSent).toBe(600_000);
    expect(d.retransmissions ?? 0).toBe(0);
  });

  it('clamps blksize to maxBlksize, ignores blksize < 8 and echoes a valid timeout', async () => {
    const a = await tftpGet({ port: h.port, file: 'small.bin', options: { blksize: 65464, timeout: 3 } });
    expect(Object.fromEntries(a.oack!)).toEqual({ blksize: '1468', timeout: '3' });
    expect(a.data.equals(files.get('small.bin')!)).toBe(true);
    const b = await tftpGet({
      port: h.port,
      file: 'small.bin',
      options: { blksize: 4, timeout: 0, tsize: 0 },
    });
    expect(Object.fromEntries(b.oack!)).toEqual({ tsize: '10000' });
    expect(b.wireBlocks.length).toBe(20);
  });

  it('sends windowsize blocks before waiting, and resumes after the block a partial ACK names', async () => {
    const ep = await UdpEndpoint.open();
    try {
      await ep.send(encodeRequest(Opcode.RRQ, 'big.bin', 'octet', { blksize: 1024, windowsize: 4 }), h.port);
      const oack = await ep.next();
      const opts = parseOack(oack.msg);
      expect(opts.ok && Object.fromEntries(opts.value)).toEqual({ blksize: '1024', windowsize: '4' });
      const sp = oack.rinfo.port;
      const blocksOf = async (n: number) => {
        const got: number[] = [];
        for (let i = 0; i < n; i++) {
          const d = await ep.next(2000, 'DATA');
          expect(d.msg.readUInt16BE(0)).toBe(Opcode.DATA);
          got.push(d.msg.readUInt16BE(2));
        }
        return got;
      };
      await ep.send(encodeAck(0), sp);
      expect(await blocksOf(4)).toEqual([1, 2, 3, 4]);
      expect(await ep.quiet(150)).toBeUndefined(); // the window is full: nothing until an ACK
      await ep.send(encodeAck(4), sp);
      expect(await blocksOf(4)).toEqual([5, 6, 7, 8]);
      await ep.send(encodeAck(6), sp); // 7 and 8 "lost"
      expect(await blocksOf(4)).toEqual([7, 8, 9, 10]);
      await ep.send(encodeAck(6), sp); // a stale duplicate: must not trigger anything
      expect(await ep.quiet(150)).toBeUndefined();
      await ep.send(encodeError(0, 'enough'), sp);
    } finally {
      ep.close();
    }
    const ev = await h.event('big.bin');
    expect(ev).toMatchObject({ outcome: 'aborted', bytes: 6 * 1024, detail: 'client sent error 0: enough' });
  });

  it('completes windowsize transfers, recovering from a dropped block without a timeout', async () => {
    const before = h.server.stats();
    let dropped = false;
    const r = await tftpGet({
      port: h.port,
      file: 'big.bin',
      options: { blksize: 1468, windowsize: 16, tsize: 0 },
      onData: (n) => {
        if (n === 40 && !dropped) {
          dropped = true;
          return 'drop';
        }
        return undefined;
      },
    });
    expect(r.oack!.get('windowsize')).toBe('16');
    expect(sha(r.data)).toBe(sha(files.get('big.bin')!));
    expect(dropped).toBe(true);
    const d = h.delta(before);
    expect(d.timeouts ?? 0).toBe(0);
    expect(d.retransmissions ?? 0).toBe(0);
  });

  it('ignores duplicate ACKs: no DATA is ever sent twice (no Sorcerer’s Apprentice)', async () => {
    const before = h.server.stats();
    const r = await tftpGet({ port: h.port, file: 'small.bin', ackCopies: 3 });
    expect(r.data.equals(files.get('small.bin')!)).toBe(true);
    expect(r.wireBlocks).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(h.delta(before).bytesSent).toBe(10_000);
  });

  it('answers a packet from another port with ERROR 5 and goes on with the transfer', async () => {
    const intruder = await UdpEndpoint.open();
    const before = h.server.stats();
    let reply: Buffer | undefined;
    let afterError: unknown;
    try {
      const r = await tftpGet({
        port: h.port,
        file: 'big.bin',
        options: { blksize: 1468 },
        onData: async (n, { serverPort }) => {
          if (n !== 5) return undefined;
          await intruder.send(encodeAck(5), serverPort);
          reply = (await intruder.next(2000, 'ERROR 5')).msg;
          await intruder.send(encodeError(0, 'an error is never answered'), serverPort);
          afterError = await intruder.quiet(150);
          return undefined;
        },
      });
      expect(sha(r.data)).toBe(sha(files.get('big.bin')!));
    } finally {
      intruder.close();
    }
    expect(reply!.readUInt16BE(0)).toBe(Opcode.ERROR);
    expect(reply!.readUInt16BE(2)).toBe(5);
    expect(afterError).toBeUndefined();
    expect((await h.event('big.bin')).outcome).toBe('completed');
    const d = h.delta(before);
    expect(d).toMatchObject({ droppedWrongTid: 2, 'errorsSent.UnknownTransferId': 1, transfersCompleted: 1 });
  });

  it('counts and drops malformed packets from the client itself, and finishes the transfer', async () => {
    const logged: string[] = [];
    const hm = await harness(pump, {
      log: (e) => {
        if (e.type === 'dropped' && e.socket === 'transfer') logged.push(e.reason);
      },
    });
    try {
      const junk = [
        Buffer.alloc(0), // empty datagram
        Buffer.from([0]), // no opcode
        Buffer.from([0, Opcode.ACK, 0]), // truncated ACK
        Buffer.from([0, Opcode.ERROR, 0]), // truncated ERROR
        Buffer.from([0, Opcode.DATA, 0, 1, 0x41]), // DATA in a read transfer
        Buffer.from([0x12, 0x34, 0x56, 0x78, 0x9a]), // unknown opcode
      ];
      const r = await tftpGet({
        port: hm.port,
        file: 'small.bin',
        onData: async (n, { serverPort, endpoint }) => {
          if (n === 2) for (const j of junk) await endpoint.send(j, serverPort);
          return undefined;
        },
      });
      expect(r.data.equals(files.get('small.bin')!)).toBe(true);
      expect(r.wireBlocks).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      expect((await hm.event('small.bin')).outcome).toBe('completed');
      expect(hm.server.stats()).toMatchObject({
        droppedMalformed: junk.length,
        packetsReceived: 1 + 20 + junk.length, // the RRQ, 20 ACKs, the junk
        transfersCompleted: 1,
        retransmissions: 0,
      });
      // JS logs each drop; the native pump one summary per transfer. Either way the first is named.
      expect(logged.length).toBeGreaterThan(0);
      expect(logged[0]).toMatch(/^0-byte packet has no opcode/);
    } finally {
      await hm.server.close();
    }
  });

  it('reports live counters in stats() while a transfer is running', async () => {
    const ep = await UdpEndpoint.open();
    const before = h.server.stats();
    try {
      await ep.send(encodeRequest(Opcode.RRQ, 'live.bin', 'octet', { blksize: 1024, windowsize: 4 }), h.port);
      const oack = await ep.next();
      await ep.send(encodeAck(0), oack.rinfo.port);
      for (let i = 0; i < 4; i++) await ep.next(2000, 'DATA');
      await ep.send(encodeAck(4), oack.rinfo.port);
      for (let i = 0; i < 4; i++) await ep.next(2000, 'DATA');
      // The pump has sent 8 blocks and seen 2 ACKs; nothing has ended, so all of it is live.
      expect(h.delta(before)).toMatchObject({
        packetsReceived: 3,
        bytesSent: 8 * 1024,
        activeTransfers: 1,
        transfersStarted: 1,
      });
      await ep.send(encodeError(0, 'enough'), oack.rinfo.port);
    } finally {
      ep.close();
    }
    expect((await h.event('live.bin')).outcome).toBe('aborted');
    // After the end the same figures come from the final report, not counted twice.
    expect(h.delta(before)).toMatchObject({ packetsReceived: 4, bytesSent: 8 * 1024, transfersAborted: 1 });
  });

  it('ignores a repeated request from the same client port while its transfer runs', async () => {
    const ep = await UdpEndpoint.open();
    const before = h.server.stats();
    try {
      const rrq = encodeRequest(Opcode.RRQ, 'small.bin', 'octet', { blksize: 1024 });
      await ep.send(rrq, h.port);
      await ep.send(rrq, h.port);
      const first = await ep.next();
      expect(first.msg.readUInt16BE(0)).toBe(Opcode.OACK);
      expect(await ep.quiet(200)).toBeUndefined(); // no second OACK from a second transfer
      await ep.send(encodeError(0, 'done'), first.rinfo.port);
    } finally {
      ep.close();
    }
    await h.event('small.bin');
    expect(h.delta(before)).toMatchObject({ requests: 2, duplicateRequests: 1, transfersStarted: 1 });
  });
});

describe.each(PUMPS)('TFTP server: IPv6 (%s pump)', (pump) => {
  it.skipIf(!hasCurl)('serves over ::1, and IPv4 clients of a dual-stack :: (v4-mapped peers)', async () => {
    for (const [host, url] of [
      ['::1', 'tftp://[::1]'],
      ['::', 'tftp://127.0.0.1'],
    ] as const) {
      const h = await harness(pump, { host });
      try {
        const out = join(base, 'curl6.out');
        await run('curl', ['-sS', '--tftp-blksize', '1468', `${url}:${h.port}/big.bin`, '-o', out]);
        expect(sha(readFileSync(out)), host).toBe(sha(files.get('big.bin')!));
        const ev = await h.event('big.bin');
        expect(ev.outcome).toBe('completed');
        expect(ev.client.address).toBe(host === '::1' ? '::1' : '::ffff:127.0.0.1');
      } finally {
        await h.server.close();
      }
    }
  });
});

describe.each(PUMPS)('TFTP server: confinement and refusals (%s pump)', (pump) => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness(pump);
  });
  afterAll(async () => {
    await h.server.close();
  });

  it.each([
    ['/small.bin', 'small.bin'],
    ['//small.bin', 'small.bin'],
    ['sub/../small.bin', 'small.bin'],
    ['./sub/inner.txt', 'sub/inner.txt'],
    ['link-in', 'sub/inner.txt'],
  ])('serves %s (inside the root)', async (name, rel) => {
    const r = await tftpGet({ port: h.port, file: name });
    expect(r.data.equals(files.get(rel)!)).toBe(true);
  });

  it.each([
    ['../secret.txt', 2],
    ['sub/../../secret.txt', 2],
    ['/../secret.txt', 2],
    ['link-out', 2],
    ['linkdir-out/secret.txt', 2],
    ['sub', 2],
    ['/', 2],
    ['missing.bin', 1],
    ['sub/missing/deeper', 1],
    ['small.bin/x', 1],
  ])('refuses %s with ERROR %i', async (name, code) => {
    const before = h.server.stats();
    const e = await expectTftpError(tftpGet({ port: h.port, file: name }), code);
    expect(e.serverMessage).not.toContain(base); // no server paths leak into the error
    const ev = await h.event(name);
    expect(ev.outcome).toBe(code === 2 ? 'refused' : 'not-found');
    const d = h.delta(before);
    if (code === 2) expect(d).toMatchObject({ refusedPaths: 1, 'errorsSent.AccessViolation': 1 });
    else expect(d).toMatchObject({ 'errorsSent.FileNotFound': 1 });
    expect(d.transfersStarted ?? 0).toBe(0);
  });

  it('treats an absolute path as relative to the root', async () => {
    await expectTftpError(tftpGet({ port: h.port, file: join(base, 'secret.txt') }), 1);
    await expectTftpError(tftpGet({ port: h.port, file: '/etc/passwd' }), 1);
  });

  it.skipIf(!hasCurl)('refuses a FIFO promptly instead of blocking on it', async () => {
    const t0 = Date.now();
    await expectTftpError(tftpGet({ port: h.port, file: 'fifo', timeoutMs: 1000 }), 2);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('refuses writes with ERROR 2 and writes nothing', async () => {
    const before = h.server.stats();
    const listing = readdirSync(root).sort();
    const ep = await UdpEndpoint.open();
    try {
      await ep.send(encodeRequest(Opcode.WRQ, 'upload.bin', 'octet', { blksize: 1468, tsize: 5 }), h.port);
      const reply = await ep.next();
      expect(reply.msg.readUInt16BE(0)).toBe(Opcode.ERROR);
      expect(reply.msg.readUInt16BE(2)).toBe(2);
      // A client that pushes on regardless gets nowhere.
      await ep.send(Buffer.concat([Buffer.from([0, 3, 0, 1]), Buffer.from('hello')]), reply.rinfo.port);
      await ep.send(Buffer.concat([Buffer.from([0, 3, 0, 1]), Buffer.from('hello')]), h.port);
    } finally {
      ep.close();
    }
    expect((await h.event('upload.bin')).outcome).toBe('refused-write');
    expect(h.delta(before)).toMatchObject({ refusedWrites: 1, 'errorsSent.AccessViolation': 1 });
    expect(readdirSync(root).sort()).toEqual(listing);
    expect(existsSync(join(root, 'upload.bin'))).toBe(false);
  });

  it.skipIf(!hasCurl)('refuses an upload by curl', async () => {
    const src = join(base, 'to-upload');
    writeFileSync(src, 'data');
    await expect(run('curl', ['-sS', '-T', src, `tftp://127.0.0.1:${h.port}/uploaded`])).rejects.toThrow();
    expect(existsSync(join(root, 'uploaded'))).toBe(false);
  });

  it('refuses netascii and unknown modes with ERROR 4, octet only', async () => {
    await expectTftpError(tftpGet({ port: h.port, file: 'small.bin', mode: 'netascii' }), 4);
    await expectTftpError(tftpGet({ port: h.port, file: 'small.bin', mode: 'mail' }), 4);
    const r = await tftpGet({ port: h.port, file: 'small.bin', mode: 'OcTeT' });
    expect(r.data.equals(files.get('small.bin')!)).toBe(true);
  });

  it('refuses a huge filename with ERROR 4', async () => {
    await expectTftpError(tftpGet({ port: h.port, file: 'x'.repeat(5000) }), 4);
  });
});

describe.each(PUMPS)('TFTP server: retransmission and giving up (%s pump)', (pump) => {
  it('retransmits a lost block after the timeout, then carries on', async () => {
    const h = await harness(pump, { timeoutMs: 300, retries: 3 });
    try {
      let drops = 0;
      const r = await tftpGet({
        port: h.port,
        file: 'small.bin',
        onData: (n) => (n === 3 && drops++ === 0 ? 'drop' : undefined),
      });
      expect(r.data.equals(files.get('small.bin')!)).toBe(true);
      expect(r.wireBlocks.filter((b) => b === 3).length).toBe(2);
      expect((await h.event('small.bin')).outcome).toBe('completed');
      expect(h.server.stats()).toMatchObject({ retransmissions: 1, timeouts: 0, transfersCompleted: 1 });
    } finally {
      await h.server.close();
    }
  });

  it('resends a block whose ACK is withheld, and only that block, once per timeout', async () => {
    const h = await harness(pump, { timeoutMs: 200, retries: 3 });
    const ep = await UdpEndpoint.open();
    try {
      await ep.send(encodeRequest(Opcode.RRQ, 'small.bin', 'octet'), h.port);
      const d1 = await ep.next(2000, 'DATA 1');
      const sp = d1.rinfo.port;
      expect([d1.msg.readUInt16BE(0), d1.msg.readUInt16BE(2)]).toEqual([Opcode.DATA, 1]);
      const t0 = Date.now();
      const again = await ep.next(2000, 'DATA 1 again'); // no ACK from us: the server must resend
      expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
      expect(again.msg.equals(d1.msg)).toBe(true);
      expect(h.server.stats()).toMatchObject({ retransmissions: 1, bytesSent: 1024 });
      await ep.send(encodeAck(1), sp);
      const d2 = await ep.next(2000, 'DATA 2');
      expect(d2.msg.readUInt16BE(2)).toBe(2);
      expect(await ep.quiet(100)).toBeUndefined(); // nothing else in flight
      await ep.send(encodeError(0, 'enough'), sp);
    } finally {
      ep.close();
    }
    try {
      expect(await h.event('small.bin')).toMatchObject({ outcome: 'aborted', bytes: 512 });
      expect(h.server.stats()).toMatchObject({ retransmissions: 1, timeouts: 0, transfersAborted: 1 });
    } finally {
      await h.server.close();
    }
  });

  it('does not let a client repeating an old ACK put off the retransmission', async () => {
    const h = await harness(pump, { timeoutMs: 300, retries: 3 });
    const ep = await UdpEndpoint.open();
    let noise: NodeJS.Timeout | undefined;
    try {
      await ep.send(encodeRequest(Opcode.RRQ, 'small.bin', 'octet'), h.port);
      const d1 = await ep.next(2000, 'DATA 1');
      const t0 = Date.now();
      // ACK 0 acknowledges nothing in a transfer without OACK: it must neither resend nor reset the clock.
      noise = setInterval(() => void ep.send(encodeAck(0), d1.rinfo.port), 40);
      const again = await ep.next(2000, 'DATA 1 again');
      expect(again.msg.readUInt16BE(2)).toBe(1);
      expect(Date.now() - t0).toBeLessThan(600);
      expect(h.server.stats().retransmissions).toBe(1);
    } finally {
      clearInterval(noise);
      ep.close();
      await h.server.close();
    }
  });

  it('resends the whole window when its ACK is withheld (windowsize 4)', async () => {
    const h = await harness(pump, { timeoutMs: 200, retries: 3 });
    const ep = await UdpEndpoint.open();
    try {
      await ep.send(encodeRequest(Opcode.RRQ, 'big.bin', 'octet', { blksize: 512, windowsize: 4 }), h.port);
      const oack = await ep.next(2000, 'OACK');
      const sp = oack.rinfo.port;
      await ep.send(encodeAck(0), sp);
      const blocks = async (n: number) => {
        const got: number[] = [];
        for (let i = 0; i < n; i++) got.push((await ep.next(2000, 'DATA')).msg.readUInt16BE(2));
        return got;
      };
      expect(await blocks(4)).toEqual([1, 2, 3, 4]);
      expect(await blocks(4)).toEqual([1, 2, 3, 4]); // after the timeout
      await ep.send(encodeAck(2), sp); // a partial ACK: the next window starts at 3
      expect(await blocks(4)).toEqual([3, 4, 5, 6]);
      await ep.send(encodeError(0, 'enough'), sp);
    } finally {
      ep.close();
    }
    try {
      expect(await h.event('big.bin')).toMatchObject({ outcome: 'aborted', bytes: 1024 });
      expect(h.server.stats()).toMatchObject({ retransmissions: 4, timeouts: 0, bytesSent: 12 * 512 });
    } finally {
      await h.server.close();
    }
  });

  it('gives up after N retries with ERROR 0 and reports a timeout (DATA and OACK alike)', async () => {
    const h = await harness(pump, { timeoutMs: 60, retries: 2 });
    try {
      for (const options of [{}, { blksize: 1024 }] as Record<string, number>[]) {
        const ep = await UdpEndpoint.open();
        try {
          await ep.send(encodeRequest(Opcode.RRQ, 'small.bin', 'octet', options), h.port);
          const opcodes: number[] = [];
          for (;;) {
            const { msg } = await ep.next(1000);
            opcodes.push(msg.readUInt16BE(0));
            if (msg.readUInt16BE(0) === Opcode.ERROR) {
              expect(msg.readUInt16BE(2)).toBe(0);
              break;
            }
          }
          const first = Object.keys(options).length ? Opcode.OACK : Opcode.DATA;
          expect(opcodes).toEqual([first, first, first, Opcode.ERROR]);
        } finally {
          ep.close();
        }
        const ev = await h.event('small.bin');
        const block = Object.keys(options).length ? 0 : 1; // the OACK counts as block 0
        expect(ev).toMatchObject({
          outcome: 'timeout',
          bytes: 0,
          detail: `no ACK for block ${block} after 2 retransmissions`,
        });
      }
      expect(h.server.stats()).toMatchObject({
        timeouts: 2,
        retransmissions: 4,
        activeTransfers: 0,
        transfersFailed: 2,
        bytesSent: 3 * 512, // DATA 1 three times; OACKs are not DATA
        errorsSent: expect.objectContaining({ NotDefined: 2 }),
      });
    } finally {
      await h.server.close();
    }
  });

  it('honours the client’s timeout option over its own', async () => {
    const h = await harness(pump, { timeoutMs: 60_000, retries: 1 });
    try {
      const ep = await UdpEndpoint.open();
      try {
        await ep.send(encodeRequest(Opcode.RRQ, 'small.bin', 'octet', { timeout: 1 }), h.port);
        const t0 = Date.now();
        await ep.next(); // OACK
        await ep.next(2500); // the OACK again, after the client's 1 s
        expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
      } finally {
        ep.close();
      }
    } finally {
      await h.server.close();
    }
  });
});

describe.each(PUMPS)('TFTP server: lifecycle (%s pump)', (pump) => {
  it('rejects bad options with messages that name them', async () => {
    await expect(startTftpServer({ root: join(base, 'nope') })).rejects.toThrow(/tftp: root .*nope/);
    await expect(startTftpServer({ root: join(base, 'secret.txt') })).rejects.toThrow(/not a directory/);
    await expect(startTftpServer({ root, host: 'localhost' })).rejects.toThrow(/host must be an IP address/);
    await expect(startTftpServer({ root, host: '127.0.0.1', maxBlksize: 4 })).rejects.toThrow(/maxBlksize/);
    await expect(
      startTftpServer({ root, host: '127.0.0.1', dataPump: 'fast' as string as DataPump }),
    ).rejects.toThrow(/option dataPump must be native, js or auto/);
    const h = await harness(pump);
    try {
      await expect(startTftpServer({ root, host: '127.0.0.1', port: h.port })).rejects.toThrow(
        /cannot listen on 127\.0\.0\.1:\d+/,
      );
    } finally {
      await h.server.close();
    }
  });

  it('ends running transfers with ERROR 0 on close', async () => {
    const h = await harness(pump);
    const got = tftpGet({
      port: h.port,
      file: 'big.bin',
      onData: async (n) => {
        if (n === 2) await h.server.close();
        return undefined;
      },
    });
    const e = await expectTftpError(got, 0);
    expect(e.serverMessage).toMatch(/shutting down/);
    // close() resolved only once the transfer had ended and been reported.
    expect(h.events.find((x) => x.file === 'big.bin')).toMatchObject({
      outcome: 'failed',
      detail: 'Server shutting down',
    });
    expect(h.server.stats()).toMatchObject({
      activeTransfers: 0,
      transfersFailed: 1,
      errorsSent: expect.objectContaining({ NotDefined: 1 }),
    });
  });

  it('ends a transfer promptly on close while it waits for a silent client', async () => {
    const h = await harness(pump, { timeoutMs: 60_000 });
    const ep = await UdpEndpoint.open();
    try {
      await ep.send(encodeRequest(Opcode.RRQ, 'big.bin', 'octet'), h.port);
      expect((await ep.next(2000, 'DATA 1')).msg.readUInt16BE(2)).toBe(1);
      // No ACK: the pump is waiting out a 60 s timeout, and close must not.
      const t0 = Date.now();
      await h.server.close();
      expect(Date.now() - t0).toBeLessThan(1000);
      const { msg } = await ep.next(1000, 'ERROR 0');
      expect([msg.readUInt16BE(0), msg.readUInt16BE(2)]).toEqual([Opcode.ERROR, 0]);
      expect(msg.subarray(4, msg.indexOf(0, 4)).toString()).toBe('Server shutting down');
      expect(h.events.find((x) => x.file === 'big.bin')).toMatchObject({ outcome: 'failed', bytes: 0 });
    } finally {
      ep.close();
    }
  });

  it('answers ERROR 0 "Server busy" beyond maxTransfers, and serves again once one ends', async () => {
    const h = await harness(pump, { maxTransfers: 1 });
    try {
      const first = await UdpEndpoint.open();
      try {
        await first.send(encodeRequest(Opcode.RRQ, 'small.bin', 'octet', { blksize: 1024 }), h.port);
        const oack = await first.next();
        expect(h.server.stats().activeTransfers).toBe(1);
        const e = await expectTftpError(tftpGet({ port: h.port, file: 'small.bin' }), 0);
        expect(e.serverMessage).toBe('Server busy');
        expect((await h.event('small.bin')).outcome).toBe('busy');
        await first.send(encodeError(0, 'done'), oack.rinfo.port);
        expect((await h.event('small.bin')).outcome).toBe('aborted');
      } finally {
        first.close();
      }
      const r = await tftpGet({ port: h.port, file: 'small.bin' });
      expect(r.data.equals(files.get('small.bin')!)).toBe(true);
    } finally {
      await h.server.close();
    }
  });

  it('keeps serving when the log callback throws', async () => {
    const h = await harness(pump, {
      log: () => {
        throw new Error('broken logger');
      },
    });
    try {
      const r = await tftpGet({ port: h.port, file: 'small.bin' });
      expect(r.data.equals(files.get('small.bin')!)).toBe(true);
      expect(h.server.stats().internalErrors).toBe(0);
    } finally {
      await h.server.close();
    }
  });
});
