/**
 * Queue priorities: numbers, lower is sooner. By the flight's intended blessing: bisection first
 * (its answer is waited for and it needs few hosts), then real (the push gate), then play, then
 * ad-hoc. `OSSTEST_RESOURCE_PRIORITY` in the environment of whatever queues the job overrides it.
 */
import { SchedulerInputError } from './errors.js';

export const PRIORITY = { bisect: 100, real: 200, play: 300, adhoc: 400 } as const;

/** The default for a flight's intended blessing (`real-bisect` and `adhoc-bisect` count as bisections). */
export function defaultPriority(intended: string | null): number {
  if (intended === null) return PRIORITY.adhoc;
  if (intended === 'bisect' || intended.endsWith('-bisect')) return PRIORITY.bisect;
  if (intended === 'real') return PRIORITY.real;
  if (intended === 'adhoc') return PRIORITY.adhoc;
  return PRIORITY.play;
}

export const PRIORITY_ENV = 'OSSTEST_RESOURCE_PRIORITY';

export function resourcePriority(
  intended: string | null,
  env: Readonly<Record<string, string | undefined>> = process.env,
): number {
  const v = env[PRIORITY_ENV];
  if (v === undefined || v.trim() === '') return defaultPriority(intended);
  if (!/^\s*[+-]?\d+\s*$/.test(v))
    throw new SchedulerInputError(
      `${PRIORITY_ENV}: ${JSON.stringify(v)} is not an integer (lower is sooner)`,
    );
  return Number.parseInt(v, 10);
}
