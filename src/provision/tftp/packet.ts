/**
 * TFTP wire format (RFC 1350, options RFC 2347): parsing what peers send and encoding what we send.
 * Parsers never throw: anything that does not fit the format comes back as `{ ok: false, reason }`,
 * so a socket handler can count and drop it.
 */

export const Opcode = { RRQ: 1, WRQ: 2, DATA: 3, ACK: 4, ERROR: 5, OACK: 6 } as const;
export type Opcode = (typeof Opcode)[keyof typeof Opcode];

/** RFC 1350 error codes, plus 8 from RFC 2347. */
export const ErrorCode = {
  NotDefined: 0,
  FileNotFound: 1,
  AccessViolation: 2,
  DiskFull: 3,
  IllegalOperation: 4,
  UnknownTransferId: 5,
  FileExists: 6,
  NoSuchUser: 7,
  OptionNegotiation: 8,
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];
export type ErrorKind = keyof typeof ErrorCode;

const errorKindByCode = new Map<number, ErrorKind>(
  (Object.entries(ErrorCode) as [ErrorKind, number][]).map(([k, v]) => [v, k]),
);

export function errorKind(code: number): ErrorKind {
  return errorKindByCode.get(code) ?? 'NotDefined';
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

export interface TftpRequest {
  opcode: typeof Opcode.RRQ | typeof Opcode.WRQ;
  filename: string;
  /** Lower-cased, as sent (`octet`, `netascii`, `mail`, or anything else a peer wrote). */
  mode: string;
  /** Option names lower-cased; the first occurrence of a name wins; values as sent. */
  options: Map<string, string>;
}

/** Longest filename we look at; longer requests are refused rather than resolved. */
export const MAX_FILENAME_BYTES = 1024;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * Parses an RRQ or WRQ. Filename and mode must each end with a NUL. After the mode, options are
 * name/value pairs; an empty name ends them (some boot ROMs pad requests with NULs) and a name
 * without a value is ignored, because clients in the field do both and refusing them helps nobody.
 */
export function parseRequest(buf: Buffer): Parsed<TftpRequest> {
  if (buf.length < 2) return { ok: false, reason: `${buf.length}-byte packet has no opcode` };
  const opcode = buf.readUInt16BE(0);
  if (opcode !== Opcode.RRQ && opcode !== Opcode.WRQ) {
    return { ok: false, reason: `opcode ${opcode} is not a request` };
  }
  const strings: Buffer[] = [];
  let at = 2;
  while (at < buf.length) {
    const nul = buf.indexOf(0, at);
    if (nul < 0) {
      if (strings.length < 2) return { ok: false, reason: 'filename or mode not NUL-terminated' };
      break; // trailing bytes after the options: ignore, as with padding
    }
    strings.push(buf.subarray(at, nul));
    at = nul + 1;
  }
  const [nameBytes, modeBytes] = strings;
  if (nameBytes === undefined || modeBytes === undefined) {
    return { ok: false, reason: 'filename or mode missing' };
  }
  if (nameBytes.length === 0) return { ok: false, reason: 'empty filename' };
  const filename = decodeUtf8(nameBytes);
  if (filename === undefined) return { ok: false, reason: 'filename is not valid UTF-8' };
  const mode = modeBytes.toString('latin1').toLowerCase();
  const options = new Map<string, string>();
  for (let i = 2; i + 1 < strings.length; i += 2) {
    const name = strings[i]!.toString('latin1').toLowerCase();
    if (name === '') break;
    if (!options.has(name)) options.set(name, strings[i + 1]!.toString('latin1'));
  }
  return { ok: true, value: { opcode, filename, mode, options } };
}

export type PeerPacket =
  | { opcode: typeof Opcode.ACK; block: number }
  | { opcode: typeof Opcode.ERROR; code: number; message: string }
  | { opcode: typeof Opcode.RRQ | typeof Opcode.WRQ | typeof Opcode.DATA | typeof Opcode.OACK };

/** Parses a packet arriving on a transfer socket (from the client that owns the transfer). */
export function parsePeerPacket(buf: Buffer): Parsed<PeerPacket> {
  if (buf.length < 2) return { ok: false, reason: `${buf.length}-byte packet has no opcode` };
  const opcode = buf.readUInt16BE(0);
  switch (opcode) {
    case Opcode.ACK:
      // RFC 1350 ACKs are 4 bytes; longer ones are accepted (trailing bytes ignored), shorter are not.
      if (buf.length < 4) return { ok: false, reason: `${buf.length}-byte ACK` };
      return { ok: true, value: { opcode, block: buf.readUInt16BE(2) } };
    case Opcode.ERROR: {
      if (buf.length < 4) return { ok: false, reason: `${buf.length}-byte ERROR` };
      const end = buf.indexOf(0, 4);
      const message = buf.subarray(4, end < 0 ? buf.length : end).toString('latin1');
      return { ok: true, value: { opcode, code: buf.readUInt16BE(2), message } };
    }
    case Opcode.RRQ:
    case Opcode.WRQ:
    case Opcode.DATA:
    case Opcode.OACK:
      return { ok: true, value: { opcode } };
    default:
      return { ok: false, reason: `unknown opcode ${opcode}` };
  }
}

export function encodeData(block: number, payload: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(4 + payload.length);
  b.writeUInt16BE(Opcode.DATA, 0);
  b.writeUInt16BE(block & 0xffff, 2);
  b.set(payload, 4);
  return b;
}

export function encodeAck(block: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt16BE(Opcode.ACK, 0);
  b.writeUInt16BE(block & 0xffff, 2);
  return b;
}

export function encodeError(code: ErrorCode, message: string): Buffer {
  const text = Buffer.from(message, 'latin1');
  const b = Buffer.alloc(5 + text.length);
  b.writeUInt16BE(Opcode.ERROR, 0);
  b.writeUInt16BE(code, 2);
  text.copy(b, 4);
  return b;
}

export function encodeOack(options: ReadonlyMap<string, string>): Buffer {
  const parts: Buffer[] = [Buffer.from([0, Opcode.OACK])];
  for (const [name, value] of options) parts.push(Buffer.from(`${name}\0${value}\0`, 'latin1'));
  return Buffer.concat(parts);
}

/** Encodes an RRQ or WRQ; used by clients (our tests), kept here so both sides share one format. */
export function encodeRequest(
  opcode: typeof Opcode.RRQ | typeof Opcode.WRQ,
  filename: string,
  mode = 'octet',
  options: Record<string, string | number> = {},
): Buffer {
  const parts: Buffer[] = [Buffer.from([0, opcode]), Buffer.from(`${filename}\0`, 'utf8')];
  parts.push(Buffer.from(`${mode}\0`, 'latin1'));
  for (const [name, value] of Object.entries(options))
    parts.push(Buffer.from(`${name}\0${value}\0`, 'latin1'));
  return Buffer.concat(parts);
}

/** Parses an OACK (client side, for tests and tools): option names lower-cased. */
export function parseOack(buf: Buffer): Parsed<Map<string, string>> {
  if (buf.length < 2 || buf.readUInt16BE(0) !== Opcode.OACK) return { ok: false, reason: 'not an OACK' };
  const out = new Map<string, string>();
  const strings = buf.subarray(2).toString('latin1').split('\0');
  if (strings.at(-1) !== '') return { ok: false, reason: 'OACK not NUL-terminated' };
  strings.pop();
  if (strings.length % 2 !== 0) return { ok: false, reason: 'OACK option without a value' };
  for (let i = 0; i < strings.length; i += 2) out.set(strings[i]!.toLowerCase(), strings[i + 1]!);
  return { ok: true, value: out };
}
