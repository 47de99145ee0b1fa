/**
 * Everything a report of one flight shows, loaded once from the store (src/report/load.ts) and
 * handed to every writer: the HTML pages, the email, JUnit XML, the JSON and `.mro` outputs.
 */
import type { Flight, Job, Runvar, Step } from '../db/types.js';
import type { Judgement } from './types.js';

export interface JobDetail extends Job {
  steps: Step[];
  runvars: Runvar[];
}

/** One tree's change between the baseline and this flight, for "what changed" and the revision log. */
export interface TreeChange {
  tree: string;
  url: string;
  /** Revision in the baseline flight (null: the tree is new, or there is no baseline). */
  from: string | null;
  to: string;
  /** `git log --oneline from..to`-like lines, newest first, bounded. */
  log: { rev: string; author: string; subject: string }[];
  /** People named in the commits (authors, Signed-off-by, Acked-by, Reviewed-by, Tested-by…). */
  people: string[];
  /** True when the log was cut at its bound. */
  truncated: boolean;
  /** Why the log could not be read (no URL, the tree cannot be fetched, a revision is not in it). */
  error?: string;
}

/** For each regression: what changed, where it ran, and whether the same test passed elsewhere. */
export interface WhatChanged {
  job: string;
  testid: string;
  trees: TreeChange[];
  /** Harness revisions of this flight and of the baseline. */
  harness: { now: string[]; baseline: string[] };
  hosts: string[];
  /** Same (job-less) testid passing in this flight on other jobs/hosts, or in other branches lately. */
  passedElsewhere: { flight: string; branch: string; job: string; host: string | null }[];
}

export interface ReportData {
  flight: Flight;
  jobs: JobDetail[];
  judgement: Judgement;
  baseline: Flight | null;
  /** How the baseline was chosen, in a few words (`--baseline`, or the rule that picked it). */
  baselineWhy?: string;
  /** Revisions tested in this flight and in the baseline, per tree. */
  versions: { tree: string; now: string; baseline: string | null }[];
  /** One entry per tree for the whole flight (the email's revision log). */
  changes: TreeChange[];
  whatChanged: WhatChanged[];
  /** When the report was made (ms since epoch). */
  generated: number;
}
