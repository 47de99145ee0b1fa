/**
 * make-flight: a new flight from a branch's family. Tree URLs come from TREE_<TREE> or config
 * Tree_<tree>; revisions from --rev, REVISION_<TREE>, or the tree's HEAD now (resolved to a commit,
 * so the flight records exactly what it tests). OSSTEST_JOBS_ONLY keeps only some jobs; RUNVARS,
 * BUILD_RUNVARS and TEST_RUNVARS add runvars (`name=value` words). Everything is checked before
 * anything is written, and a failure while writing removes the half-made flight.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Config } from '../config/config.js';
import { ConfigError } from '../config/errors.js';
import type { Store } from '../db/store.js';
import type { Flight } from '../db/types.js';
import { familyNameFor, loadFamily } from './families.js';
import type { FlightFamily, JobSpec } from './family.js';

const run = promisify(execFile);

export interface MakeFlightOptions {
  store: Store;
  config: Config;
  branch: string;
  /** The intended blessing (real, play, adhoc…). */
  blessing: string;
  revs?: Record<string, string>;
  buildFlight?: string;
  /** A named flight (standalone); omitted: the next number. */
  flight?: string;
  env?: NodeJS.ProcessEnv;
  /** Use this family instead of the branch's one from flights/ (tests, embedding). */
  family?: FlightFamily;
}

export interface MadeFlight {
  flight: Flight;
  family: string;
  jobs: JobSpec[];
  revisions: Record<string, string>;
}

const HEX = /^[0-9a-f]{7,40}$/i;

/** A revision as a commit id: hashes are kept, refs are looked up in the tree. */
export async function resolveRevision(url: string, rev: string | undefined): Promise<string> {
  if (rev && HEX.test(rev)) return rev.toLowerCase();
  const ref = rev ?? 'HEAD';
  let out: string;
  try {
    out = (await run('git', ['ls-remote', '--', url, ref], { timeout: 120_000 })).stdout;
  } catch (err) {
    throw new Error(`cannot read ${url}: ${(err as Error).message.split('\n')[0]}`);
  }
  const lines = out.split('\n').filter((l) => l.trim() !== '');
  const exact =
    lines.find((l) => l.split('\t')[1] === ref) ?? lines.find((l) => l.split('\t')[1]?.endsWith(`/${ref}`));
  if (!exact) throw new Error(`${url} has no ref '${ref}'`);
  return exact.split('\t')[0]!;
}

export function parseRunvarWords(text: string | undefined, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const w of (text ?? '').split(/\s+/).filter((x) => x !== '')) {
    const eq = w.indexOf('=');
    if (eq <= 0) throw new Error(`${what}: '${w}' is not name=value`);
    out[w.slice(0, eq)] = w.slice(eq + 1);
  }
  return out;
}

function globMatch(glob: string, name: string): boolean {
  const re = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`).test(name);
}

export async function makeFlight(o: MakeFlightOptions): Promise<MadeFlight> {
  const env = o.env ?? process.env;
  const familyName = o.family?.name ?? familyNameFor(o.branch, o.config);
  const family = o.family ?? (await loadFamily(familyName));
  const treeNames = family.trees(o.branch, o.config);
  const trees: Record<string, string> = {};
  for (const t of treeNames) {
    const url = env[`TREE_${t.toUpperCase()}`] ?? o.config.get(`Tree_${t}`);
    if (!url)
      throw new ConfigError(`no URL for tree '${t}' of branch ${o.branch}: set Tree_${t} in the config`);
    trees[t] = url;
  }
  for (const t of Object.keys(o.revs ?? {})) {
    if (!treeNames.includes(t))
      throw new Error(`--rev ${t}=…: branch ${o.branch} has no tree '${t}' (trees: ${treeNames.join(', ')})`);
  }
  const revisions: Record<string, string> = {};
  for (const t of treeNames) {
    revisions[t] = await resolveRevision(trees[t]!, o.revs?.[t] ?? env[`REVISION_${t.toUpperCase()}`]);
  }
  if (o.buildFlight && !(await o.store.getFlight(o.buildFlight))) {
    throw new Error(`--build-flight ${o.buildFlight}: no such flight`);
  }

  let jobs = family.makeJobs({
    branch: o.branch,
    blessing: o.blessing,
    revisions,
    trees,
    config: o.config,
    ...(o.buildFlight ? { buildFlight: o.buildFlight } : {}),
  });
  const only = (env.OSSTEST_JOBS_ONLY ?? '').split(/[\s,]+/).filter((x) => x !== '');
  if (only.length > 0) jobs = jobs.filter((j) => only.some((g) => globMatch(g, j.job)));
  const all = parseRunvarWords(env.RUNVARS, 'RUNVARS');
  const forBuilds = parseRunvarWords(env.BUILD_RUNVARS, 'BUILD_RUNVARS');
  const forTests = parseRunvarWords(env.TEST_RUNVARS, 'TEST_RUNVARS');
  jobs = jobs.map((j) => ({
    ...j,
    runvars: { ...j.runvars, ...all, ...(j.job.startsWith('build-') ? forBuilds : forTests) },
  }));

  const flight = await o.store.createFlight({
    ...(o.flight ? { flight: o.flight } : {}),
    branch: o.branch,
    intended: o.blessing,
  });
  try {
    for (const j of jobs) await o.store.createJob(flight.flight, j.job, j.recipe, j.runvars);
  } catch (err) {
    await o.store.deleteFlight(flight.flight);
    throw err;
  }
  return { flight, family: familyName, jobs, revisions };
}
