/**
 * Whether a worker needs to decide again, or another worker's decision has already looked at
 * everything that woke it.
 *
 * On PostgreSQL every change that can give a worker something to do sends a NOTIFY naming its
 * transaction, and every allocation decision ends by announcing the snapshot it read the lab from
 * and whether its plan had more to start than it took. One change wakes every worker, but one
 * decision is enough to act on it: a worker whose every waking change is visible in a snapshot some
 * decision read, and that decision found nothing more to start, has nothing to decide. Without
 * this, with four workers, each change cost four decisions taken in turn under the decision lock,
 * three of them finding nothing (bench/scheduler).
 *
 * A wake whose cause is not known (the worker's own job ending, a store without NOTIFY) always needs
 * a decision. A poll needs one when the last plan has something fall due by then (plans change with
 * time alone: bookings fall due, jobs starve), and at least every `safetyMs` in any case.
 */

import type { LabWake } from '../db/lab/types.js';

/**
 * How soon a worker turned away from a busy turn (see LabStore.deciding) looks again when it still
 * has changes no decision is known to have seen: the deciding worker's announcement rouses it, but
 * may arrive a moment before that worker has given the turn up.
 */
export const BUSY_RETRY_MS = 50;

/** A PostgreSQL snapshot as `pg_current_snapshot()::text` writes it: `xmin:xmax:xip,xip,…`. */
export interface Snapshot {
  xmin: bigint;
  xmax: bigint;
  inProgress: Set<bigint>;
}

export function parseSnapshot(text: string): Snapshot | undefined {
  const m = /^(\d+):(\d+):([\d,]*)$/.exec(text.trim());
  if (!m) return undefined;
  return {
    xmin: BigInt(m[1]!),
    xmax: BigInt(m[2]!),
    inProgress: new Set(m[3] ? m[3].split(',').map((x) => BigInt(x)) : []),
  };
}

/** Whether a transaction that has committed is visible in the snapshot (committed before it was taken). */
export function visibleIn(xid: bigint, s: Snapshot): boolean {
  if (xid < s.xmin) return true;
  if (xid >= s.xmax) return false;
  return !s.inProgress.has(xid);
}

export class WakeLedger {
  /** Transactions whose changes woke this worker and no decision is known to have seen. */
  private readonly pending = new Set<bigint>();
  /** Woken for a reason with no transaction (or told there is more to start): decide. */
  private unknown = true;
  /** When the last known plan has something fall due with time alone (a booking, a job starving). */
  private due = Number.NEGATIVE_INFINITY;
  /** When the last known decision was made (local clock). */
  private lastDecision = Number.NEGATIVE_INFINITY;

  /**
   * @param safetyMs a poll decides at least this often even when nothing falls due: the safety net
   *   for a notification lost with a dropped LISTEN connection.
   */
  constructor(private readonly safetyMs = 60_000) {}

  /** The poll timer went off: decide if something in the plan has fallen due, or for safety. */
  polled(now = Date.now()): void {
    if (now >= this.due || now - this.lastDecision >= this.safetyMs) this.unknown = true;
  }

  /**
   * A notification heard (see LabWake): another worker's decision, or a change. Returns whether to
   * look at the lab again now: after a change, and after a decision that did not settle everything
   * (it left more to start, or did not see a change this worker knows of: the turn is free again).
   */
  heard(w: LabWake, now = Date.now()): boolean {
    if (w.decided) {
      this.decided(w.decided.snapshot, w.decided.more, w.decided.due, now, w.xid);
      return this.needed;
    }
    this.changed(w.xid);
    return true;
  }

  /** A change (by the transaction `xid`, when the notification named one) may have given us work. */
  changed(xid?: bigint): void {
    if (xid === undefined) this.unknown = true;
    else this.pending.add(xid);
  }

  /** Whether to decide now. */
  get needed(): boolean {
    return this.unknown || this.pending.size > 0;
  }

  /** This worker is about to read the lab: what woke it so far will be in what it reads. */
  deciding(): void {
    this.unknown = false;
  }

  /**
   * A decision (this worker's or another's) read the lab at `snapshot` and found `more` to start
   * than it took (or could not tell); its plan has something fall due at `due` (epoch ms; Infinity:
   * nothing). Changes it saw need no decision of ours unless there is more.
   *
   * The more it left is work like a change's, made by the transaction that announced it (`xid`, which
   * commits after the decision's claims): a later decision that saw it and found nothing more has
   * started it all. Without that, one decision that left more made every worker decide in turn, the
   * last ones finding nothing (bench/scheduler). Not knowing the transaction, decide.
   */
  decided(snapshot: string | undefined, more: boolean, due?: number, now = Date.now(), xid?: bigint): void {
    this.lastDecision = now;
    // Unknown (another store, an old worker): assume it falls due at once, so polls decide.
    this.due = due ?? Number.NEGATIVE_INFINITY;
    const s = snapshot === undefined ? undefined : parseSnapshot(snapshot);
    if (s) for (const x of this.pending) if (visibleIn(x, s)) this.pending.delete(x);
    if (!more) return;
    if (xid === undefined) this.unknown = true;
    else this.pending.add(xid);
  }
}
