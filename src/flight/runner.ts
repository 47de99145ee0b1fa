/**
 * The runner a worker starts for each job it claimed (runner-main.ts FLIGHT JOB): run-job's
 * executor, in a process of its own, watched by its worker through a pipe on stdin. When the pipe
 * closes (the worker died: SIGKILL, OOM, power cut on that machine) the runner kills every testcase
 * it started and exits at once, writing nothing more: the job is the other workers' to declare
 * broken, and its hosts must not be touched again by anything of this run.
 */
import type { Config } from '../config/config.js';
import type { Store } from '../db/store.js';
import { type JobObserver, type JobResult, runJob } from '../executor/run-job.js';
import { logStamp } from '../model/testcase-protocol.js';
import { groupsWithToken, killGroup, RUNNER_TOKEN_ENV } from './execute-flight.js';
import { WORKER_ENV } from './worker.js';

export class RunnerRefused extends Error {
  override name = 'RunnerRefused';
}

const line = (text: string) => process.stdout.write(`${logStamp()} ${text}\n`);

/** Log lines for run-job.log (the runner's stdout). */
export const runnerObserver: JobObserver = {
  jobStatus: (s) => line(`job ${s}`),
  stepStarted: (e) => line(`step ${e.stepno} ${e.testcase} (${e.testid}) started`),
  stepFinished: (e, s, detail) => line(`step ${e.stepno} ${e.testcase} (${e.testid}): ${s} (${detail})`),
  skipped: (s, why) => line(`skipped ${s.testcase}: ${why}`),
  message: (m) => line(m),
};

/**
 * Kills everything of this run when stdin closes. Returns a function that stops watching.
 * process.exit is deliberate: pending store writes must not land after the worker is gone.
 */
export function watchParent(onGone: () => void = () => process.exit(137)): () => void {
  const token = process.env[RUNNER_TOKEN_ENV];
  const gone = () => {
    line('runner: the worker is gone (its pipe closed): stopping every testcase of this job and exiting');
    if (token) for (const g of groupsWithToken(token)) killGroup(g, 'SIGKILL');
    onGone();
  };
  process.stdin.on('end', gone);
  process.stdin.on('error', gone);
  process.stdin.resume();
  return () => {
    process.stdin.off('end', gone);
    process.stdin.off('error', gone);
    process.stdin.pause();
  };
}

/** Runs a job the calling worker ($OSSTEST_WORKER) has claimed; refuses one it has not. */
export async function runClaimedJob(o: {
  store: Store;
  config: Config;
  flight: string;
  job: string;
}): Promise<JobResult> {
  const worker = process.env[WORKER_ENV];
  if (!worker)
    throw new RunnerRefused(`a job runner is started by osstest worker (${WORKER_ENV} is not set)`);
  const claim = (await o.store.lab.listClaims()).find((c) => c.flight === o.flight && c.job === o.job);
  if (claim?.worker !== worker)
    throw new RunnerRefused(
      `${o.flight}/${o.job} is ${claim ? `claimed by worker ${claim.worker}` : 'not claimed'}, not by ${worker}`,
    );
  return runJob({ store: o.store, config: o.config, flight: o.flight, job: o.job, observer: runnerObserver });
}
