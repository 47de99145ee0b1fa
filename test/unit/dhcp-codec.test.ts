import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { chooseBoot, isIpxe, mergeBoot } from '../../src/provision/dhcp/boot.js';
import {
  type DhcpPacket,
  MessageType,
  macOf,
  Opt,
  optIp,
  optString,
  optU8,
  optU16,
  parseDhcp,
  serializeDhcp,
} from '../../src/provision/dhcp/codec.js';
import { JsonFileLeaseStore, type Lease } from '../../src/provision/dhcp/leases.js';
import { bootClientsDir, readPcapUdp } from '../helpers/pcap.js';

function dhcpRecords(file: string) {
  return readPcapUdp(join(bootClientsDir(), file)).filter((r) => r.dstPort === 67 || r.dstPort === 68);
}

function parsed(buf: Buffer): DhcpPacket {
  const r = parseDhcp(buf);
  if (!r.ok) throw new Error(r.error);
  return r.packet;
}

const captures = ['bios-ipxe-pxelinux-udhcpc.pcap', 'uefi-ovmf-pxe.pcap', 'dhclient.pcap'];

describe('DHCP codec on the recorded packets', () => {
  it('parses every client packet and every dnsmasq reply in the captures', () => {
    let n = 0;
    for (const f of captures) {
      for (const r of dhcpRecords(f)) {
        const p = parsed(r.payload);
        expect(p.hasCookie).toBe(true);
        expect(optU8(p, Opt.MESSAGE_TYPE)).toBeGreaterThan(0);
        n++;
      }
    }
    expect(n).toBe(10 + 12 + 5);
  });

  it('reads the iPXE BIOS DISCOVER the way tcpdump does', () => {
    const first = dhcpRecords('bios-ipxe-pxelinux-udhcpc.pcap')[0]!;
    const p = parsed(first.payload);
    expect(macOf(p)).toBe('52:54:00:12:34:56');
    expect(p.xid).toBe(0x662fb73f);
    expect(optU8(p, Opt.MESSAGE_TYPE)).toBe(MessageType.DISCOVER);
    expect(optU16(p, Opt.CLIENT_ARCH)).toBe(0);
    expect(optString(p, Opt.VENDOR_CLASS)).toBe('PXEClient:Arch:00000:UNDI:002001');
    expect(p.options.get(Opt.PARAM_LIST)?.length).toBe(23);
    expect(p.options.get(Opt.IPXE_ENCAP)?.length).toBe(48);
    expect(p.options.get(Opt.CLIENT_UUID)?.length).toBe(17);
    expect(isIpxe(p)).toBe(true);
  });

  it('reads the dnsmasq REQUEST/ACK pair with options 50 and 54', () => {
    const recs = dhcpRecords('bios-ipxe-pxelinux-udhcpc.pcap');
    const req = parsed(recs[4]!.payload);
    expect(optU8(req, Opt.MESSAGE_TYPE)).toBe(MessageType.REQUEST);
    expect(optIp(req, Opt.REQUESTED_IP)).toBe('10.77.0.111');
    expect(optIp(req, Opt.SERVER_ID)).toBe('10.77.0.1');
    const ack = parsed(recs[5]!.payload);
    expect(ack.yiaddr).toBe('10.77.0.111');
    expect(ack.siaddr).toBe('10.77.0.1');
    expect(optString(ack, Opt.BOOTFILE)).toBe('pxelinux.0');
  });

  it('serializes back to the same fields and options (round trip of every captured packet)', () => {
    for (const f of captures) {
      for (const r of dhcpRecords(f)) {
        const p = parsed(r.payload);
        const again = parsed(serializeDhcp(p));
        expect({ ...again, chaddr: again.chaddr.toString('hex') }).toEqual({
          ...p,
          chaddr: p.chaddr.toString('hex'),
        });
      }
    }
  });
});

