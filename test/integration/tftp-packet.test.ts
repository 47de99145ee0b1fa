/**
 * The TFTP server's pure parts: request parsing, option negotiation, path normalisation. (The
 * server itself is exercised over real UDP in tftp-server.test.ts and tftp-robustness.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { negotiate } from '../../src/provision/tftp/options.js';
import { encodeRequest, Opcode, parsePeerPacket, parseRequest } from '../../src/provision/tftp/packet.js';
import { normaliseRequestPath } from '../../src/provision/tftp/paths.js';

const limits = { maxBlksize: 1468, maxWindowsize: 64 };

describe('parseRequest', () => {
  it('reads filename, mode (lower-cased) and options (names lower-cased, first wins)', () => {
    const buf = Buffer.from(
      '\0\x01pxelinux.0\0OCTET\0BLKSIZE\x001432\0tsize\x000\0blksize\x00512\0',
      'latin1',
    );
    const r = parseRequest(buf);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value).toEqual({
      opcode: Opcode.RRQ,
      filename: 'pxelinux.0',
      mode: 'octet',
      options: new Map([
        ['blksize', '1432'],
        ['tsize', '0'],
      ]),
    });
  });

  it('tolerates NUL padding and a dangling option name, as some boot ROMs send', () => {
    const padded = parseRequest(Buffer.from('\0\x01f\0octet\0tsize\x000\0\0\0\0', 'latin1'));
    expect(padded.ok && [...padded.value.options]).toEqual([['tsize', '0']]);
    const dangling = parseRequest(Buffer.from('\0\x01f\0octet\0tsize\x000\0blksize\0', 'latin1'));
    expect(dangling.ok && [...dangling.value.options]).toEqual([['tsize', '0']]);
  });

  it.each([
    ['empty', ''],
    ['one byte', '\0'],
    ['opcode only', '\0\x01'],
    ['no NUL after the filename', '\0\x01pxelinux.0'],
    ['no NUL after the mode', '\0\x01f\0octet'],
    ['empty filename', '\0\x01\0octet\0'],
    ['opcode 0', '\0\0f\0octet\0'],
    ['opcode 9', '\0\x09f\0octet\0'],
    ['a DATA packet', '\0\x03\0\x01hello'],
  ])('refuses %s', (_what, bytes) => {
    expect(parseRequest(Buffer.from(bytes, 'latin1')).ok).toBe(false);
  });

  it('refuses a filename that is not UTF-8', () => {
    expect(parseRequest(Buffer.from([0, 1, 0xff, 0xfe, 0, 0x6f, 0x63, 0x74, 0x65, 0x74, 0])).ok).toBe(false);
  });

  it('round-trips what encodeRequest writes', () => {
    const r = parseRequest(encodeRequest(Opcode.WRQ, 'a/b', 'octet', { windowsize: 4 }));
    expect(r.ok && r.value.opcode).toBe(Opcode.WRQ);
    expect(r.ok && r.value.options.get('windowsize')).toBe('4');
  });
});

describe('parsePeerPacket', () => {
  it('reads ACKs and ERRORs, refuses short and unknown ones', () => {
    expect(parsePeerPacket(Buffer.from([0, 4, 1, 2]))).toEqual({
      ok: true,
      value: { opcode: 4, block: 0x102 },
    });
    expect(parsePeerPacket(Buffer.from('\0\x05\0\x08no\0', 'latin1'))).toEqual({
      ok: true,
      value: { opcode: 5, code: 8, message: 'no' },
    });
    expect(parsePeerPacket(Buffer.from([0, 5, 0, 1, 0x41]))).toEqual({
      ok: true,
      value: { opcode: 5, code: 1, message: 'A' },
    });
    for (const bad of [[], [0], [0, 4, 1], [0, 5, 0], [0, 0, 0, 0], [0, 9, 0, 0], [0xff, 0xff]]) {
      expect(parsePeerPacket(Buffer.from(bad)).ok, JSON.stringify(bad)).toBe(false);
    }
  });
});

describe('negotiate', () => {
  const opts = (o: Record<string, string>) => new Map(Object.entries(o));

  it('answers only what was asked: blksize, tsize with the real size, timeout, windowsize', () => {
    const n = negotiate(opts({ blksize: '1408', tsize: '0', timeout: '3', windowsize: '4' }), 12345, limits);
    expect(n.blksize).toBe(1408);
    expect(n.windowsize).toBe(4);
    expect(n.timeoutMs).toBe(3000);
    expect([...n.oack]).toEqual([
      ['blksize', '1408'],
      ['tsize', '12345'],
      ['timeout', '3'],
      ['windowsize', '4'],
    ]);
  });

  it('clamps blksize and windowsize to the limits, ignores values out of range and unknown options', () => {
    const n = negotiate(
      opts({ blksize: '65464', windowsize: '1000', timeout: '0', multicast: '' }),
      1,
      limits,
    );
    expect([...n.oack]).toEqual([
      ['blksize', '1468'],
      ['windowsize', '64'],
    ]);
    expect(negotiate(opts({ blksize: '99999' }), 1, { maxBlksize: 65464, maxWindowsize: 1 }).blksize).toBe(
      65464,
    );
    const bads: Record<string, string>[] = [
      { blksize: '7' },
      { blksize: '-1' },
      { blksize: '1e3' },
      { blksize: ' 512' },
      { timeout: '256' },
      { windowsize: '0' },
      { tsize: 'x' },
      { utimeout: '1000' },
    ];
    for (const bad of bads) {
      const m = negotiate(opts(bad), 1, limits);
      expect(m.oack.size, JSON.stringify(bad)).toBe(0);
      expect(m.blksize).toBe(512);
      expect(m.windowsize).toBe(1);
    }
  });
});

describe('normaliseRequestPath', () => {
  it.each([
    ['pxelinux.0', ['pxelinux.0']],
    ['/pxelinux.0', ['pxelinux.0']],
    ['//boot/./x', ['boot', 'x']],
    ['a/../b', ['b']],
    ['/', []],
    ['../etc/passwd', undefined],
    ['a/../../b', undefined],
    ['/../b', undefined],
  ])('%s', (input, want) => {
    expect(normaliseRequestPath(input)).toEqual(want);
  });
});
