/**
 * Measured flakiness of a test on a host.
 *
 * Definition. For a step (job J, testid T — compared without a trailing `(N)`) on host H:
 *  - a *run* is a history flight in which J's step T ended `pass` or `fail` on H (broken, blocked and
 *    unfinished steps say nothing about the test and are not runs);
 *  - the *window* is the newest `window` runs on H (default 40), in history order;
 *  - a *flake* is a run in the window that failed at revisions at which step T of J passed in some
 *    history flight, on any host: the code under test could pass there, so the failure was not its
 *    fault. Revisions are the job's whole tuple (`JobRecord.revisions`, else the flight's) and must be
 *    equal tree for tree; a run with no known revisions is never a flake.
 * The rate is flakes / runs in the window. The flight being judged is not part of its own record.
 */
import { reportTestid } from '../model/testid.js';
import { type HistoryIndex, hostOfStep } from './history.js';
import type { Flake } from './types.js';

export const DEFAULT_FLAKE_WINDOW = 40;

export function flakeRecord(
  index: HistoryIndex,
  job: string,
  testid: string,
  host: string,
  window = DEFAULT_FLAKE_WINDOW,
): Flake {
  if (!Number.isInteger(window) || window < 1) {
    throw new RangeError(`flake window must be a positive integer, not ${window}`);
  }
  const key = reportTestid(testid);
  const views = index.views(job);
  const passedAt = new Set<string>();
  for (const v of views) {
    if (v.revKey !== undefined && v.steps.get(key)?.status === 'pass') passedAt.add(v.revKey);
  }
  let runs = 0;
  let failures = 0;
  for (const v of views) {
    if (runs >= window) break;
    const s = v.steps.get(key);
    if (s === undefined || (s.status !== 'pass' && s.status !== 'fail')) continue;
    if (hostOfStep(v.job, s.step) !== host) continue;
    runs += 1;
    if (s.status === 'fail' && v.revKey !== undefined && passedAt.has(v.revKey)) failures += 1;
  }
  return { failures, runs, host };
}

/** ` (flaked 3/40 on this host)`, or nothing when no flake was seen. */
export function flakeSuffix(flake: Flake | undefined): string {
  if (flake === undefined || flake.failures === 0) return '';
  const where = flake.host.includes('+') ? 'on these hosts' : 'on this host';
  return ` (flaked ${flake.failures}/${flake.runs} ${where})`;
}