function minimal(opts: number[]): Buffer {
  const head = Buffer.alloc(240);
  head[0] = 1;
  head[1] = 1;
  head[2] = 6;
  head.writeUInt32BE(0x12345678, 4);
  Buffer.from([0x52, 0x54, 0, 1, 2, 3]).copy(head, 28);
  head.writeUInt32BE(0x63825363, 236);
  return Buffer.concat([head, Buffer.from(opts)]);
}

describe('DHCP codec edge cases', () => {
  it('skips pad bytes anywhere, including between and before options (the dhcp 0.2.20 bug)', () => {
    const p = parsed(
      minimal([0, 0, 53, 1, 1, 0, 12, 3, 0x61, 0x62, 0x63, 0, 0, 0, 50, 4, 10, 0, 0, 9, 255, 1, 2, 3]),
    );
    expect(optU8(p, Opt.MESSAGE_TYPE)).toBe(1);
    expect(optString(p, Opt.HOSTNAME)).toBe('abc');
    expect(optIp(p, Opt.REQUESTED_IP)).toBe('10.0.0.9');
    // Bytes after the end option are padding, not options.
    expect(p.options.size).toBe(3);
  });

  it('keeps unknown options as raw bytes and accepts an area without an end option', () => {
    const p = parsed(minimal([53, 1, 1, 224, 3, 9, 8, 7]));
    expect(p.options.get(224)).toEqual(Buffer.from([9, 8, 7]));
  });

  it('concatenates repeated options and splits long ones when writing (RFC 3396)', () => {
    const p = parsed(minimal([53, 1, 1, 43, 2, 1, 2, 43, 1, 3, 255]));
    expect(p.options.get(43)).toEqual(Buffer.from([1, 2, 3]));
    p.options.set(77, Buffer.alloc(600, 0x41));
    const again = parsed(serializeDhcp(p));
    expect(again.options.get(77)?.length).toBe(600);
  });

  it('reads options from the file and sname fields when option 52 says so', () => {
    const b = minimal([53, 1, 1, 52, 1, 3, 255]);
    Buffer.from([12, 2, 0x68, 0x31, 255]).copy(b, 108); // file field: hostname "h1"
    Buffer.from([0, 15, 3, 0x6c, 0x61, 0x62, 255]).copy(b, 44); // sname field: pad, domain "lab"
    const p = parsed(b);
    expect(optString(p, Opt.HOSTNAME)).toBe('h1');
    expect(optString(p, Opt.DOMAIN)).toBe('lab');
    expect(p.file).toBe('');
  });

  it('returns errors naming the offset instead of throwing', () => {
    const short = parseDhcp(Buffer.alloc(10));
    expect(short).toEqual({
      ok: false,
      error: expect.stringMatching(/10 bytes is shorter than the 236-byte/),
    });
    const overrun = parseDhcp(minimal([53, 1, 1, 12, 40, 1, 2]));
    expect(overrun).toEqual({
      ok: false,
      error: expect.stringMatching(/option 12 at offset 243 says length 40/),
    });
    const cookie = minimal([53, 1, 1]);
    cookie.writeUInt32BE(0xdeadbeef, 236);
    expect(parseDhcp(cookie)).toEqual({
      ok: false,
      error: expect.stringMatching(/bad magic cookie 0xdeadbeef/),
    });
    const hlen = minimal([53, 1, 1]);
    hlen[2] = 17;
    expect(parseDhcp(hlen).ok).toBe(false);
  });

  it('never throws on any truncation of a real packet or on random bytes', () => {
    const real = dhcpRecords('uefi-ovmf-pxe.pcap')[0]!.payload;
    for (let n = 0; n <= real.length; n++) parseDhcp(real.subarray(0, n));
    let seed = 42;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed >> 16;
    };
    for (let i = 0; i < 3000; i++) {
      const b = Buffer.from(real);
      // Corrupt the option area so lengths and codes run wild, then sometimes cut it.
      for (let k = 0; k < 8; k++) b[240 + (rnd() % (b.length - 240))] = rnd() & 255;
      parseDhcp(b.subarray(0, i % 3 === 0 ? rnd() % b.length : b.length));
    }
  });
});

