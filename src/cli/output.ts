/** How commands print: plain text for people, JSON for scripts, and errors as one clear line. */
import { ConfigError } from '../config/errors.js';
import { StoreError } from '../db/errors.js';

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** A failure the user can act on: printed without a stack trace. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Prints an error and returns the exit code for it. */
export function reportError(err: unknown): number {
  if (err instanceof UsageError || err instanceof ConfigError || err instanceof StoreError) {
    process.stderr.write(`osstest: ${err.message}\n`);
    return 2;
  }
  if (err instanceof Error) {
    process.stderr.write(`osstest: ${err.message}\n`);
    if (process.env.OSSTEST_DEBUG) process.stderr.write(`${err.stack ?? ''}\n`);
    return 1;
  }
  process.stderr.write(`osstest: ${String(err)}\n`);
  return 1;
}

/** Pads columns for a plain table. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows) {
    for (const [i, c] of r.entries()) widths[i] = Math.max(widths[i] ?? 0, c.length);
  }
  return rows
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** A time for people: `2026-11-21 10:00:00Z`, or `-` when there is none. */
export function when(ms: number | null): string {
  return ms === null
    ? '-'
    : new Date(ms)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, 'Z');
}

/** A duration for a live display: tenths of a second while short. */
export function secs(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`;
}
