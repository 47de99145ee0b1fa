/**
 * Hand-built report data for the HTML tests: a flight with a build job and test jobs, judged for
 * real by judgeFlight against a baseline flight, with hostile text wherever the caller puts it.
 */
import type { Flight, Runvar, Step } from '../../src/db/types.js';
import type { JobStatus, StepStatus } from '../../src/model/status.js';
import { judgeFlight } from '../../src/report/judge.js';
import type { JobDetail, ReportData } from '../../src/report/report-data.js';
import type { FlightRecord, JobRecord } from '../../src/report/types.js';

export const XSS_SCRIPT = '<script>window.__xss=1</script>';
export const XSS_IMG = '"><img src=x onerror="window.__xss=2">';

export interface StepSpec {
  testid: string;
  status: StepStatus;
  testcase?: string;
  logPath?: string | null;
}

export interface JobSpec {
  job: string;
  recipe?: string;
  status?: JobStatus;
  steps: StepSpec[];
  runvars?: Record<string, string>;
  synth?: Record<string, string>;
}

const T0 = Date.UTC(2026, 10, 21, 10, 0, 0);

export function jobDetail(flight: string, spec: JobSpec): JobDetail {
  const steps: Step[] = spec.steps.map((s, i) => ({
    flight,
    job: spec.job,
    stepno: i + 1,
    testcase: s.testcase ?? `ts-${s.testid.split('/')[0]}`,
    testid: s.testid,
    status: s.status,
    started: T0 + i * 60_000,
    finished: s.status === 'running' ? null : T0 + i * 60_000 + 45_000,
    logPath:
      s.logPath === undefined ? `${flight}/${spec.job}/${i + 1}.${s.testcase ?? 'ts-x'}.log` : s.logPath,
  }));
  const runvars: Runvar[] = [
    ...Object.entries(spec.runvars ?? {}).map(([name, val]) => ({
      flight,
      job: spec.job,
      name,
      val,
      synth: false,
    })),
    ...Object.entries(spec.synth ?? {}).map(([name, val]) => ({
      flight,
      job: spec.job,
      name,
      val,
      synth: true,
    })),
  ];
  const worst = steps.some((s) => s.status === 'fail')
    ? 'fail'
    : steps.some((s) => s.status !== 'pass')
      ? (steps.find((s) => s.status !== 'pass')!.status as JobStatus)
      : 'pass';
  return {
    flight,
    job: spec.job,
    recipe: spec.recipe ?? 'test-demo',
    status: spec.status ?? worst,
    steps,
    runvars,
  };
}

function record(f: Flight, jobs: JobDetail[], revisions: Record<string, string>): FlightRecord {
  return {
    flight: f.flight,
    branch: f.branch,
    blessing: f.blessing,
    intended: f.intended,
    started: f.started,
    revisions,
    jobs: jobs.map(
      (j): JobRecord => ({
        job: j.job,
        status: j.status,
        isBuild: j.job.startsWith('build-'),
        hosts: Object.fromEntries(j.runvars.filter((r) => r.name === 'host').map((r) => [r.name, r.val])),
        steps: j.steps.map((s) => ({
          stepno: s.stepno,
          testid: s.testid,
          status: s.status,
          script: s.testcase,
        })),
      }),
    ),
  };
}

export function flightOf(name: string, seq: number, branch = 'xen-unstable'): Flight {
  return {
    flight: name,
    seq,
    branch,
    intended: 'real',
    blessing: 'real',
    created: T0 - 60_000,
    started: T0,
  };
}

/**
 * A report of `jobs` in flight `name`, judged against a baseline flight `base` in which every job
 * given in `baseJobs` ran (default: the same jobs, all passing).
 */
export function reportData(
  name: string,
  jobs: JobSpec[],
  o: { base?: string; baseJobs?: JobSpec[]; branch?: string } = {},
): ReportData {
  const flight = flightOf(name, 2, o.branch);
  const details = jobs.map((j) => jobDetail(name, j));
  const baseName = o.base ?? '100';
  const baseFlight = flightOf(baseName, 1, o.branch);
  const baseDetails = (
    o.baseJobs ??
    jobs.map((j) => ({
      ...j,
      status: 'pass' as const,
      steps: j.steps.map((s) => ({ ...s, status: 'pass' as const })),
    }))
  ).map((j) => jobDetail(baseName, j));
  const now = { xen: 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' };
  const old = { xen: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' };
  const judgement = judgeFlight({
    flight: record(flight, details, now),
    baseline: { flight: baseName, revisions: old },
    history: [record(baseFlight, baseDetails, old)],
  });
  return {
    flight,
    jobs: details,
    judgement,
    baseline: baseFlight,
    versions: [{ tree: 'xen', now: now.xen, baseline: old.xen }],
    changes: [],
    whatChanged: [],
    generated: T0 + 3_600_000,
  };
}
