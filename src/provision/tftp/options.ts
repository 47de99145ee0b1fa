/**
 * Option negotiation for a read request: blksize (RFC 2348), timeout and tsize (RFC 2349),
 * windowsize (RFC 7440). Only options the client asked for are answered; unknown options and
 * values out of range are ignored (left out of the OACK), which RFC 2347 allows and which keeps
 * odd clients booting at the defaults instead of failing.
 */

export const BLKSIZE_MIN = 8;
export const BLKSIZE_MAX = 65464;
export const DEFAULT_BLKSIZE = 512;

export interface NegotiationLimits {
  maxBlksize: number;
  maxWindowsize: number;
}

export interface Negotiated {
  blksize: number;
  windowsize: number;
  /** Retransmission timeout the client asked for, in ms; undefined = the server's own. */
  timeoutMs: number | undefined;
  /** What goes in the OACK, in the order the client named them; empty = no OACK, start with DATA 1. */
  oack: Map<string, string>;
}

/** A decimal integer as RFC 2347 values are written: digits only, no sign, no spaces. */
function parseDecimal(value: string): number | undefined {
  if (!/^[0-9]{1,10}$/.test(value)) return undefined;
  return Number(value);
}

export function negotiate(
  requested: ReadonlyMap<string, string>,
  fileSize: number,
  limits: NegotiationLimits,
): Negotiated {
  const out: Negotiated = { blksize: DEFAULT_BLKSIZE, windowsize: 1, timeoutMs: undefined, oack: new Map() };
  for (const [name, value] of requested) {
    const n = parseDecimal(value);
    switch (name) {
      case 'blksize':
        if (n !== undefined && n >= BLKSIZE_MIN) {
          out.blksize = Math.min(n, BLKSIZE_MAX, limits.maxBlksize);
          out.oack.set(name, String(out.blksize));
        }
        break;
      case 'tsize':
        // On a read request the client sends 0 and we answer the real size.
        if (n !== undefined) out.oack.set(name, String(fileSize));
        break;
      case 'timeout':
        if (n !== undefined && n >= 1 && n <= 255) {
          out.timeoutMs = n * 1000;
          out.oack.set(name, String(n));
        }
        break;
      case 'windowsize':
        if (n !== undefined && n >= 1 && n <= 65535) {
          out.windowsize = Math.min(n, limits.maxWindowsize);
          out.oack.set(name, String(out.windowsize));
        }
        break;
      default:
        break;
    }
  }
  return out;
}
