/** Small hand-built histories for the report tests. */
import type { JobStatus, StepStatus } from '../../src/model/status.js';
import type { FlightRecord, JobRecord, Revisions, StepRecord } from '../../src/report/types.js';

export interface JobOpts {
  build?: boolean;
  hosts?: Record<string, string>;
  revisions?: Revisions;
  /** Overrides the status derived from the steps. */
  status?: JobStatus;
  scripts?: Record<string, string>;
}

/**
 * A job whose steps are `testid: status` in order, numbered from 1. Its status is the worst of its
 * steps (broken > blocked > fail > pass) unless given.
 */
export function job(name: string, steps: Record<string, StepStatus>, o: JobOpts = {}): JobRecord {
  const list: StepRecord[] = Object.entries(steps).map(([testid, status], i) => {
    const s: StepRecord = { stepno: i + 1, testid, status };
    const script = o.scripts?.[testid];
    if (script !== undefined) s.script = script;
    return s;
  });
  const statuses = new Set(list.map((s) => s.status));
  const derived: JobStatus = statuses.has('broken')
    ? 'broken'
    : statuses.has('blocked')
      ? 'blocked'
      : statuses.has('fail')
        ? 'fail'
        : 'pass';
  const j: JobRecord = {
    job: name,
    status: o.status ?? derived,
    isBuild: o.build ?? name.startsWith('build-'),
    hosts: o.hosts ?? { host: 'h1' },
    steps: list,
  };
  if (o.revisions !== undefined) j.revisions = o.revisions;
  return j;
}

export function flight(
  n: number | string,
  revisions: Revisions,
  jobs: JobRecord[],
  o: { blessing?: string; branch?: string } = {},
): FlightRecord {
  return {
    flight: String(n),
    branch: o.branch ?? 'xen-unstable',
    blessing: o.blessing ?? 'real',
    intended: o.blessing ?? 'real',
    started: typeof n === 'number' ? n * 1000 : 0,
    revisions,
    jobs,
  };
}

export const OLD = { xen: 'aaaa' } as const;
export const NEW = { xen: 'bbbb' } as const;
