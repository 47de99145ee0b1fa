/**
 * Lease records and where they are kept between runs of the server.
 * The JSON file store writes a temporary file in the same directory and renames it over the old one,
 * so a crash mid-write leaves either the old or the new list, never half of one.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isIpv4 } from './codec.js';

export type LeaseState = 'offered' | 'bound' | 'declined';

export interface Lease {
  /** Lower-case colon-separated MAC of the client (for a declined address: the client that declined it). */
  mac: string;
  ip: string;
  state: LeaseState;
  /** Milliseconds since the epoch; past it the address is free again (the MAC is remembered as a hint). */
  expires: number;
  hostname?: string;
}

export interface LeaseStore {
  load(): Promise<Lease[]>;
  save(leases: Lease[]): Promise<void>;
}

/** Keeps leases for the life of the process only (tests, or a server that should forget on restart). */
export class MemoryLeaseStore implements LeaseStore {
  private leases: Lease[] = [];
  async load(): Promise<Lease[]> {
    return this.leases.map((l) => ({ ...l }));
  }
  async save(leases: Lease[]): Promise<void> {
    this.leases = leases.map((l) => ({ ...l }));
  }
}

const STATES: ReadonlySet<string> = new Set(['offered', 'bound', 'declined']);

function checkLease(v: unknown, where: string): Lease {
  if (typeof v !== 'object' || v === null) throw new Error(`${where}: not an object`);
  const o = v as Record<string, unknown>;
  if (typeof o.mac !== 'string' || !/^[0-9a-f]{2}(:[0-9a-f]{2}){0,15}$/.test(o.mac)) {
    throw new Error(`${where}: mac ${JSON.stringify(o.mac)} is not a lower-case colon-separated MAC`);
  }
  if (typeof o.ip !== 'string' || !isIpv4(o.ip))
    throw new Error(`${where}: ip ${JSON.stringify(o.ip)} is not IPv4`);
  if (typeof o.state !== 'string' || !STATES.has(o.state)) {
    throw new Error(`${where}: state ${JSON.stringify(o.state)} is not one of offered, bound, declined`);
  }
  if (typeof o.expires !== 'number' || !Number.isFinite(o.expires)) {
    throw new Error(`${where}: expires ${JSON.stringify(o.expires)} is not a number`);
  }
  if (o.hostname !== undefined && typeof o.hostname !== 'string')
    throw new Error(`${where}: hostname is not a string`);
  const lease: Lease = { mac: o.mac, ip: o.ip, state: o.state as LeaseState, expires: o.expires };
  if (typeof o.hostname === 'string') lease.hostname = o.hostname;
  return lease;
}

/** Leases as a JSON file: `{ "version": 1, "leases": [...] }`. A missing file is an empty list. */
export class JsonFileLeaseStore implements LeaseStore {
  constructor(readonly file: string) {}

  async load(): Promise<Lease[]> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw new Error(`lease file ${this.file}: not valid JSON: ${(e as Error).message}`);
    }
    const leases = (doc as { leases?: unknown } | null)?.leases;
    if (!Array.isArray(leases))
      throw new Error(`lease file ${this.file}: expected an object with a "leases" array`);
    return leases.map((l, i) => checkLease(l, `lease file ${this.file}: leases[${i}]`));
  }

  async save(leases: Lease[]): Promise<void> {
    const dir = dirname(this.file);
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, `.${basename(this.file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      const fh = await open(tmp, 'wx', 0o644);
      try {
        await fh.writeFile(`${JSON.stringify({ version: 1, leases }, null, 1)}\n`);
        // Without the sync a power cut after the rename can leave an empty file in place of the leases.
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.file);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }
}
