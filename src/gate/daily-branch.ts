/**
 * `osstest daily-branch BRANCH`: the push gate (OSSTEST-BEHAVIOUR §4, the original's cr-daily-branch)
 * as one function, its state in the store instead of files and environment variables.
 *
 *  1. The branch's controls: a stopped branch is refused (`osstest branch start` resumes it).
 *  2. Every tree of the branch (BranchTrees_<branch>) is fetched into its mirror under Repos.
 *     OLD = the output ref (e.g. master) of the tree under test; the other trees are taken at their
 *     output refs (their own tested revisions).
 *  3. No completed run of the branch tested OLD ⇒ a baseline test: the flight tests OLD itself and
 *     nothing is pushed (the report says so). Else NEW = the input ref (e.g. staging); NEW == OLD ⇒
 *     nothing to do, unless BranchAlwaysRun_<branch>.
 *  4. The before hook, make-flight (blessing real; tree_<t> = the mirror), the harness revision
 *     recorded, the after hook; the flight is executed.
 *  5. The report against the flight that tested OLD: verdicts, revision log, people.
 *  6. Each failure that would block the push is rerun once (GateRetries) in a follow-up flight on
 *     another equivalent host; a pass there makes it `pass in N` (rerun.ts).
 *  7. Push NEW to the output ref only if the verdict is tolerable (or `branch force-push NEW`), not
 *     while `branch block-push` is set, as a compare-and-swap fast-forward from OLD (push.ts).
 *  8. Every regression still standing is handed to the bisector; the report email is written (and
 *     sent when asked); the run is recorded with its outcome.
 * One run of a branch at a time (the store refuses a second); a run whose process died is closed as
 * abandoned by the next one.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { requestBisection } from '../bisect/queue.js';
import { type BranchGate, branchGate } from '../config/branches.js';
import type { Config } from '../config/config.js';
import { configName } from '../config/parse.js';
import type { GateRun, GateRunKind, PushRecord } from '../db/gate-types.js';
import type { Store } from '../db/store.js';
import { harnessRevision } from '../executor/paths.js';
import { executeFlight } from '../flight/execute-flight.js';
import { makeFlight } from '../flight/make-flight.js';
import { buildMessage, mailSettings, renderEmail, sendEmail } from '../report/email.js';
import { loadReport } from '../report/load.js';
import type { ReportData } from '../report/report-data.js';
import type { Judgement } from '../report/types.js';
import { mirrorBranch, syncMirror } from './mirror.js';
import { fastForwardPush } from './push.js';
import {
  applyReruns,
  makeRerunFlight,
  planRerunJob,
  type RerunOutcome,
  type RerunPin,
  rerunnable,
  rerunOutcome,
  rerunPassed,
} from './rerun.js';

/** The blessing of the flights the gate makes. */
export const GATE_BLESSING = 'real';

/** The branch is stopped (`osstest branch stop`): nothing was done. */
export class GateStoppedError extends Error {
  override name = 'GateStoppedError';
}

/** The gate could not do its work (a tree, a hook, another run going on); the message says what. */
export class GateError extends Error {
  override name = 'GateError';
}

export interface DailyBranchOptions {
  store: Store;
  config: Config;
  branch: string;
  /** Progress, a line at a time, for people. */
  log?: (line: string) => void;
  /** Stops the run: running jobs end aborted, nothing is pushed, the run ends `interrupted`. */
  signal?: AbortSignal;
  /** Added to the environment of the flight's runners and of the hooks. */
  env?: NodeJS.ProcessEnv;
  /** Most jobs at once (default FlightMaxParallel). */
  maxParallel?: number;
  /** Also send the report email through SmtpHost to ReportTo (it is always written under Results). */
  sendEmail?: boolean;
}

export type DailyBranchOutcome =
  | 'nothing to do'
  | 'baseline tested'
  | 'tested'
  | 'pushed'
  | 'not pushed'
  | 'push refused'
  | 'push failed'
  | 'interrupted';

export interface RerunReport {
  flight: string;
  job: string;
  /** The blocking failures of the job it was rerun for. */
  testids: string[];
  pins: RerunPin[];
  status: string;
  /** It passed what had failed: those failures are now `pass in <flight>`. */
  passed: boolean;
}

