/**
 * Reading the lease files of DHCP servers that are not ours, to learn which address a MAC got:
 * - dnsmasq's (`dhcp-leasefile`): one lease a line, `<expiry> <mac> <ip> <hostname|*> <client-id|*>`,
 *   expiry in seconds since the epoch (0 = never); DHCPv6 leases follow a `duid …` line and are ignored;
 * - ISC dhcpd's (dhcpd.leases(5)): `lease <ip> { starts …; ends …; binding state …; hardware ethernet …; }`
 *   blocks appended as leases change, so the last block for an address is the one in force.
 * A line or block that cannot be read is skipped and reported (line number and why); nothing here throws
 * on bad content, since the file belongs to another program and may be half-written as we read it.
 */
import { readFile } from 'node:fs/promises';

export type LeaseFileFormat = 'dnsmasq' | 'isc';

export interface LeaseRecord {
  /** Lower-case colon-separated hardware address. */
  mac: string;
  ip: string;
  /** Milliseconds since the epoch; null when the lease never ends. */
  expires: number | null;
  /** ISC's binding state (`active`, `free`, `expired`, `released`, `abandoned`, `backup`…); dnsmasq: `active`. */
  state: string;
  hostname?: string;
  /** When the lease began (ISC only), milliseconds since the epoch. */
  starts?: number;
  /** Line the lease begins on. */
  line: number;
}

export interface SkippedEntry {
  line: number;
  reason: string;
}

export interface ParsedLeaseFile {
  format: LeaseFileFormat;
  leases: LeaseRecord[];
  skipped: SkippedEntry[];
  /** Entries that are valid but not IPv4 leases (dnsmasq's DHCPv6 leases and duid line; ISC host/failover blocks). */
  ignored: number;
}

const MAC_RE = /^[0-9a-f]{1,2}(:[0-9a-f]{1,2}){5}$/i;
const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function normMac(mac: string): string {
  return mac
    .toLowerCase()
    .split(':')
    .map((b) => b.padStart(2, '0'))
    .join(':');
}

/** dnsmasq's lease file. */
export function parseDnsmasqLeases(text: string): ParsedLeaseFile {
  const out: ParsedLeaseFile = { format: 'dnsmasq', leases: [], skipped: [], ignored: 0 };
  let v6 = false;
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    const s = raw.trim();
    if (s === '') return;
    const f = s.split(/\s+/);
    if (f[0] === 'duid') {
      // Everything after the duid line is a DHCPv6 lease.
      v6 = true;
      out.ignored++;
      return;
    }
    if (f.length < 4 || f.length > 5) {
      out.skipped.push({ line, reason: `expected 4 or 5 fields, found ${f.length}` });
      return;
    }
    const [expiry, hw, ip, name] = f as [string, string, string, string];
    if (!/^\d{1,12}$/.test(expiry)) {
      out.skipped.push({ line, reason: `expiry ${JSON.stringify(expiry)} is not a number of seconds` });
      return;
    }
    if (v6 || ip.includes(':')) {
      out.ignored++;
      return;
    }
    // dnsmasq writes non-Ethernet hardware as `<type>-<address>`; only Ethernet MACs are of use here.
    if (!MAC_RE.test(hw)) {
      out.skipped.push({ line, reason: `hardware address ${JSON.stringify(hw)} is not an Ethernet MAC` });
      return;
    }
    if (!IPV4_RE.test(ip)) {
      out.skipped.push({ line, reason: `address ${JSON.stringify(ip)} is not IPv4` });
      return;
    }
    const secs = Number(expiry);
    const lease: LeaseRecord = {
      mac: normMac(hw),
      ip,
      expires: secs === 0 ? null : secs * 1000,
      state: 'active',
      line,
    };
    if (name !== '*') lease.hostname = name;
    out.leases.push(lease);
  });
  return out;
}

type Token = { t: 'word' | 'string' | '{' | '}' | ';'; v: string; line: number };

/** ISC's config-like syntax: words, "quoted strings" (with backslash escapes), braces, semicolons, # comments. */
function tokenize(text: string): { tokens: Token[]; error?: SkippedEntry } {
  const tokens: Token[] = [];
  let line = 1;
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === '\n') {
      line++;
      i++;
    } else if (c === ' ' || c === '\t' || c === '\r') {
      i++;
    } else if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '{' || c === '}' || c === ';') {
      tokens.push({ t: c, v: c, line });
      i++;
    } else if (c === '"') {
      const start = line;
      let v = '';
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\' && i + 1 < text.length) {
          v += text[i + 1];
          i += 2;
          continue;
        }
        if (text[i] === '\n') line++;
        v += text[i];
        i++;
      }
      if (i >= text.length) return { tokens, error: { line: start, reason: 'unterminated string' } };
      i++;
      tokens.push({ t: 'string', v, line: start });
    } else {
      let v = '';
      while (i < text.length && !/[\s{};"#]/.test(text[i] as string)) v += text[i++];
      tokens.push({ t: 'word', v, line });
    }
  }
  return { tokens };
}

