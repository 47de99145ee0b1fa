/**
 * `osstest bisect verify ID`: does the culprit really cause the failure? Its change is reverted on
 * top of the failing revision, in a scratch clone of the tree (<Repos>/bisect-verify/<id>-<tree>,
 * kept so the flight's tree URL stays valid), and that revision is tested on the failure's hosts
 * with the other trees at the failure's revisions. A pass confirms the culprit, a fail refutes it;
 * blocked or broken says nothing. The answer is recorded (`confirmed`) for `bisect stats`.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Bisection, BisectionResult } from '../db/types.js';
import { ExecuteFlightError, executeFlight } from '../flight/execute-flight.js';
import { flightVerdict, jobProfile, makeBisectFlight } from './flights.js';
import { commitInfo } from './git.js';
import { parseTupleId, tupleId } from './graph.js';
import { treeRepo } from './repos.js';
import type { BisectContext } from './run.js';

export class VerifyError extends Error {
  override name = 'VerifyError';
}

export interface VerifyResult {
  bisection: Bisection;
  flight: string;
  /** The revision tested: the failure's with the culprit reverted. */
  revision: string;
  result: BisectionResult;
  confirmed: boolean | null;
}

async function git(cwd: string, args: string[]): Promise<string> {
  const r = await execa('git', args, {
    cwd,
    reject: false,
    env: {
      GIT_PAGER: 'cat',
      GIT_TERMINAL_PROMPT: '0',
      LC_ALL: 'C',
      GIT_AUTHOR_NAME: 'osstest bisect verify',
      GIT_AUTHOR_EMAIL: 'osstest@localhost',
      GIT_COMMITTER_NAME: 'osstest bisect verify',
      GIT_COMMITTER_EMAIL: 'osstest@localhost',
    },
  });
  if (r.failed) {
    const why =
      String(r.stderr ?? '')
        .trim()
        .split('\n')
        .slice(-3)
        .join(' / ') || `exit code ${r.exitCode}`;
    throw new VerifyError(`git ${args.join(' ')} in ${cwd}: ${why}`);
  }
  return String(r.stdout).trim();
}

/** A clone of REPO at FAILURE with CULPRIT reverted on top; returns the revert commit. */
export async function revertInScratch(
  repo: string,
  dir: string,
  failure: string,
  culprit: string,
): Promise<string> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  await git(dir, ['clone', '--quiet', '--no-checkout', '--', repo, '.']);
  await git(dir, ['checkout', '--quiet', '--detach', failure]);
  const info = await commitInfo(dir, culprit);
  const mainline = info.parents.length > 1 ? ['-m', '1'] : [];
  try {
    await git(dir, ['revert', '--no-edit', ...mainline, culprit]);
  } catch (e) {
    await git(dir, ['revert', '--abort']).catch(() => undefined);
    throw new VerifyError(
      `the culprit ${culprit.slice(0, 12)} does not revert cleanly on ${failure.slice(0, 12)}: ${(e as Error).message}`,
    );
  }
  return git(dir, ['rev-parse', 'HEAD']);
}

export async function verifyBisection(
  ctx: BisectContext,
  id: number,
  o: { signal?: AbortSignal; env?: NodeJS.ProcessEnv } = {},
): Promise<VerifyResult> {
  const { store, config } = ctx;
  const say = ctx.say ?? (() => undefined);
  const b = await store.getBisection(id);
  if (!b) throw new VerifyError(`no bisection ${id}`);
  if (b.state !== 'done' || !b.culpritTree || !b.culpritRev || !b.failureTuple || !b.failureFlight) {
    throw new VerifyError(
      `bisection ${id} has no culprit to verify (state ${b.state}${b.code ? `, verdict ${b.code}` : ''})`,
    );
  }
  const tree = b.culpritTree;
  const url = b.trees[tree];
  if (!url) throw new VerifyError(`bisection ${id}: no URL recorded for tree ${tree}`);
  const failureTuple = parseTupleId(b.failureTuple);
  const failureRev = failureTuple[tree];
  if (!failureRev) throw new VerifyError(`bisection ${id}: the failure tuple has no revision of ${tree}`);
  const repo = await treeRepo(tree, url, [failureRev, b.culpritRev], config);
  const scratch = join(config.path('Repos'), 'bisect-verify', `${id}-${tree}`);
  const revision = await revertInScratch(repo, scratch, failureRev, b.culpritRev);
  say(
    `bisection ${id}: ${tree} ${b.culpritRev.slice(0, 12)} reverted on ${failureRev.slice(0, 12)} as ${revision.slice(0, 12)} in ${scratch}`,
  );

  const tuple = { ...failureTuple, [tree]: revision };
  const failure = await jobProfile(store, b.failureFlight, b.job);
  const m = await makeBisectFlight({
    store,
    config,
    branch: b.branch,
    failure,
    tuple,
    hosts: b.hosts,
    reuseFrom: [],
    treeUrls: { [tree]: scratch },
  });
  await store.addBisectionFlight(id, {
    flight: m.flight,
    role: 'verify',
    tuple: tupleId(tuple),
    reason: 'verify',
  });
  say(`flight ${m.flight}: testing the revert on ${Object.values(b.hosts).join(' ') || 'any host'}`);
  try {
    await executeFlight({
      store,
      config,
      flight: m.flight,
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.env ? { env: o.env } : {}),
    });
  } catch (e) {
    if (e instanceof ExecuteFlightError) throw new VerifyError(e.message);
    throw e;
  }
  const v = await flightVerdict(store, m.flight, b.job, b.testid);
  await store.setBisectionFlightResult(id, m.flight, v.result, v.at);
  const confirmed = v.result === 'pass' ? true : v.result === 'fail' ? false : null;
  say(
    `flight ${m.flight}: ${v.result} (${v.detail}): ${confirmed === null ? 'inconclusive' : confirmed ? 'culprit confirmed' : 'culprit NOT confirmed'}`,
  );
  const updated = confirmed === null ? b : await store.updateBisection(id, { confirmed });
  return { bisection: updated, flight: m.flight, revision, result: v.result, confirmed };
}
