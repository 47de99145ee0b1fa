/**
 * Host allocation through the lab planner, for ts-hosts-allocate (HostAllocation planner, or auto
 * with JobDB Executive). A job a worker runs already holds its hosts (the worker took them with the
 * claim): they are only recorded. A job run by hand is planned with everything queued for the
 * workers, so it waits its turn by priority rather than snatching the first free host.
 */
import type { Config } from '../config/config.js';
import { ConfigError } from '../config/errors.js';
import { harnessRevision } from '../executor/paths.js';
import { allocateForJob } from '../scheduler/allocator.js';
import type { Testcase } from './testcase.js';

/** Whether ts-hosts-allocate uses the planner (see the HostAllocation setting). */
export function usesPlanner(config: Config): boolean {
  const v = config.string('HostAllocation').trim();
  if (v === 'auto') return config.string('JobDB') === 'Executive';
  if (v === 'planner') return true;
  if (v === 'standalone') return false;
  const o = config.origin('HostAllocation');
  throw new ConfigError(`HostAllocation must be auto, planner or standalone, not '${v}'`, o?.file, o?.line);
}

/** Gives the job its hosts by the planner (waiting up to `waitS` seconds), or declares it broken or starved. */
export async function plannerAllocate(tc: Testcase, idents: string[], waitS: number): Promise<void> {
  const pinned: Record<string, string> = {};
  for (const i of idents) {
    const v = tc.named(i);
    if (v) pinned[i] = v;
  }
  const r = await allocateForJob({
    store: tc.store,
    config: tc.config,
    harness: harnessRevision(),
    flight: tc.flight,
    job: tc.job,
    idents,
    pinned,
    waitMs: waitS * 1000,
    log: (line) => tc.log(line),
  });
  if (!r.ok) return tc.declare(r.status, r.reason);
  if (r.waitedMs > 1000) tc.log(`waited ${Math.round(r.waitedMs / 1000)} s for hosts`);
  for (const [ident, host] of Object.entries(r.hosts)) {
    await tc.setRunvar(ident, host);
    tc.log(`${ident}: allocated ${host}`);
  }
}
