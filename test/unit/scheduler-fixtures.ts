/** Small builders for the scheduler's unit tests: hosts, requirements, queued jobs, snapshots. */
import { type JobRequirements, jobRequirements } from '../../src/scheduler/requirements.js';
import type {
  HeldAllocation,
  QueuedJob,
  Reservation,
  SchedHost,
  Snapshot,
} from '../../src/scheduler/types.js';

export const MIN = 60_000;
export const HOUR = 60 * MIN;

export function host(name: string, flags: string[], extra: Partial<SchedHost> = {}): SchedHost {
  return { name, flags: ['blessed-real', ...flags], health: 'good', ...extra };
}

export function req(
  job: string,
  runvars: Record<string, string> = {},
  intended: string | null = 'real',
  harness: string | null = null,
): JobRequirements {
  return jobRequirements({ flight: 'f1', job, runvars, intended, harness });
}

export function queued(
  key: string,
  runvars: Record<string, string>,
  o: Partial<Omit<QueuedJob, 'key' | 'req'>> & { harness?: string } = {},
): QueuedJob {
  const { harness, ...rest } = o;
  return {
    key,
    req: req(key, runvars, 'real', harness ?? null),
    durationMs: HOUR,
    priority: 200,
    waitStart: 0,
    ...rest,
  };
}

export function snap(
  now: number,
  hosts: SchedHost[],
  queue: QueuedJob[],
  allocations: HeldAllocation[] = [],
  reservations: Reservation[] = [],
): Snapshot {
  return { now, hosts, queue, allocations, reservations };
}

export function held(
  host: string,
  holder: string,
  since: number,
  expectedEnd: number | null,
): HeldAllocation {
  return { host, holder, since, expectedEnd };
}
