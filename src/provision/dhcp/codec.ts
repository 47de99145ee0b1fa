/**
 * BOOTP/DHCP message codec (RFC 951, RFC 2131 section 2, RFC 2132 options, RFC 3396 long options).
 *
 * parseDhcp never throws: whatever arrives on port 67 is untrusted, so every problem is returned as a
 * ParseError naming the byte offset, and the server counts it. Options are kept as raw bytes keyed by
 * code (unknown ones included) so nothing a client sent is lost; typed accessors read the few we use.
 */

export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;
/** The fixed BOOTP header is 236 bytes; the magic cookie follows it. */
export const FIXED_HEADER_LEN = 236;
export const MAGIC_COOKIE = 0x63825363;
/** Historical BOOTP minimum; some PXE ROMs drop shorter replies, so replies are padded to it. */
export const MIN_BOOTP_LEN = 300;
export const BROADCAST_FLAG = 0x8000;

export const MessageType = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;
export type MessageTypeName = keyof typeof MessageType;

export function messageTypeName(t: number | undefined): string {
  for (const [name, code] of Object.entries(MessageType)) if (code === t) return name;
  return t === undefined ? 'BOOTP' : `type-${t}`;
}

/** Option codes used by the server (RFC 2132, RFC 4578, RFC 3004). */
export const Opt = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS: 6,
  HOSTNAME: 12,
  DOMAIN: 15,
  BROADCAST: 28,
  VENDOR_SPECIFIC: 43,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAM_LIST: 55,
  MESSAGE: 56,
  MAX_SIZE: 57,
  RENEWAL_T1: 58,
  REBINDING_T2: 59,
  VENDOR_CLASS: 60,
  CLIENT_ID: 61,
  TFTP_SERVER: 66,
  BOOTFILE: 67,
  USER_CLASS: 77,
  CLIENT_ARCH: 93,
  CLIENT_NDI: 94,
  CLIENT_UUID: 97,
  IPXE_ENCAP: 175,
  END: 255,
} as const;

export interface DhcpPacket {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** The 16-byte client hardware address field as sent. */
  chaddr: Buffer;
  /** Text of the sname field up to its first NUL ('' when the field carried options). */
  sname: string;
  /** Text of the file field up to its first NUL ('' when the field carried options). */
  file: string;
  /** False for a plain BOOTP packet without the magic cookie (then options is empty). */
  hasCookie: boolean;
  /** Option code → data; repeated instances concatenated (RFC 3396); insertion order is wire order. */
  options: Map<number, Buffer>;
}

export type ParseResult = { ok: true; packet: DhcpPacket } | { ok: false; error: string };

function ipAt(buf: Buffer, off: number): string {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
}

function cString(buf: Buffer): string {
  const nul = buf.indexOf(0);
  return buf.subarray(0, nul === -1 ? buf.length : nul).toString('latin1');
}

/**
 * Reads an option area into `into`. Pad (0) is skipped wherever it appears, end (255) stops; an area
 * that runs out without an end option is accepted (several firmwares omit it in sname/file).
 */
function parseOptionArea(area: Buffer, base: number, into: Map<number, Buffer>): string | undefined {
  let i = 0;
  while (i < area.length) {
    const code = area[i]!;
    if (code === Opt.PAD) {
      i += 1;
      continue;
    }
    if (code === Opt.END) return undefined;
    if (i + 1 >= area.length) return `option ${code} at offset ${base + i} has no length byte`;
    const len = area[i + 1]!;
    if (i + 2 + len > area.length) {
      return `option ${code} at offset ${base + i} says length ${len} but only ${area.length - i - 2} bytes remain`;
    }
    const data = area.subarray(i + 2, i + 2 + len);
    const prev = into.get(code);
    into.set(code, prev ? Buffer.concat([prev, data]) : Buffer.from(data));
    i += 2 + len;
  }
  return undefined;
}

export function parseDhcp(buf: Buffer): ParseResult {
  if (buf.length < FIXED_HEADER_LEN) {
    return {
      ok: false,
      error: `packet of ${buf.length} bytes is shorter than the ${FIXED_HEADER_LEN}-byte BOOTP header`,
    };
  }
  const hlen = buf[2]!;
  if (hlen > 16)
    return { ok: false, error: `hardware address length ${hlen} exceeds the 16-byte chaddr field` };
  const snameBuf = buf.subarray(44, 108);
  const fileBuf = buf.subarray(108, 236);
  const packet: DhcpPacket = {
    op: buf[0]!,
    htype: buf[1]!,
    hlen,
    hops: buf[3]!,
    xid: buf.readUInt32BE(4),
    secs: buf.readUInt16BE(8),
    flags: buf.readUInt16BE(10),
    ciaddr: ipAt(buf, 12),
    yiaddr: ipAt(buf, 16),
    siaddr: ipAt(buf, 20),
    giaddr: ipAt(buf, 24),
    chaddr: Buffer.from(buf.subarray(28, 44)),
    sname: cString(snameBuf),
    file: cString(fileBuf),
    hasCookie: false,
    options: new Map(),
  };
  if (buf.length < FIXED_HEADER_LEN + 4) return { ok: true, packet };
  if (buf.readUInt32BE(FIXED_HEADER_LEN) !== MAGIC_COOKIE) {
    return {
      ok: false,
      error: `bad magic cookie 0x${buf.readUInt32BE(FIXED_HEADER_LEN).toString(16)} at offset 236`,
    };
  }
  packet.hasCookie = true;
  const err = parseOptionArea(buf.subarray(FIXED_HEADER_LEN + 4), FIXED_HEADER_LEN + 4, packet.options);
  if (err) return { ok: false, error: err };
  // Option overload (RFC 2132 9.3): file (1), sname (2) or both (3) carry more options, read in
  // that order; the fields then hold no names.
  const overload = packet.options.get(Opt.OVERLOAD);
  if (overload && overload.length === 1) {
    const v = overload[0]!;
    if (v & 1) {
      const e = parseOptionArea(fileBuf, 108, packet.options);
      if (e) return { ok: false, error: `in overloaded file field: ${e}` };
      packet.file = '';
    }
    if (v & 2) {
      const e = parseOptionArea(snameBuf, 44, packet.options);
      if (e) return { ok: false, error: `in overloaded sname field: ${e}` };
      packet.sname = '';
    }
  }
  return { ok: true, packet };
}

