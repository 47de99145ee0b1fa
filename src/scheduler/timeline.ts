/**
 * One host's busy time from now on, as half-open spans [start, end). Spans may overlap only where
 * sharers of a shared build host hold it together; everything else is exclusive. A lab host rarely
 * has more than a few dozen spans in a plan, so sorted arrays beat anything cleverer.
 */
import type { Millis } from './types.js';

/** hold: held now (exclusively); share: held now as a slot of a shared host; booking: planned or reserved. */
export type SpanKind = 'hold' | 'share' | 'booking';

export interface Span {
  start: Millis;
  end: Millis;
  kind: SpanKind;
  owner: string;
}

export class Timeline {
  private readonly spans: Span[] = [];

  add(s: Span): void {
    if (!(s.end > s.start)) return;
    let lo = 0;
    let hi = this.spans.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.spans[mid]!.start <= s.start) lo = mid + 1;
      else hi = mid;
    }
    this.spans.splice(lo, 0, s);
  }

  list(): readonly Span[] {
    return this.spans;
  }

  /** No span overlaps [s, e); with `ignoreShare`, spans of sharers do not count. */
  freeOver(s: Millis, e: Millis, ignoreShare = false): boolean {
    for (const x of this.spans) {
      if (x.start >= e) break;
      if (x.end > s && !(ignoreShare && x.kind === 'share')) return false;
    }
    return true;
  }

  /** The earliest t ≥ from with [t, t + dur) free. */
  earliestFit(from: Millis, dur: Millis): Millis {
    let t = from;
    for (const x of this.spans) {
      if (x.end <= t) continue;
      if (x.start >= t + dur) break;
      t = x.end;
    }
    return t;
  }

  /**
   * The start times t ≥ from with [t, t + dur) free, as closed ranges [lo, hi], ascending; the last
   * one is open-ended (hi = Infinity).
   */
  startWindows(from: Millis, dur: Millis): Array<[Millis, Millis]> {
    const out: Array<[Millis, Millis]> = [];
    let free = from;
    for (const x of this.spans) {
      if (x.end <= free) continue;
      if (x.start - free >= dur) out.push([free, x.start - dur]);
      free = Math.max(free, x.end);
    }
    out.push([free, Number.POSITIVE_INFINITY]);
    return out;
  }

  /**
   * If nothing (with `ignoreShare`, nothing but sharers) covers t, when the free time starting at t
   * ends (Infinity when nothing follows); otherwise t itself (no free time).
   */
  freeUntil(t: Millis, ignoreShare = false): Millis {
    let until = Number.POSITIVE_INFINITY;
    for (const x of this.spans) {
      if (ignoreShare && x.kind === 'share') continue;
      if (x.start <= t && x.end > t) return t;
      if (x.start > t && x.start < until) until = x.start;
    }
    return until;
  }
}