describe('boot policy', () => {
  const server = '10.77.0.1';
  const recs = (f: string) => dhcpRecords(f).map((r) => parsed(r.payload));

  it('gives BIOS firmware pxelinux.0 and a client already in iPXE the script URL', () => {
    const ipxeBios = recs('bios-ipxe-pxelinux-udhcpc.pcap')[0]!;
    const files = { ipxeScript: 'http://10.77.0.1/boot.ipxe' };
    expect(chooseBoot(ipxeBios, files, server)).toMatchObject({
      kind: 'ipxe',
      arch: 0,
      file: files.ipxeScript,
    });
    // Without a script configured, iPXE is treated like the firmware it runs on.
    expect(chooseBoot(ipxeBios, {}, server)).toMatchObject({
      kind: 'bios',
      file: 'pxelinux.0',
      nextServer: server,
    });
  });

  it('gives UEFI firmware (arch 7, OVMF) ipxe.efi, and honours per-arch and per-host overrides', () => {
    const ovmf = recs('uefi-ovmf-pxe.pcap').find((p) => p.xid === 0x7039c6c5)!;
    expect(isIpxe(ovmf)).toBe(false);
    expect(chooseBoot(ovmf, {}, server)).toMatchObject({
      kind: 'uefi',
      arch: 7,
      file: 'ipxe.efi',
      pxeClient: true,
    });
    expect(chooseBoot(ovmf, { byArch: { 7: 'snp.efi' } }, server).file).toBe('snp.efi');
    const merged = mergeBoot({ uefi: 'a.efi', nextServer: '10.77.0.2' }, { uefi: 'host.efi' });
    expect(chooseBoot(ovmf, merged, server)).toMatchObject({ file: 'host.efi', nextServer: '10.77.0.2' });
  });

  it('treats a client without option 93 (udhcpc, dhclient) as BIOS, like dnsmasq', () => {
    const dhclient = recs('dhclient.pcap')[0]!;
    expect(chooseBoot(dhclient, {}, server)).toMatchObject({
      kind: 'bios',
      arch: undefined,
      pxeClient: false,
    });
  });
});

describe('JSON lease file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'osstest-dhcp-leases-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('round-trips leases, replaces the file atomically and leaves no temporary files', async () => {
    const file = join(dir, 'sub', 'leases.json');
    const store = new JsonFileLeaseStore(file);
    expect(await store.load()).toEqual([]);
    const leases: Lease[] = [
      {
        mac: '52:54:00:12:34:56',
        ip: '10.0.0.5',
        state: 'bound',
        expires: 1_800_000_000_000,
        hostname: 'h1',
      },
      { mac: '52:54:00:12:34:57', ip: '10.0.0.6', state: 'declined', expires: 1_800_000_000_000 },
    ];
    // Overlapping saves (the server never overlaps its own) still leave one whole list, never a mix.
    await Promise.all([store.save(leases), store.save(leases.slice(0, 1)), store.save(leases)]);
    expect([1, 2]).toContain((await store.load()).length);
    await store.save(leases);
    expect(await store.load()).toEqual(leases);
    expect(readdirSync(join(dir, 'sub'))).toEqual(['leases.json']);
  });

  it('names the file and the entry when the file is bad', async () => {
    const file = join(dir, 'bad.json');
    writeFileSync(
      file,
      '{"leases": [{"mac": "52:54:00:12:34:56", "ip": "10.0.0.300", "state": "bound", "expires": 1}]}',
    );
    await expect(new JsonFileLeaseStore(file).load()).rejects.toThrow(
      `lease file ${file}: leases[0]: ip "10.0.0.300" is not IPv4`,
    );
    writeFileSync(file, '{nope');
    await expect(new JsonFileLeaseStore(file).load()).rejects.toThrow(`lease file ${file}: not valid JSON`);
    expect(readFileSync(file, 'utf8')).toBe('{nope');
  });
});