/** `<weekday> YYYY/MM/DD HH:MM:SS` (UTC), `epoch <secs>`, or `never`; undefined when it is none of those. */
function iscTime(words: string[]): number | null | undefined {
  if (words.length === 1 && words[0] === 'never') return null;
  if (words.length === 2 && words[0] === 'epoch' && /^\d+$/.test(words[1] as string))
    return Number(words[1]) * 1000;
  if (words.length === 3 && /^[0-6]$/.test(words[0] as string)) {
    const m = /^(\d{4})\/(\d{1,2})\/(\d{1,2})$/.exec(words[1] as string);
    const t = /^(\d{1,2}):(\d{2}):(\d{2})$/.exec(words[2] as string);
    if (!m || !t) return undefined;
    const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], t[1], t[2], t[3]].map(Number) as [
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    const ms = Date.UTC(y, mo - 1, d, h, mi, s);
    // Date.UTC rolls 2026/13/45 over into 2027; a date that does not come back unchanged is not one.
    const back = new Date(ms);
    if (back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || h > 23 || mi > 59 || s > 59)
      return undefined;
    return ms;
  }
  return undefined;
}

const BLOCKS: ReadonlySet<string> = new Set(['lease', 'host', 'failover', 'group']);

/** ISC dhcpd's dhcpd.leases. */
export function parseIscLeases(text: string): ParsedLeaseFile {
  const out: ParsedLeaseFile = { format: 'isc', leases: [], skipped: [], ignored: 0 };
  const { tokens, error } = tokenize(text);
  let i = 0;
  /** Statements up to the matching `}` (nested blocks skipped); index after it, or -1 if the file ends first. */
  const block = (from: number): { stmts: Token[][]; next: number } => {
    const stmts: Token[][] = [];
    let cur: Token[] = [];
    let depth = 0;
    for (let j = from; j < tokens.length; j++) {
      const tk = tokens[j] as Token;
      if (tk.t === '{') depth++;
      else if (tk.t === '}') {
        if (depth === 0) return { stmts, next: j + 1 };
        depth--;
        if (depth === 0) cur = [];
      } else if (depth > 0) continue;
      else if (tk.t === ';') {
        if (cur.length) stmts.push(cur);
        cur = [];
      } else cur.push(tk);
    }
    return { stmts, next: -1 };
  };
  while (i < tokens.length) {
    const tk = tokens[i] as Token;
    const line = tk.line;
    if (tk.t === 'word' && BLOCKS.has(tk.v)) {
      // Header words up to `{`.
      let j = i + 1;
      const head: Token[] = [];
      // `lease` takes exactly one word (the address), so a header cut short does not swallow the next lease.
      const maxHead = tk.v === 'lease' ? 1 : Number.POSITIVE_INFINITY;
      while (
        j < tokens.length &&
        head.length < maxHead &&
        (tokens[j] as Token).t !== '{' &&
        (tokens[j] as Token).t !== ';'
      )
        head.push(tokens[j++] as Token);
      if (j >= tokens.length || (tokens[j] as Token).t !== '{') {
        out.skipped.push({ line, reason: `${tk.v} without a { block` });
        i = (tokens[j] as Token | undefined)?.t === ';' ? j + 1 : j;
        continue;
      }
      const b = block(j + 1);
      if (b.next < 0) {
        out.skipped.push({ line, reason: `${tk.v} block is not closed before the end of the file` });
        break;
      }
      i = b.next;
      if (tk.v !== 'lease') {
        out.ignored++;
        continue;
      }
      const ip = head[0]?.v ?? '';
      if (head.length !== 1 || !IPV4_RE.test(ip)) {
        out.skipped.push({ line, reason: `lease ${JSON.stringify(ip)}: not an IPv4 address` });
        continue;
      }
      const r = leaseBlock(ip, b.stmts, line);
      if (typeof r === 'string') out.skipped.push({ line, reason: `lease ${ip}: ${r}` });
      else out.leases.push(r);
      continue;
    }
    // A top-level statement (server-duid, authoring-byte-order…): skip to its `;`.
    if (tk.t === 'word') {
      let j = i + 1;
      while (j < tokens.length && (tokens[j] as Token).t !== ';' && (tokens[j] as Token).t !== '{') {
        // Junk without its `;` must not swallow the lease after it.
        if ((tokens[j] as Token).t === 'word' && BLOCKS.has((tokens[j] as Token).v)) break;
        j++;
      }
      const end = tokens[j] as Token | undefined;
      if (end?.t === 'word') {
        out.skipped.push({ line, reason: `statement ${JSON.stringify(tk.v)} without a ;` });
        i = j;
      } else if (end?.t === '{') {
        out.skipped.push({ line, reason: `unknown block ${JSON.stringify(tk.v)}` });
        const b = block(j + 1);
        if (b.next < 0) break;
        i = b.next;
      } else {
        out.ignored++;
        i = j + 1;
      }
      continue;
    }
    out.skipped.push({ line, reason: `unexpected ${JSON.stringify(tk.v)}` });
    i++;
  }
  if (error) out.skipped.push(error);
  return out;
}

