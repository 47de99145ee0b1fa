/**
 * `osstest branch …`: the push gate's controls, kept in the database (the original used files:
 * stop, <branch>.stop, force and block files next to the scripts).
 *   stop BRANCH        daily-branch refuses to run the branch
 *   start BRANCH       undoes stop
 *   block-push BRANCH  daily-branch still tests, but never pushes
 *   unblock-push BRANCH
 *   force-push BRANCH REV   push REV once it has been tested, whatever the verdict (used once)
 *   status [BRANCH]    controls, trees, recent gate runs and pushes, open bisections
 */
import type { Command } from 'commander';
import { branchGate } from '../config/branches.js';
import type { Config } from '../config/config.js';
import type { BranchControl } from '../db/gate-types.js';
import type { Store } from '../db/store.js';
import { isFullHash, revParse } from '../gate/git.js';
import { syncMirror } from '../gate/mirror.js';
import { withStore } from './context.js';
import { printJson, table, UsageError } from './output.js';

function when(ms: number | null): string {
  return ms === null ? '-' : new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

const short = (rev: string | null) => (rev === null ? '-' : rev.slice(0, 12));

function controlLine(c: BranchControl): string {
  const parts = [c.stopped ? 'STOPPED' : 'running'];
  if (c.blockPush) parts.push('pushes blocked');
  if (c.forcePush) parts.push(`force-push ${c.forcePush}`);
  return `${c.branch}: ${parts.join(', ')}${c.note ? ` (${c.note})` : ''}${c.updated ? `, changed ${when(c.updated)}` : ''}`;
}

/** REV as a full commit id: kept if it is one, else looked up in the (freshly fetched) mirror of the tree under test. */
async function resolveForcedRevision(config: Config, branch: string, rev: string): Promise<string> {
  if (isFullHash(rev.toLowerCase())) return rev.toLowerCase();
  const gate = branchGate(config, branch);
  const ut = gate.trees.find((t) => t.tree === gate.underTest)!;
  let path: string;
  try {
    path = (await syncMirror(ut.tree, ut.url, { reposDir: config.path('Repos') })).path;
  } catch (e) {
    throw new UsageError(
      `force-push ${rev}: cannot read tree ${ut.tree} (${ut.url}): ${(e as Error).message}`,
    );
  }
  const sha = await revParse(path, rev);
  if (sha === undefined)
    throw new UsageError(`force-push ${rev}: no such commit in tree ${ut.tree} (${ut.url})`);
  return sha;
}

async function status(
  store: Store,
  config: Config,
  branch: string | undefined,
  json: boolean,
): Promise<void> {
  const branches =
    branch !== undefined
      ? [branch]
      : [
          ...new Set([
            ...(await store.listBranchControls()).map((c) => c.branch),
            ...(await store.listGateRuns({ limit: 200 })).map((r) => r.branch),
          ]),
        ].sort();
  const out = [];
  for (const b of branches) {
    const control = await store.getBranchControl(b);
    let trees: unknown = null;
    let treesError: string | null = null;
    try {
      const g = branchGate(config, b);
      trees = {
        underTest: g.underTest,
        trees: g.trees,
        alwaysRun: g.alwaysRun,
        hooks: g.hooks,
        retries: g.retries,
      };
    } catch (e) {
      treesError = (e as Error).message;
    }
    out.push({
      branch: b,
      control,
      config: trees,
      configError: treesError,
      runs: await store.listGateRuns({ branch: b, limit: branch === undefined ? 1 : 10 }),
      pushes: await store.listPushes({ branch: b, limit: branch === undefined ? 1 : 10 }),
      bisections: (await store.listBisections({ branch: b, limit: 20 })).filter((x) => x.state !== 'done'),
    });
  }
  if (json) {
    printJson(branch === undefined ? out : out[0]);
    return;
  }
  if (out.length === 0) {
    process.stdout.write('no branch has controls or gate runs yet\n');
    return;
  }
  const lines: string[] = [];
  for (const s of out) {
    lines.push(controlLine(s.control));
    if (s.configError) lines.push(`  config: ${s.configError}`);
    if (s.runs.length > 0) {
      lines.push('  gate runs:');
      const rows = s.runs.map((r) => [
        `  ${r.id}`,
        when(r.started),
        r.kind,
        r.flight ?? '-',
        `${short(r.old)}..${short(r.new)}`,
        r.finished === null ? 'going on' : (r.outcome ?? '-'),
        r.detail.split('\n')[0] ?? '',
      ]);
      lines.push(...table(rows).split('\n'));
    }
    if (s.pushes.length > 0) {
      lines.push('  pushes:');
      const rows = s.pushes.map((p) => [
        `  ${when(p.at)}`,
        p.flight ?? '-',
        `${p.tree} ${p.ref}`,
        `${short(p.from)}..${short(p.to)}`,
        p.result + (p.overridden ? ' (force-push)' : ''),
        p.detail,
      ]);
      lines.push(...table(rows).split('\n'));
    }
    for (const x of s.bisections) lines.push(`  bisection ${x.id} ${x.state}: ${x.job} ${x.testid}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

export function register(program: Command): void {
  const br = program
    .command('branch')
    .description("The push gate's controls for a branch, kept in the database, and its status");

  const change = (
    name: string,
    what: string,
    apply: (store: Store, branch: string, reason?: string) => Promise<BranchControl>,
  ) =>
    br
      .command(name)
      .argument('<branch>', 'branch')
      .option('--reason <text>', 'why (shown by branch status)')
      .option('--json', 'print the controls afterwards as JSON')
      .description(what)
      .action(async (branch: string, o: { reason?: string; json?: boolean }) => {
        await withStore(async ({ store }) => {
          const c = await apply(store, branch, o.reason);
          if (o.json) printJson(c);
          else process.stdout.write(`${controlLine(c)}\n`);
        });
      });

  change('stop', 'daily-branch refuses to run the branch until `branch start`', (store, b, reason) =>
    store.setBranchControl(b, { stopped: true, ...(reason !== undefined ? { note: reason } : {}) }),
  );
  change('start', 'let daily-branch run the branch again', (store, b, reason) =>
    store.setBranchControl(b, { stopped: false, note: reason ?? '' }),
  );
  change(
    'block-push',
    'daily-branch still tests the branch but pushes nothing until `branch unblock-push`',
    (store, b, reason) =>
      store.setBranchControl(b, { blockPush: true, ...(reason !== undefined ? { note: reason } : {}) }),
  );
  change('unblock-push', 'let daily-branch push again', (store, b, reason) =>
    store.setBranchControl(b, { blockPush: false, note: reason ?? '' }),
  );

  br.command('force-push')
    .argument('<branch>', 'branch')
    .argument(
      '[rev]',
      'the revision of the tree under test to push once tested (a commit, or a ref of its tree)',
    )
    .option('--clear', 'withdraw the request')
    .option('--reason <text>', 'why (shown by branch status)')
    .option('--json', 'print the controls afterwards as JSON')
    .description(
      'Push REV when daily-branch has tested it, whatever the verdict (still a fast-forward, still refused if the output ref moved; never a forced push). Used once.',
    )
    .action(
      async (
        branch: string,
        rev: string | undefined,
        o: { clear?: boolean; reason?: string; json?: boolean },
      ) => {
        if ((rev === undefined) === !o.clear)
          throw new UsageError('force-push: give a revision, or --clear (not both)');
        await withStore(async ({ store, config }) => {
          const forcePush = rev === undefined ? null : await resolveForcedRevision(config, branch, rev);
          const c = await store.setBranchControl(branch, {
            forcePush,
            ...(o.reason !== undefined ? { note: o.reason } : {}),
          });
          if (o.json) printJson(c);
          else process.stdout.write(`${controlLine(c)}\n`);
        });
      },
    );

  br.command('status')
    .argument('[branch]', 'branch (default: every branch the gate knows)')
    .option('--json', 'print as JSON')
    .description('Controls, trees, recent gate runs and pushes, and open bisections of a branch')
    .action(async (branch: string | undefined, o: { json?: boolean }) => {
      await withStore(({ store, config }) => status(store, config, branch, Boolean(o.json)));
    });
}
