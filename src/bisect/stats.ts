/**
 * `osstest bisect stats`: the bisector's own record, measured from the bisection tables — how
 * often it names a culprit, how often a named culprit was confirmed by `bisect verify` (its
 * measured precision, set beside the confidence it claimed), and what a bisection costs in flights
 * and time.
 */
import type { Store } from '../db/store.js';

export interface BisectStats {
  /** Bisections with a verdict. */
  total: number;
  pending: number;
  running: number;
  /** Verdicts naming a culprit (4 and 12). */
  found: number;
  byCode: Record<string, number>;
  /** Culprits verified, and how that came out. */
  verified: number;
  confirmed: number;
  refuted: number;
  /** confirmed / verified; null before any verification. */
  precision: number | null;
  /** Mean confidence the verified verdicts claimed (to compare with precision). */
  claimedConfidence: number | null;
  /** Bisect flights (tests, not verification) per finished bisection. */
  medianFlights: number | null;
  meanFlights: number | null;
  /** Wall time from start to verdict, seconds. */
  medianSeconds: number | null;
}

function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const mean = (xs: readonly number[]) => (xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length);

export async function bisectionStats(store: Store, o: { branch?: string } = {}): Promise<BisectStats> {
  const all = await store.listBisections(o.branch ? { branch: o.branch } : {});
  const done = all.filter((b) => b.state === 'done');
  const byCode: Record<string, number> = {};
  for (const b of done) byCode[String(b.code)] = (byCode[String(b.code)] ?? 0) + 1;
  const found = done.filter((b) => b.code === 4 || b.code === 12);
  const verified = found.filter((b) => b.confirmed !== null);
  const confirmed = verified.filter((b) => b.confirmed === true).length;
  const flights: number[] = [];
  const seconds: number[] = [];
  for (const b of done) {
    flights.push((await store.listBisectionFlights(b.id)).filter((f) => f.role === 'test').length);
    if (b.started !== null && b.finished !== null) seconds.push((b.finished - b.started) / 1000);
  }
  return {
    total: done.length,
    pending: all.filter((b) => b.state === 'pending').length,
    running: all.filter((b) => b.state === 'running').length,
    found: found.length,
    byCode,
    verified: verified.length,
    confirmed,
    refuted: verified.length - confirmed,
    precision: verified.length === 0 ? null : confirmed / verified.length,
    claimedConfidence: mean(verified.map((b) => b.confidence ?? 0)),
    medianFlights: median(flights),
    meanFlights: mean(flights),
    medianSeconds: median(seconds),
  };
}

export function formatStats(s: BisectStats): string {
  const pct = (x: number | null) => (x === null ? '-' : `${(x * 100).toFixed(1)}%`);
  const num = (x: number | null, d = 1) => (x === null ? '-' : x.toFixed(d));
  return [
    `bisections finished: ${s.total} (pending ${s.pending}, running ${s.running})`,
    `culprit found: ${s.found}/${s.total}${s.total ? ` (${pct(s.found / s.total)})` : ''}`,
    `verdicts: ${
      Object.entries(s.byCode)
        .sort(([a], [b]) => Number(a) - Number(b))
        .map(([c, n]) => `${c}:${n}`)
        .join(' ') || '-'
    }`,
    `verified: ${s.verified} (confirmed ${s.confirmed}, refuted ${s.refuted}); precision ${pct(s.precision)}, claimed confidence ${pct(s.claimedConfidence)}`,
    `flights per bisection: median ${num(s.medianFlights)}, mean ${num(s.meanFlights)}`,
    `time per bisection: median ${num(s.medianSeconds)} s`,
  ].join('\n');
}