function leaseBlock(ip: string, stmts: Token[][], line: number): LeaseRecord | string {
  let mac: string | undefined;
  let state: string | undefined;
  let ends: number | null | undefined;
  let starts: number | undefined;
  let hostname: string | undefined;
  for (const st of stmts) {
    const w = st.map((t) => t.v);
    if (w[0] === 'hardware') {
      if (w.length !== 3 || !MAC_RE.test(w[2] as string)) return `bad hardware statement "${w.join(' ')}"`;
      if (w[1] !== 'ethernet') return `hardware type ${w[1]} is not ethernet`;
      mac = normMac(w[2] as string);
    } else if (w[0] === 'binding' && w[1] === 'state') {
      state = w[2];
    } else if (w[0] === 'ends') {
      ends = iscTime(w.slice(1));
      if (ends === undefined) return `cannot read the time "${w.slice(1).join(' ')}"`;
    } else if (w[0] === 'starts') {
      const s = iscTime(w.slice(1));
      if (s === undefined || s === null) return `cannot read the time "${w.slice(1).join(' ')}"`;
      starts = s;
    } else if (w[0] === 'client-hostname' && st[1]?.t === 'string') {
      hostname = st[1].v;
    }
  }
  if (!mac) return 'no hardware ethernet address';
  const lease: LeaseRecord = { mac, ip, expires: ends ?? null, state: state ?? 'active', line };
  if (ends === undefined) lease.expires = null;
  if (starts !== undefined) lease.starts = starts;
  if (hostname !== undefined) lease.hostname = hostname;
  return lease;
}

/** ISC when the file has a block or a dhcpd statement, else dnsmasq. */
export function detectLeaseFormat(text: string): LeaseFileFormat {
  for (const raw of text.split('\n')) {
    const s = raw.trim();
    if (s === '' || s.startsWith('#')) continue;
    if (/^(lease|host|failover|server-duid|authoring-byte-order|group)\b/.test(s) || s.includes('{'))
      return 'isc';
  }
  return 'dnsmasq';
}

export function parseLeases(text: string, format: LeaseFileFormat | 'auto' = 'auto'): ParsedLeaseFile {
  const f = format === 'auto' ? detectLeaseFormat(text) : format;
  return f === 'isc' ? parseIscLeases(text) : parseDnsmasqLeases(text);
}

/** Reads and parses a lease file; a missing file has no leases (the server has not written one yet). */
export async function readLeaseFile(
  file: string,
  format: LeaseFileFormat | 'auto' = 'auto',
): Promise<ParsedLeaseFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      return { format: format === 'auto' ? 'dnsmasq' : format, leases: [], skipped: [], ignored: 0 };
    throw new Error(`lease file ${file}: ${(e as Error).message}`);
  }
  return parseLeases(text, format);
}

/**
 * The leases in force at `now`, one per MAC: for each address the last entry wins (ISC appends), then
 * only active, unexpired ones count; a MAC with several keeps the one that started (or was written) last.
 */
export function currentLeases(leases: readonly LeaseRecord[], now = Date.now()): LeaseRecord[] {
  const byIp = new Map<string, LeaseRecord>();
  for (const l of leases) byIp.set(l.ip, l);
  const byMac = new Map<string, LeaseRecord>();
  for (const l of byIp.values()) {
    if (l.state !== 'active' || (l.expires !== null && l.expires <= now)) continue;
    const prev = byMac.get(l.mac);
    if (
      !prev ||
      (l.starts ?? 0) > (prev.starts ?? 0) ||
      ((l.starts ?? 0) === (prev.starts ?? 0) && l.line > prev.line)
    )
      byMac.set(l.mac, l);
  }
  return [...byMac.values()].sort((a, b) => a.line - b.line);
}