export interface DailyBranchResult {
  branch: string;
  run: number;
  kind: GateRunKind;
  tree: string;
  old: string;
  new: string;
  revisions: Record<string, string>;
  flight: string | null;
  outcome: DailyBranchOutcome;
  /** Why, in a line or two. */
  detail: string;
  judgement: Pick<Judgement, 'overall' | 'heading' | 'tolerable' | 'outcome' | 'failures'> | null;
  reruns: RerunReport[];
  push: PushRecord | null;
  bisections: { job: string; testid: string; id: number; created: boolean }[];
  email: { subject: string; file: string; sentTo?: string[] } | null;
}

const short = (rev: string) => rev.slice(0, 12);

function envName(tree: string): string {
  return tree.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
}

function parseRunner(v: string): { pid: number; host: string } | undefined {
  const m = /^(\d+)@(.+)$/.exec(v);
  return m ? { pid: Number(m[1]), host: m[2]! } : undefined;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Closes the branch's unfinished run if its process is gone from this host; refuses if it may be alive. */
async function takeOverStaleRun(store: Store, branch: string, log: (l: string) => void): Promise<void> {
  const open = (await store.listGateRuns({ branch, limit: 5 })).find((r) => r.finished === null);
  if (open === undefined) return;
  const who = parseRunner(open.runner);
  if (who !== undefined && who.host === hostname() && !processAlive(who.pid)) {
    await store.updateGateRun(open.id, {
      outcome: 'abandoned',
      detail: `its daily-branch (pid ${who.pid}) died before the end${open.flight ? `; flight ${open.flight} left as it was` : ''}`,
      finished: true,
    });
    log(`gate run ${open.id} of ${branch}: its process ${who.pid} is gone; closed as abandoned`);
    return;
  }
  throw new GateError(
    `daily-branch ${branch} is already running (gate run ${open.id}, started by ${open.runner}${open.flight ? `, flight ${open.flight}` : ''})`,
  );
}

async function runHook(
  which: 'before' | 'after',
  gate: BranchGate,
  command: string,
  env: NodeJS.ProcessEnv,
  cwd: string,
  log: (l: string) => void,
): Promise<void> {
  log(`hook ${which}: ${command}`);
  const r = await execa('sh', ['-c', command], {
    cwd,
    env,
    extendEnv: false,
    reject: false,
    all: true,
    stdin: 'ignore',
    timeout: 30 * 60_000,
  });
  const out = String(r.all ?? '').trimEnd();
  for (const line of out === '' ? [] : out.split('\n')) log(`hook ${which}: ${line}`);
  if (r.failed) {
    const why = r.timedOut ? 'timed out after 30 minutes' : `exit status ${r.exitCode ?? r.signal ?? '?'}`;
    const tail = out.split('\n').slice(-3).join(' / ');
    throw new GateError(
      `BranchHook_${configName(gate.branch)}_${which} failed (${why})${tail === '' ? '' : `: ${tail}`}; the run stops here`,
    );
  }
}

export async function dailyBranch(o: DailyBranchOptions): Promise<DailyBranchResult> {
  const { store, config, branch } = o;
  const log = o.log ?? (() => undefined);

  const control = await store.getBranchControl(branch);
  if (control.stopped) {
    throw new GateStoppedError(
      `branch ${branch} is stopped${control.note ? ` (${control.note})` : ''}${control.updated ? ` since ${new Date(control.updated).toISOString()}` : ''}: osstest branch start ${branch} resumes it`,
    );
  }
  const gate = branchGate(config, branch);
  const reposDir = config.path('Repos');
  const useMirrors = config.bool('GateFlightUsesMirrors');

  // ---- what to test
  const mirrors: Record<string, string> = {};
  await Promise.all(
    gate.trees.map(async (t) => {
      log(`tree ${t.tree}: fetching ${t.url}`);
      try {
        mirrors[t.tree] = (await syncMirror(t.tree, t.url, { reposDir })).path;
      } catch (e) {
        throw new GateError(`tree ${t.tree}: cannot fetch ${t.url}: ${(e as Error).message}`);
      }
    }),
  );
  const revisions: Record<string, string> = {};
  const refOf = async (tree: string, ref: string): Promise<string> => {
    const rev = await mirrorBranch(mirrors[tree]!, ref);
    if (rev === undefined) {
      const url = gate.trees.find((t) => t.tree === tree)!.url;
      throw new GateError(`tree ${tree} has no branch '${ref}' at ${url}`);
    }
    return rev;
  };
  const ut = gate.trees.find((t) => t.tree === gate.underTest)!;
  for (const t of gate.trees) if (t.tree !== ut.tree) revisions[t.tree] = await refOf(t.tree, t.outputRef);
  const old = await refOf(ut.tree, ut.outputRef);
  const input = await refOf(ut.tree, ut.inputRef);
  const tested = await store.findTestedRun(branch, ut.tree, old);
  let kind: GateRunKind;
  let rev: string;
  if (tested === undefined) {
    kind = 'baseline';
    rev = old;
    log(
      `${ut.tree} ${ut.outputRef} ${short(old)} was never tested on ${branch}: a baseline test (nothing will be pushed)`,
    );
  } else if (input === old && !gate.alwaysRun) {
    kind = 'nothing';
    rev = old;
  } else {
    kind = 'test';
    rev = input;
    log(
      `testing ${ut.tree} ${ut.inputRef} ${short(input)} against ${ut.outputRef} ${short(old)} (tested in flight ${tested.flight})`,
    );
  }
  revisions[ut.tree] = rev;

  await takeOverStaleRun(store, branch, log);
  const run = await store.startGateRun({
    branch,
    tree: ut.tree,
    kind,
    old,
    new: rev,
    revisions,
    runner: `${process.pid}@${hostname()}`,
  });
  const result: DailyBranchResult = {
    branch,
    run: run.id,
    kind,
    tree: ut.tree,
    old,
    new: rev,
    revisions,
    flight: null,
    outcome: 'nothing to do',
    detail: '',
    judgement: null,
    reruns: [],
    push: null,
    bisections: [],
    email: null,
  };
  const finish = async (outcome: DailyBranchOutcome, detail: string): Promise<DailyBranchResult> => {
    result.outcome = outcome;
    result.detail = detail;
    await store.updateGateRun(run.id, { outcome, detail, finished: true });
    log(`${outcome}: ${detail}`);
    return result;
  };

  try {
    if (kind === 'nothing') {
      return await finish(
        'nothing to do',
        `${ut.tree} ${ut.inputRef} is ${short(input)}, the revision already tested and in ${ut.outputRef}`,
      );
    }
    return await testAndPush(o, gate, { run, old, input, tested, mirrors, useMirrors, result, finish, log });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    await store
      .updateGateRun(run.id, { outcome: 'error', detail: msg, finished: true })
      .catch(() => undefined);
    throw e;
  }
}

interface RunState {
  run: GateRun;
  old: string;
  input: string;
  tested: GateRun | undefined;
  mirrors: Record<string, string>;
  useMirrors: boolean;
  result: DailyBranchResult;
  finish: (outcome: DailyBranchOutcome, detail: string) => Promise<DailyBranchResult>;
  log: (l: string) => void;
}

async function testAndPush(o: DailyBranchOptions, gate: BranchGate, s: RunState): Promise<DailyBranchResult> {
  const { store, config, branch } = o;
  const { run, old, result, log } = s;
  const ut = gate.trees.find((t) => t.tree === gate.underTest)!;
  const rev = run.new;

  // ---- make the flight
  const treeEnv: Record<string, string> = {};
  for (const t of gate.trees)
    treeEnv[`TREE_${t.tree.toUpperCase()}`] = s.useMirrors ? s.mirrors[t.tree]! : t.url;
  const hookEnv: NodeJS.ProcessEnv = {
    ...process.env,
    ...o.env,
    OSSTEST_CONFIG: config.files.join(':'),
    OSSTEST_BRANCH: branch,
    OSSTEST_GATE_KIND: run.kind,
    OSSTEST_TREE_UNDER_TEST: ut.tree,
    OSSTEST_OLD_REVISION: old,
    OSSTEST_NEW_REVISION: rev,
    ...Object.fromEntries(
      Object.entries(run.revisions).map(([t, r]) => [`OSSTEST_REVISION_${envName(t)}`, r]),
    ),
  };
  if (gate.hooks.before) await runHook('before', gate, gate.hooks.before, hookEnv, config.baseDir, log);
  const made = await makeFlight({
    store,
    config,
    branch,
    blessing: GATE_BLESSING,
    revs: run.revisions,
    env: { ...process.env, ...o.env, ...treeEnv },
  });
  const flight = made.flight.flight;
  result.flight = flight;
  await store.recordHarness(flight, harnessRevision());
  await store.updateGateRun(run.id, { flight });
  log(`flight ${flight}: ${made.jobs.length} job(s) (${made.family} family)`);
  if (gate.hooks.after) {
    try {
      await runHook(
        'after',
        gate,
        gate.hooks.after,
        { ...hookEnv, OSSTEST_FLIGHT: flight },
        config.baseDir,
        log,
      );
    } catch (e) {
      // A flight that never ran is removed rather than left constructing.
      if ((await store.getFlight(flight))?.started === null) {
        await store.deleteFlight(flight);
        result.flight = null;
      }
      throw e;
    }
  }

  // ---- run it
  const execEnv = { ...o.env, ...treeEnv };
  const ran = await executeFlight({
    store,
    config,
    flight,
    env: execEnv,
    ...(o.signal ? { signal: o.signal } : {}),
    ...(o.maxParallel !== undefined ? { maxParallel: o.maxParallel } : {}),
    observer: {
      jobFinished: (job, status) => log(`flight ${flight}: ${job} ${status}`),
      message: (m) => log(m),
    },
  });
  if (ran.interrupted !== undefined) {
    return s.finish('interrupted', `flight ${flight} was stopped (${ran.interrupted}); nothing was pushed`);
  }

  // ---- judge it against the flight that tested OLD
  const baselineFlight =
    run.kind === 'test' && s.tested?.flight && (await store.getFlight(s.tested.flight))
      ? s.tested.flight
      : undefined;
  const data = await loadReport(store, config, flight, baselineFlight ? { baseline: baselineFlight } : {});
  if (run.kind === 'baseline') {
    data.baselineWhy = `none: this is a baseline test of ${ut.tree} ${short(old)} (no completed flight of ${branch} had tested it); nothing is pushed`;
  } else if (baselineFlight) {
    data.baselineWhy = `flight ${baselineFlight}, which tested ${ut.tree} ${short(old)}, the revision in ${ut.outputRef}`;
  }
  let judgement = data.judgement;
  log(`flight ${flight}: ${judgement.heading} (${judgement.outcome})`);

  // ---- the heisenbug rule: rerun what would block
  if (run.kind === 'test' && !judgement.tolerable && gate.retries > 0) {
    const outcomes: RerunOutcome[] = [];
    const tried = new Map<string, Set<string>>();
    for (let round = 1; round <= gate.retries; round++) {
      const blocking = judgement.failures.filter(rerunnable);
      if (blocking.length === 0) break;
      const jobs = [...new Set(blocking.map((f) => f.job))];
      const plans = [];
      for (const job of jobs) plans.push(await planRerunJob(store, config, flight, job, tried.get(job)));
      const rerunFlight = await makeRerunFlight(store, branch, plans);
      await store.updateGateRun(run.id, { addRerun: rerunFlight });
      log(
        `flight ${rerunFlight}: rerunning ${plans
          .map(
            (p) =>
              `${p.job}${p.pins.map((x) => (x.host ? ` on ${x.host} (failed on ${x.failedOn})` : ` (no other host than ${x.failedOn})`)).join('')}`,
          )
          .join(', ')}`,
      );
      const rr = await executeFlight({
        store,
        config,
        flight: rerunFlight,
        env: execEnv,
        ...(o.signal ? { signal: o.signal } : {}),
        ...(o.maxParallel !== undefined ? { maxParallel: o.maxParallel } : {}),
        observer: { jobFinished: (job, status) => log(`flight ${rerunFlight}: ${job} ${status}`) },
      });
      if (rr.interrupted !== undefined) {
        return s.finish(
          'interrupted',
          `rerun flight ${rerunFlight} was stopped (${rr.interrupted}); nothing was pushed`,
        );
      }
      for (const p of plans) {
        const out = await rerunOutcome(store, rerunFlight, p.job);
        outcomes.push(out);
        const failed = blocking.filter((f) => f.job === p.job);
        const seen = tried.get(p.job) ?? new Set<string>();
        for (const pin of p.pins) {
          seen.add(pin.failedOn);
          if (pin.host) seen.add(pin.host);
        }
        tried.set(p.job, seen);
        result.reruns.push({
          flight: rerunFlight,
          job: p.job,
          testids: failed.map((f) => f.testid),
          pins: p.pins,
          status: out.status,
          passed: failed.some((f) => rerunPassed(f, out)),
        });
      }
      judgement = applyReruns(judgement, outcomes);
      log(`after rerun ${round}: ${judgement.heading}`);
    }
    data.judgement = judgement;
    // "What changed" is for regressions; those that passed on a rerun are not regressions any more.
    data.whatChanged = data.whatChanged.filter((w) =>
      judgement.failures.some((f) => f.job === w.job && f.testid === w.testid && f.verdict === 'regression'),
    );
  }
  await store.updateGateRun(run.id, { completed: true });
  result.judgement = {
    overall: judgement.overall,
    heading: judgement.heading,
    tolerable: judgement.tolerable,
    outcome: judgement.outcome,
    failures: judgement.failures,
  };

  // ---- push, or say why not
  let outcome: DailyBranchOutcome;
  let detail: string;
  const control = await store.getBranchControl(branch);
  const forced = control.forcePush !== null && control.forcePush === rev;
  const forceNote =
    control.forcePush !== null && !forced
      ? ` (force-push ${short(control.forcePush)} is set, but this run tested ${short(rev)}: not used)`
      : '';
  if (run.kind === 'baseline') {
    outcome = 'baseline tested';
    detail = `baseline test of ${ut.tree} ${short(old)}: ${judgement.heading}; nothing is pushed in a baseline test`;
  } else if (rev === old) {
    outcome = 'tested';
    detail = `${ut.tree} ${short(rev)} is already in ${ut.outputRef} (BranchAlwaysRun): nothing to push; ${judgement.heading}`;
  } else if (control.blockPush) {
    outcome = 'not pushed';
    detail = `pushes to ${branch} are blocked (osstest branch unblock-push ${branch})${control.note ? `: ${control.note}` : ''}; ${judgement.heading}`;
  } else if (!judgement.tolerable && !forced) {
    outcome = 'not pushed';
    const blockers = judgement.failures.filter((f) => f.blocking);
    detail = `${judgement.heading} ${blockers
      .slice(0, 5)
      .map((f) => `${f.job} ${f.testid}: ${f.text}`)
      .join('; ')}${blockers.length > 5 ? `; and ${blockers.length - 5} more` : ''}${forceNote}`;
  } else {
    // A force-push request is used once: taken atomically before the push, whatever the push does.
    const overridden = !judgement.tolerable && (await store.takeForcePush(branch, rev));
    if (!judgement.tolerable && !overridden) {
      outcome = 'not pushed';
      detail = `${judgement.heading} (the force-push request was withdrawn meanwhile)`;
    } else {
      if (judgement.tolerable && forced) await store.takeForcePush(branch, rev);
      log(`pushing ${ut.tree} ${short(rev)} to ${ut.outputRef} (compare-and-swap on ${short(old)})`);
      const attempt = await fastForwardPush({
        repo: s.mirrors[ut.tree]!,
        url: ut.url,
        ref: ut.outputRef,
        from: old,
        to: rev,
      });
      result.push = await store.recordPush({
        branch,
        flight,
        tree: ut.tree,
        url: ut.url,
        ref: ut.outputRef,
        from: old,
        to: rev,
        result: attempt.result,
        overridden,
        detail: attempt.detail,
      });
      outcome =
        attempt.result === 'pushed'
          ? 'pushed'
          : attempt.result === 'refused'
            ? 'push refused'
            : 'push failed';
      detail = `${attempt.detail}${overridden ? ` (despite "${judgement.heading}": osstest branch force-push)` : ''}`;
    }
  }

  // ---- regressions to the bisector
  if (run.kind === 'test') {
    const seen = new Set<string>();
    for (const f of judgement.failures) {
      if (f.verdict !== 'regression' || !f.blocking || seen.has(`${f.job}\u0000${f.testid}`)) continue;
      seen.add(`${f.job}\u0000${f.testid}`);
      const b = await requestBisection(store, { branch, job: f.job, testid: f.testid, flight });
      result.bisections.push({ job: f.job, testid: f.testid, id: b.bisection.id, created: b.created });
      log(`bisection ${b.bisection.id} of ${f.job} ${f.testid}: ${b.created ? 'requested' : 'already open'}`);
    }
  }

  // ---- the report email (after the push, so that its subject can say PUSHED)
  try {
    result.email = await writeEmail(o, data, result, outcome === 'pushed', gate);
    log(`report: ${result.email?.file}`);
  } catch (e) {
    // What was pushed stays pushed and is recorded; a mail problem must not turn it into an error.
    log(`the report email failed: ${(e as Error).message}`);
    detail += `; the report email failed: ${(e as Error).message}`;
  }
  return s.finish(outcome, detail);
}

function gateSection(r: DailyBranchResult, gate: BranchGate): string[] {
  const ut = gate.trees.find((t) => t.tree === gate.underTest)!;
  const out = ['-'.repeat(60), `Push gate (osstest daily-branch ${r.branch}, gate run ${r.run}):`];
  if (r.kind === 'baseline') {
    out.push(
      `  baseline test: no completed flight had tested ${ut.tree} ${short(r.old)} (${ut.outputRef}),`,
      '  so this flight tested it to have something to compare with; nothing is pushed.',
    );
  } else {
    out.push(`  tested ${ut.tree} ${ut.inputRef} ${short(r.new)} against ${ut.outputRef} ${short(r.old)}`);
  }
  for (const t of gate.trees) {
    if (t.tree !== ut.tree)
      out.push(`  ${t.tree} at its ${t.outputRef}, ${short(r.revisions[t.tree] ?? '')}`);
  }
  for (const x of r.reruns) {
    const where = x.pins.map((p) =>
      p.host ? `on ${p.host} (failed on ${p.failedOn})` : `on any host (only ${p.failedOn} qualifies)`,
    );
    out.push(
      `  rerun of ${x.job} in flight ${x.flight} ${where.join(', ')}: ${x.status}${x.passed ? ' - pass in ' + x.flight : ''}`,
    );
  }
  if (r.push)
    out.push(
      `  push of ${r.push.ref} ${short(r.push.from)}..${short(r.push.to)}: ${r.push.result}: ${r.push.detail}`,
    );
  for (const b of r.bisections)
    out.push(`  bisection ${b.id} of ${b.job} ${b.testid}: ${b.created ? 'requested' : 'already open'}`);
  return out;
}

async function writeEmail(
  o: DailyBranchOptions,
  data: ReportData,
  r: DailyBranchResult,
  pushed: boolean,
  gate: BranchGate,
): Promise<DailyBranchResult['email']> {
  const mail = renderEmail(data, { pushed });
  if (r.kind === 'baseline') mail.subject += ' - baseline test';
  mail.text = `${mail.text.replace(/\n+$/, '')}\n\n${gateSection(r, gate).join('\n')}\n`;
  const dir = join(o.config.path('Results'), data.flight.flight);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'daily-branch.eml');
  const settings = mailSettings(o.config, Boolean(o.sendEmail));
  writeFileSync(file, await buildMessage(mail, settings, data));
  const out: NonNullable<DailyBranchResult['email']> = { subject: mail.subject, file };
  if (o.sendEmail) out.sentTo = (await sendEmail(mail, settings, data)).accepted;
  return out;
}
