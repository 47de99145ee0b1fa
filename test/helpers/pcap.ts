/**
 * Just enough of a pcap reader for the recorded boot-client test vectors: classic pcap (either byte
 * order, micro- or nanosecond stamps), Ethernet link type, IPv4/UDP packets. The npm candidates are
 * either unmaintained (pcap-parser, last release 2013) or bind libpcap natively (pcap), which is
 * a lot of build for 60 lines of format.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const LINKTYPE_ETHERNET = 1;

export interface UdpRecord {
  /** Position of the record in the capture (0-based, all records counted). */
  index: number;
  /** Capture time, seconds since the epoch. */
  time: number;
  dstMac: string;
  srcMac: string;
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  payload: Buffer;
}

function mac(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

function ip(b: Uint8Array, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

export function readPcapUdp(file: string): UdpRecord[] {
  const buf = readFileSync(file);
  if (buf.length < 24) throw new Error(`${file}: too short for a pcap header`);
  const magicLE = buf.readUInt32LE(0);
  const magicBE = buf.readUInt32BE(0);
  let le: boolean;
  let nano: boolean;
  if (magicLE === 0xa1b2c3d4 || magicLE === 0xa1b23c4d) [le, nano] = [true, magicLE === 0xa1b23c4d];
  else if (magicBE === 0xa1b2c3d4 || magicBE === 0xa1b23c4d) [le, nano] = [false, magicBE === 0xa1b23c4d];
  else throw new Error(`${file}: not a classic pcap file (magic 0x${magicBE.toString(16)})`);
  const u32 = (off: number) => (le ? buf.readUInt32LE(off) : buf.readUInt32BE(off));
  const linktype = u32(20) & 0xffff;
  if (linktype !== LINKTYPE_ETHERNET)
    throw new Error(`${file}: link type ${linktype}, only Ethernet (1) is read`);
  const out: UdpRecord[] = [];
  let off = 24;
  for (let index = 0; off + 16 <= buf.length; index++) {
    const time = u32(off) + u32(off + 4) / (nano ? 1e9 : 1e6);
    const caplen = u32(off + 8);
    const frame = buf.subarray(off + 16, off + 16 + caplen);
    if (frame.length < caplen) throw new Error(`${file}: record ${index} at offset ${off} is truncated`);
    off += 16 + caplen;
    if (frame.length < 14 + 20 || frame.readUInt16BE(12) !== 0x0800) continue;
    const ipHdr = frame.subarray(14);
    const ihl = (ipHdr[0]! & 0x0f) * 4;
    if (ipHdr[9] !== 17 || ipHdr.length < ihl + 8) continue;
    const totalLen = ipHdr.readUInt16BE(2);
    const udp = ipHdr.subarray(ihl, totalLen);
    const udpLen = udp.readUInt16BE(4);
    out.push({
      index,
      time,
      dstMac: mac(frame.subarray(0, 6)),
      srcMac: mac(frame.subarray(6, 12)),
      srcIp: ip(ipHdr, 12),
      dstIp: ip(ipHdr, 16),
      srcPort: udp.readUInt16BE(0),
      dstPort: udp.readUInt16BE(2),
      payload: Buffer.from(udp.subarray(8, udpLen)),
    });
  }
  return out;
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * The directory of the recorded boot-client captures: $OSSTEST_BOOT_CLIENTS, else the repository's
 * test/fixtures/boot-clients, else the steering checkout's testdata next to the repository.
 */
export function bootClientsDir(): string {
  const candidates = [
    process.env.OSSTEST_BOOT_CLIENTS,
    join(repoRoot, 'test', 'fixtures', 'boot-clients'),
    join(repoRoot, '..', 'shared', 'testdata', 'boot-clients'),
  ].filter((d): d is string => d !== undefined);
  const found = candidates.find((d) => existsSync(join(d, 'dhclient.pcap')));
  if (!found) throw new Error(`boot-client captures not found; looked in: ${candidates.join(', ')}`);
  return found;
}