function writeIp(buf: Buffer, off: number, ip: string): void {
  const parts = ipToBytes(ip);
  parts.copy(buf, off);
}

/**
 * Serializes a packet. Options are written in map order with the message type first; data longer than
 * 255 bytes is split into several instances (RFC 3396). Throws only on our own programming errors
 * (a bad address string), never on anything derived from a received packet's shape.
 */
export function serializeDhcp(p: DhcpPacket): Buffer {
  const opts: Buffer[] = [];
  const ordered = [...p.options.entries()].sort(([a], [b]) =>
    a === Opt.MESSAGE_TYPE ? -1 : b === Opt.MESSAGE_TYPE ? 1 : 0,
  );
  for (const [code, data] of ordered) {
    if (code === Opt.PAD || code === Opt.END) continue;
    let off = 0;
    do {
      const chunk = data.subarray(off, off + 255);
      opts.push(Buffer.from([code, chunk.length]), chunk);
      off += 255;
    } while (off < data.length);
  }
  const optLen = opts.reduce((n, b) => n + b.length, 0);
  const len = Math.max(MIN_BOOTP_LEN, FIXED_HEADER_LEN + 4 + optLen + 1);
  const buf = Buffer.alloc(len);
  buf[0] = p.op;
  buf[1] = p.htype;
  buf[2] = p.hlen;
  buf[3] = p.hops;
  buf.writeUInt32BE(p.xid >>> 0, 4);
  buf.writeUInt16BE(p.secs & 0xffff, 8);
  buf.writeUInt16BE(p.flags & 0xffff, 10);
  writeIp(buf, 12, p.ciaddr);
  writeIp(buf, 16, p.yiaddr);
  writeIp(buf, 20, p.siaddr);
  writeIp(buf, 24, p.giaddr);
  p.chaddr.copy(buf, 28, 0, Math.min(16, p.chaddr.length));
  Buffer.from(p.sname, 'latin1').copy(buf, 44, 0, 63);
  Buffer.from(p.file, 'latin1').copy(buf, 108, 0, 127);
  buf.writeUInt32BE(MAGIC_COOKIE, FIXED_HEADER_LEN);
  let off = FIXED_HEADER_LEN + 4;
  for (const b of opts) {
    b.copy(buf, off);
    off += b.length;
  }
  buf[off] = Opt.END;
  return buf;
}

// --- addresses -------------------------------------------------------------------------------------

const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function isIpv4(s: string): boolean {
  return (
    IPV4_RE.exec(s)
      ?.slice(1)
      .every((x) => Number(x) <= 255) ?? false
  );
}

export function ipToInt(ip: string): number {
  const m = IPV4_RE.exec(ip);
  if (!m || !isIpv4(ip)) throw new Error(`not an IPv4 address: '${ip}'`);
  return ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
}

export function intToIp(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export function ipToBytes(ip: string): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(ipToInt(ip));
  return b;
}

/** Lower-case colon-separated hardware address from chaddr/hlen, e.g. `52:54:00:12:34:56`. */
export function macOf(p: DhcpPacket): string {
  return [...p.chaddr.subarray(0, p.hlen)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

// --- option accessors (all tolerate wrong lengths by returning undefined) -------------------------

export function optU8(p: DhcpPacket, code: number): number | undefined {
  const b = p.options.get(code);
  return b && b.length === 1 ? b[0] : undefined;
}

export function optU16(p: DhcpPacket, code: number): number | undefined {
  const b = p.options.get(code);
  return b && b.length >= 2 ? b.readUInt16BE(0) : undefined;
}

export function optIp(p: DhcpPacket, code: number): string | undefined {
  const b = p.options.get(code);
  return b && b.length === 4 ? ipAt(b, 0) : undefined;
}

export function optString(p: DhcpPacket, code: number): string | undefined {
  const b = p.options.get(code);
  return b ? cString(b) : undefined;
}

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

export function ipList(ips: readonly string[]): Buffer {
  return Buffer.concat(ips.map(ipToBytes));
}
