/**
 * The HTML pages (OSSTEST-BEHAVIOUR §8): the flight grid and job pages, written under the Results
 * directory by the report and rendered on request by `osstest serve`; the job history, host history,
 * branch and flight list pages, rendered on request. Every page is an eta template with
 * auto-escaping (templates.ts); nothing here builds HTML by hand.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { JobDetail, ReportData } from '../report-data.js';
import { listJobFiles } from './files.js';
import { flightGridView, type JobFiles, jobPageView } from './flight-view.js';
import {
  type BranchHistory,
  branchView,
  type FlightList,
  flightListView,
  type HostHistory,
  hostHistoryView,
  type JobHistory,
  jobHistoryView,
} from './history-view.js';
import { Links, pathSegment } from './links.js';
import { type ResourcePlan, resourcePlanView } from './plan-view.js';
import { renderTemplate } from './templates.js';

export type { FileEntry, JobFiles } from './flight-view.js';
export type { BranchHistory, FlightList, HostHistory, JobHistory } from './history-view.js';
export { pathSegment } from './links.js';
export { loadResourcePlan, type ResourcePlan } from './plan-view.js';
export { listJobFiles };

export function renderFlightGrid(data: ReportData): string {
  return renderTemplate('flight', flightGridView(data, new Links('flight')));
}

export function renderJobPage(data: ReportData, job: string | JobDetail, files?: JobFiles): string {
  const detail = typeof job === 'string' ? data.jobs.find((j) => j.job === job) : job;
  if (detail === undefined) throw new Error(`flight ${data.flight.flight} has no job ${JSON.stringify(job)}`);
  return renderTemplate('job', jobPageView(data, detail, new Links('job'), files));
}

export function renderJobHistory(h: JobHistory): string {
  return renderTemplate('job-history', jobHistoryView(h, new Links('history')));
}

export function renderHostHistory(h: HostHistory): string {
  return renderTemplate('host-history', hostHistoryView(h, new Links('history')));
}

export function renderBranchPage(b: BranchHistory): string {
  return renderTemplate('branch', branchView(b, new Links('branch')));
}

export function renderResourcePlan(r: ResourcePlan): string {
  return renderTemplate('plan', resourcePlanView(r, new Links('plan')));
}

export function renderFlightList(l: FlightList): string {
  return renderTemplate('flights', flightListView(l, new Links('flights')));
}

export interface WriteOptions {
  /** The Logs directory: each job page lists the job's other files there (serial logs, captured logs). */
  logsDir?: string;
  /** The Stash directory (default: logsDir), listed the same way. */
  stashDir?: string;
  /** Instead of listing logsDir and stashDir: the job's other files, for its page. */
  files?: (job: string) => Promise<JobFiles>;
}

/** Writes through a temporary name, so a page being served is never seen half written. */
async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}

/**
 * Writes `<dir>/<flight>/index.html` (the grid) and `<dir>/<flight>/<job>/index.html` for each job;
 * returns the paths written, grid first. Flight and job names are directory names as they are (the
 * store only accepts safe ones); pathSegment encodes any other.
 */
export async function writeFlightPages(
  data: ReportData,
  dir: string,
  opts: WriteOptions = {},
): Promise<string[]> {
  const flightDir = join(dir, pathSegment(data.flight.flight));
  await mkdir(flightDir, { recursive: true });
  const written: string[] = [];
  const grid = join(flightDir, 'index.html');
  await writeAtomically(grid, renderFlightGrid(data));
  written.push(grid);
  for (const job of data.jobs) {
    const jobDir = join(flightDir, pathSegment(job.job));
    await mkdir(jobDir, { recursive: true });
    const page = join(jobDir, 'index.html');
    const files =
      opts.files !== undefined
        ? await opts.files(job.job)
        : opts.logsDir !== undefined
          ? await listJobFiles(opts.logsDir, opts.stashDir ?? opts.logsDir, data.flight.flight, job.job)
          : undefined;
    await writeAtomically(page, renderJobPage(data, job, files));
    written.push(page);
  }
  return written;
}
