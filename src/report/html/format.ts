/** Small formatting rules shared by every page: times, durations, status colours. */

/** `2026-11-21 14:03:07` in UTC (the lab's machines and people may be anywhere); `` for null. */
export function formatTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '';
  return new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, '');
}

/** `45s`, `3m 07s`, `2h 05m`; `` when either end is unknown. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return '';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

export function durationOf(started: number | null, finished: number | null): number | null {
  return started === null || finished === null ? null : Math.max(0, finished - started);
}

/** `1.2 KiB` for file listings. */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/**
 * The CSS class of a status, which gives its colour: pass green, fail red, the other ways of not
 * passing (broken, blocked, aborted, starved) yellow, running blue, nothing yet (queued, preparing,
 * no step) grey.
 */
export function statusClass(status: string | undefined): string {
  switch (status) {
    case 'pass':
      return 's-pass';
    case 'fail':
      return 's-fail';
    case 'broken':
    case 'blocked':
    case 'aborted':
    case 'starved':
      return 's-other';
    case 'running':
      return 's-running';
    default:
      return 's-none';
  }
}
