/**
 * Slots for network-namespace hosts: each slot is an index that fixes the namespace's name, its veth
 * name and its /30 out of 10.213.0.0/16 (addresses that exist only inside namespaces we make).
 *
 * A slot is taken by creating `/run/osstest-netns/<index>.lock` with link(2), which fails if the file
 * exists, so any number of processes (vitest workers, several test files, the lab) can allocate at
 * once without clashing. The lock records its owner's pid and start time; a slot whose owner has died
 * is stale and `cleanupStaleNetns()` (netns-host.ts) reclaims it.
 */
import { randomBytes } from 'node:crypto';
import {
  linkSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

export const NETNS_RUN_DIR = '/run/osstest-netns';
/** 10.213.0.0/16 cut into /30s. */
export const NETNS_SLOTS = 16384;

export interface NetnsSlot {
  index: number;
  /** `osstest-h<index>` */
  namespace: string;
  /** The root namespace's end of the veth pair, `osn<index>` (interface names are at most 15 chars). */
  vethRoot: string;
  /** The host's end, inside the namespace. */
  vethHost: string;
  /** The root namespace's address on the link: what the host sees as its controller. */
  rootAddress: string;
  /** The host's address. */
  hostAddress: string;
  prefixLength: 30;
}

export function slotFor(index: number): NetnsSlot {
  if (!Number.isInteger(index) || index < 0 || index >= NETNS_SLOTS) {
    throw new Error(`netns slot index ${index} outside 0..${NETNS_SLOTS - 1}`);
  }
  const base = index * 4;
  const net = `10.213.${base >> 8}`;
  return {
    index,
    namespace: `osstest-h${index}`,
    vethRoot: `osn${index}`,
    vethHost: 'eth0',
    rootAddress: `${net}.${(base & 255) + 1}`,
    hostAddress: `${net}.${(base & 255) + 2}`,
    prefixLength: 30,
  };
}

export interface NetnsLease {
  index: number;
  /** The host's own name (as given to NetnsHost.create). */
  name: string;
  namespace: string;
  stateDir: string;
  /** 0: owned by no process (a lab host that outlives the command that made it); never stale. */
  ownerPid: number;
  /** The owner's start time in clock ticks since boot (from /proc), so a reused pid is not mistaken for it. */
  ownerStart: number;
  createdAt: string;
}

/** Field 22 of /proc/PID/stat, or undefined if there is no such (living) process. */
export function processStartTime(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may contain spaces and parentheses; everything after the last ')' is fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
  const start = Number(fields[19]);
  return Number.isFinite(start) ? start : undefined;
}

export function leaseIsStale(lease: NetnsLease): boolean {
  if (lease.ownerPid === 0) return false;
  return processStartTime(lease.ownerPid) !== lease.ownerStart;
}

function lockPath(index: number, runDir: string): string {
  return join(runDir, `${index}.lock`);
}

function parseLease(text: string, where: string): NetnsLease {
  try {
    const l = JSON.parse(text) as NetnsLease;
    if (typeof l.index !== 'number' || typeof l.ownerPid !== 'number') throw new Error('missing fields');
    return l;
  } catch (err) {
    throw new Error(`${where}: not a netns lease: ${(err as Error).message}`);
  }
}

/**
 * Takes the first free slot. `prepare` runs while the slot is held and before it is returned (to clear
 * leftovers a crashed owner may have left under the same names).
 */
export function acquireSlot(
  info: { name: string; stateDir: string; ownerPid?: number },
  runDir = NETNS_RUN_DIR,
): { slot: NetnsSlot; lease: NetnsLease } {
  mkdirSync(runDir, { recursive: true, mode: 0o755 });
  const ownerPid = info.ownerPid ?? process.pid;
  const ownerStart = ownerPid === 0 ? 0 : processStartTime(ownerPid);
  if (ownerStart === undefined)
    throw new Error(`netns host ${info.name}: owner pid ${ownerPid} is not running`);
  const tmp = join(runDir, `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    for (let index = 0; index < NETNS_SLOTS; index++) {
      const slot = slotFor(index);
      const lease: NetnsLease = {
        index,
        name: info.name,
        namespace: slot.namespace,
        stateDir: info.stateDir,
        ownerPid,
        ownerStart,
        createdAt: new Date().toISOString(),
      };
      writeFileSync(tmp, `${JSON.stringify(lease)}\n`);
      try {
        linkSync(tmp, lockPath(index, runDir));
        return { slot, lease };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // Already gone or never written.
    }
  }
  throw new Error(`no free netns slot in ${runDir} (all ${NETNS_SLOTS} taken; try cleanupStaleNetns)`);
}

export function releaseSlot(index: number, runDir = NETNS_RUN_DIR): void {
  try {
    unlinkSync(lockPath(index, runDir));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

export function listLeases(runDir = NETNS_RUN_DIR): NetnsLease[] {
  let names: string[];
  try {
    names = readdirSync(runDir);
  } catch {
    return [];
  }
  const out: NetnsLease[] = [];
  for (const n of names) {
    if (!/^\d+\.lock$/.test(n)) continue;
    const p = join(runDir, n);
    try {
      out.push(parseLease(readFileSync(p, 'utf8'), p));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return out.sort((a, b) => a.index - b.index);
}

/**
 * Claims stale slots for reaping: each stale lock is renamed to a name private to this process (only one
 * reaper's rename can succeed), then rechecked, since between reading it and renaming it the slot may
 * have been freed and taken by a live process. Returns the claimed leases; `finishReap` frees each.
 * Also claims the leftovers of a reaper that died half-way.
 */
export function claimStaleSlots(runDir = NETNS_RUN_DIR): NetnsLease[] {
  let names: string[];
  try {
    names = readdirSync(runDir);
  } catch {
    return [];
  }
  const claimed: NetnsLease[] = [];
  for (const n of names) {
    const p = join(runDir, n);
    const tmpOwner = /^\.tmp-(\d+)-/.exec(n);
    if (tmpOwner) {
      if (processStartTime(Number(tmpOwner[1])) === undefined) rmQuiet(p);
      continue;
    }
    const m = /^(\d+)\.lock(?:\.reap-(\d+))?$/.exec(n);
    if (!m) continue;
    const reaper = m[2] === undefined ? undefined : Number(m[2]);
    if (reaper === process.pid) continue;
    if (reaper !== undefined && processStartTime(reaper) !== undefined) continue;
    let lease: NetnsLease;
    try {
      lease = parseLease(readFileSync(p, 'utf8'), p);
    } catch {
      continue;
    }
    if (reaper === undefined && !leaseIsStale(lease)) continue;
    const mine = join(runDir, `${m[1]}.lock.reap-${process.pid}`);
    try {
      renameSync(p, mine);
    } catch {
      continue;
    }
    const now = parseLease(readFileSync(mine, 'utf8'), mine);
    if (reaper === undefined && !leaseIsStale(now)) {
      // We took a live owner's fresh lock: put it back (if the slot was taken again meanwhile, the
      // newer lock wins and this one's owner will find its lock gone at destroy, which it tolerates).
      try {
        linkSync(mine, p);
      } catch {
        // See above.
      }
      rmQuiet(mine);
      continue;
    }
    claimed.push(now);
  }
  return claimed;
}

export function finishReap(index: number, runDir = NETNS_RUN_DIR): void {
  rmQuiet(join(runDir, `${index}.lock.reap-${process.pid}`));
}

function rmQuiet(p: string): void {
  try {
    unlinkSync(p);
  } catch {
    // Someone else removed it first.
  }
}
