/**
 * Times and durations typed by people, for commands that book hosts (`osstest blockage`,
 * `osstest allocate`): `now`, `+2h`, an ISO time; `90m`, `2h`, `1d12h`. A bare number is refused
 * rather than guessed at (seconds? hours?).
 */
import { UsageError } from './output.js';

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3600_000, d: 86_400_000, w: 604_800_000 };
const DURATION = /^(?:\d+(?:\.\d+)?[smhdw])+$/;

/** `90m`, `2h`, `1h30m`, `1.5d` in ms; undefined when `text` is not a duration. */
export function durationMs(text: string): number | undefined {
  if (!DURATION.test(text)) return undefined;
  let ms = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)([smhdw])/g)) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
  return Math.round(ms);
}

/** A duration of a command line; `what` names it in the error. */
export function parseDuration(text: string, what: string): number {
  const ms = durationMs(text);
  if (ms === undefined)
    throw new UsageError(
      `${what} '${text}' is not a duration: write it with a unit, e.g. 90m, 2h, 1d, 1h30m`,
    );
  if (ms <= 0) throw new UsageError(`${what} '${text}' must be longer than nothing`);
  return ms;
}

/** `now`, `+DURATION` (from now), or an ISO time (`2026-12-03T08:00Z`, `2026-12-03 08:00` is UTC). */
export function parseWhen(text: string, what: string, now: number): number {
  if (text === 'now') return now;
  if (text.startsWith('+')) {
    const ms = durationMs(text.slice(1));
    if (ms === undefined)
      throw new UsageError(`${what} '${text}': after + comes a duration with a unit, e.g. +30m, +2h, +1d`);
    return now + ms;
  }
  const m = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}:?\d{2})?)?$/.exec(
    text,
  );
  const t = m ? Date.parse(`${m[1]}T${m[2] ?? '00:00'}${m[3] ?? 'Z'}`) : Number.NaN;
  if (Number.isNaN(t))
    throw new UsageError(
      `${what} '${text}' is not a time: write now, +DURATION (e.g. +2h) or an ISO time (e.g. 2026-12-03T08:00Z; UTC when no zone is given)`,
    );
  return t;
}
