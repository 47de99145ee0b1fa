/**
 * Bisection end to end against real flights: two generated git trees (a few hundred commits with
 * merges, a culprit planted in one of them), a real sqlite store, the real demo flight family,
 * make-flight and execute-flight with real runners and the real ts-hosts-allocate and
 * ts-build-check. Only the steps that would need an ssh host are shadowed by workspace testcases:
 * ts-build records what it "built" (the tree's commit for the requested revision) and stashes a
 * file; ts-run-tests fails exactly when the tree it was built from contains the culprit's change
 * (a CULPRIT file), read from the build's tree URL at its built_revision.
 *
 * The failure and the basis are ordinary flights of the branch; the push gate's hand-over
 * (requestBisection) starts the bisection, `osstest bisect … --run` takes it to its verdict, and
 * the rest reads what it left: the log (replayed through the engine), the hosts the flights were
 * pinned to, the builds reused, the page, the graph, the email, then verify and stats.
 */
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SaxesParser } from 'saxes';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bisectionDot, renderSvg } from '../../src/bisect/dot.js';
import { decide } from '../../src/bisect/engine.js';
import { loadTupleGraph, parseTupleId } from '../../src/bisect/graph.js';
import { replay } from '../../src/bisect/log.js';
import { type BisectionView, bisectionEmail, renderBisectionPage } from '../../src/bisect/page.js';
import { requestBisection } from '../../src/bisect/queue.js';
import { treeRepo } from '../../src/bisect/repos.js';
import type { Store } from '../../src/db/store.js';
import type { Bisection } from '../../src/db/types.js';
import { executeFlight } from '../../src/flight/execute-flight.js';
import { makeFlight } from '../../src/flight/make-flight.js';
import { prerequisites } from '../helpers/env.js';
import { CULPRIT_FILE, type GeneratedRepo, generateRepo } from '../helpers/gitrepos.js';
import { createWorkspace, nodeTestcase, type Workspace } from '../helpers/workspace.js';

const ok = prerequisites('bisection with real flights', { commands: ['git'] });

const BRANCH = 'demo';
const JOB = 'test-amd64-amd64-demo';
const TESTID = 'run-tests';

let root: string;
let ws: Workspace;
let store: Store;
let xen: GeneratedRepo;
let linux: GeneratedRepo;
let builds: string;
let basisFlight: string;
let failureFlight: string;

function wellFormed(xml: string): void {
  const p = new SaxesParser({ xmlns: true });
  p.on('error', (e) => {
    throw e;
  });
  p.write(xml).close();
}

describe.skipIf(!ok)('bisection with real flights', () => {
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'osstest-bisect-flights-'));
    // Both trees span about the same time so that the tuple graph interleaves them.
    [xen, linux] = await Promise.all([
      generateRepo(join(root, 'xen'), { commits: 180, seed: 41, meanGap: 300, culprit: 101 }),
      generateRepo(join(root, 'linux'), { commits: 120, seed: 42, meanGap: 450 }),
    ]);
    builds = join(root, 'builds.txt');
    ws = createWorkspace([
      'FlightHostWait 120',
      'DemoTrees xen linux',
      'DemoArchs amd64',
      'DemoBuildCommand true',
      'DemoTestCommand true',
      `Tree_xen ${xen.path}`,
      `Tree_linux ${linux.path}`,
    ]);
    ws.configure([`Results ${join(ws.dir, 'results')}`, `Repos ${join(ws.dir, 'repos')}`]);
    for (const t of ['ts-build-prep', 'ts-install-dist', 'ts-logs-capture'])
      ws.addTestcase(t, '#!/bin/sh\nexit 0\n');
    ws.addTestcase(
      'ts-build',
      nodeTestcase(`
const { execFileSync } = await import('node:child_process');
const { appendFileSync, mkdirSync, writeFileSync } = await import('node:fs');
const { join } = await import('node:path');
const rv = await tc.runvars();
for (const t of Object.keys(rv).filter((n) => n.startsWith('tree_')).map((n) => n.slice(5))) {
  const rev = execFileSync('git', ['-C', rv['tree_' + t], 'rev-parse', '--verify', rv['revision_' + t] + '^{commit}'], { encoding: 'utf8' }).trim();
  await tc.setRunvar('built_revision_' + t, rev);
}
mkdirSync(join(tc.stashDir(), 'build'), { recursive: true });
writeFileSync(join(tc.stashDir(), 'build', 'dist.tar.gz'), 'built');
await tc.setRunvar('path_dist', 'build/dist.tar.gz');
appendFileSync(${JSON.stringify(builds)}, tc.flight + '.' + tc.job + '\\n');
`),
    );
    ws.addTestcase(
      'ts-run-tests',
      nodeTestcase(`
const { execFileSync } = await import('node:child_process');
const ref = await tc.buildJobRef();
const rv = {};
for (const r of await tc.store.listRunvars(ref.flight, ref.job)) rv[r.name] = r.val;
for (const t of Object.keys(rv).filter((n) => n.startsWith('tree_')).map((n) => n.slice(5))) {
  const rev = rv['built_revision_' + t];
  let bug = true;
  try { execFileSync('git', ['-C', rv['tree_' + t], 'cat-file', '-e', rev + ':${CULPRIT_FILE}'], { stdio: 'ignore' }); } catch { bug = false; }
  tc.log(t + ' at ' + rev + (bug ? ': has the bug' : ': clean'));
  if (bug) throw new Error('the test fails: ' + t + ' has the bug');
}
`),
    );
    store = await ws.openStore();
    for (const [name, flags] of [
      ['bh1', ['arch-amd64', 'purpose-build']],
      ['bh2', ['arch-amd64', 'purpose-build']],
      ['th1', ['arch-amd64', 'purpose-test', 'equiv-lab1']],
      ['th2', ['arch-amd64', 'purpose-test', 'equiv-lab1']],
      // A test host that is not equivalent to th1: never used by the bisection.
      ['tz9', ['arch-amd64', 'purpose-test']],
    ] as const) {
      await store.upsertHost({ name, ip: '127.0.0.1' });
      await store.setHostFlags(name, [...flags]);
    }
    const config = ws.config();
    const flightOf = async (revs: Record<string, string>, pin: string) => {
      const m = await makeFlight({
        store,
        config,
        branch: BRANCH,
        blessing: 'real',
        revs,
        env: { TEST_RUNVARS: `host=${pin}` },
      });
      await executeFlight({ store, config, flight: m.flight.flight });
      return m.flight.flight;
    };
    // The basis; a newer pass on another host (not a basis: the hosts differ); the failure.
    basisFlight = await flightOf({ xen: xen.basis, linux: linux.basis }, 'th1');
    await flightOf({ xen: xen.basis, linux: linux.basis }, 'tz9');
    failureFlight = await flightOf({ xen: xen.failure, linux: linux.failure }, 'th1');
    expect((await store.getJob(basisFlight, JOB))?.status).toBe('pass');
    expect((await store.getJob(failureFlight, JOB))?.status).toBe('fail');
  });

  afterAll(async () => {
    await store?.close();
    ws?.cleanup();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  let bisection: Bisection;
  let made: string[] = [];
  let wall = 0;

  it('bisect --run, started by the push gate’s request, names the culprit and its tree (exit 4)', async () => {
    const req = await requestBisection(store, {
      branch: BRANCH,
      job: JOB,
      testid: TESTID,
      flight: failureFlight,
    });
    expect(req.created).toBe(true);
    expect((await requestBisection(store, { branch: BRANCH, job: JOB, testid: TESTID })).bisection.id).toBe(
      req.bisection.id,
    );
    appendFileSync(builds, '--- bisection\n');
    const t0 = Date.now();
    // One step: the first flight (reproducing the basis), then exit 0, "testing".
    const one = await ws.cli(['bisect', BRANCH, JOB, TESTID, '--json']);
    expect(one.code, one.stderr).toBe(0);
    const first = JSON.parse(one.stdout) as {
      state: string;
      made: string[];
      next: string[];
      wording: string;
    };
    expect(first).toMatchObject({ state: 'running', wording: 'Testing a revision' });
    expect(first.made).toHaveLength(1);
    expect(first.next.length).toBeGreaterThan(0);
    // Taken up from the database by another process, and run to the end.
    const r = await ws.cli(['bisect', BRANCH, JOB, TESTID, '--run', '--json'], {}, 240_000);
    wall = Date.now() - t0;
    if (r.code !== 4) {
      const log = await ws.cli(['bisect', 'log', String(req.bisection.id)]);
      expect.fail(`exit ${r.code}\n${r.stderr}\n${log.stdout}`);
    }
    const out = JSON.parse(r.stdout) as {
      id: number;
      culprit: { tree: string; rev: string; notPresentAt: string[] };
      made: string[];
      failureFlight: string;
      basisFlight: string;
      parallel: number;
      confidence: number;
      report: string;
    };
    expect(out.id).toBe(req.bisection.id);
    expect(out.failureFlight).toBe(failureFlight);
    expect(out.basisFlight).toBe(basisFlight);
    expect(out.culprit.tree).toBe('xen');
    expect(out.culprit.rev).toBe(xen.culprit);
    const parent = xen.commits.find((c) => c.sha === xen.culprit)!.parents[0];
    expect(out.culprit.notPresentAt).toContain(parent);
    expect(out.parallel).toBe(2);
    expect(out.confidence).toBeGreaterThan(0.9);
    expect(out.made).not.toContain(first.made[0]);
    made = (await store.listBisectionFlights(out.id)).filter((f) => f.role === 'test').map((f) => f.flight);
    expect(made).toEqual([...first.made, ...out.made]);
    bisection = (await store.getBisection(out.id))!;
    expect(bisection).toMatchObject({ state: 'done', code: 4, culpritRev: xen.culprit, confirmed: null });
    const reasons = new Map<string, number>();
    for (const f of await store.listBisectionFlights(out.id))
      if (f.role === 'test') reasons.set(f.reason!, (reasons.get(f.reason!) ?? 0) + 1);
    process.stderr.write(
      `[bisect-flights] ${xen.range.length}+${linux.range.length} changes: verdict in ${made.length} bisect flights (${[...reasons].map(([k, n]) => `${k} ${n}`).join(', ')}), ${(wall / 1000).toFixed(1)} s wall\n`,
    );
  });

  it('pinned every bisect flight to the failure’s host or an equivalent one, two at a time', async () => {
    const hosts = new Map<string, number>();
    for (const f of made) {
      const h = (await store.getRunvar(f, JOB, 'host'))!.val;
      hosts.set(h, (hosts.get(h) ?? 0) + 1);
    }
    expect([...hosts.keys()].sort()).toEqual(['th1', 'th2']);
    // Some flights ran at the same time (k = 2).
    const spans = await Promise.all(
      made.map(async (f) => {
        const steps = await store.listSteps(f, JOB);
        return [
          Math.min(...steps.map((s) => s.started!)),
          Math.max(...steps.map((s) => s.finished!)),
        ] as const;
      }),
    );
    const overlapping = spans.some((a, i) => spans.some((b, j) => i < j && a[0] < b[1] && b[0] < a[1]));
    expect(overlapping).toBe(true);
    for (const f of made) expect((await store.getFlight(f))?.intended).toBe('bisect');
  });

  it('reused passed builds of identical definition instead of building again', async () => {
    const lines = readFileSync(builds, 'utf8').split('\n');
    const during = lines.slice(lines.indexOf('--- bisection') + 1).filter((l) => l !== '');
    let reused = 0;
    for (const f of made) {
      const bj = (await store.getRunvar(f, JOB, 'buildjob'))!.val;
      if (bj.includes('.')) {
        reused++;
        const [bf, job] = bj.split('.') as [string, string];
        expect((await store.getJob(bf, job))?.status).toBe('pass');
        expect(existsSync(join(ws.dir, 'logs', bf, job, 'build', 'dist.tar.gz'))).toBe(true);
        // Same definition: the same revisions as the test asks for.
        for (const t of ['xen', 'linux'])
          expect((await store.getRunvar(bf, job, `revision_${t}`))?.val).toBe(
            (await store.getRunvar(f, JOB, `revision_${t}`))?.val,
          );
      } else {
        expect(bj).toBe('build-amd64');
      }
    }
    process.stderr.write(
      `[bisect-flights] build jobs run: ${during.length} for ${made.length} flights (${reused} reused a build)\n`,
    );
    // The reproduction flights retest the failure's and the basis's tuples, whose builds passed
    // before the bisection began: they always reuse them. Later reuse depends on which flights the
    // two hosts run at the same moment (a flight cannot reuse a build still running), so it is not
    // counted here; every flight that did not reuse must have built exactly once.
    expect(reused).toBeGreaterThanOrEqual(2);
    expect(during.length).toBe(made.length - reused);
  });

  it('is reconstructible from the database: the log replays to the same verdict', async () => {
    const r = await ws.cli(['bisect', 'log', String(bisection.id)]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^# osstest bisection log\nbisect start /);
    expect(r.stdout).toContain('# verdict 4: Found and reproduced problem changeset');
    const { header, observations } = replay(r.stdout);
    expect(observations).toHaveLength(made.length + 2);
    expect(header.hosts).toBe(2);
    const f = parseTupleId(header.failure);
    const bs = parseTupleId(header.basis);
    const graph = await loadTupleGraph([
      { tree: 'xen', repo: xen.path, basis: bs.xen!, failure: f.xen! },
      { tree: 'linux', repo: linux.path, basis: bs.linux!, failure: f.linux! },
    ]);
    const d = decide(graph, observations, { hosts: 2 });
    expect(d.kind).toBe('done');
    if (d.kind === 'done') expect(d.outcome.culprit?.rev).toBe(xen.culprit);
    // Without reading any tree: the same commands, no decisions.
    const bare = await ws.cli(['bisect', 'log', String(bisection.id), '--no-decisions']);
    const commands = (s: string) => s.split('\n').filter((l) => l.startsWith('bisect '));
    expect(commands(bare.stdout)).toEqual(commands(r.stdout));
    expect(bare.stdout).not.toContain('# verdict');
  });

  it('asked again, reports the verdict it has without making flights, and emails it (SMTP on loopback)', async () => {
    const received: string[] = [];
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onData(stream, _session, done) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          received.push(Buffer.concat(chunks).toString('utf8'));
          done();
        });
      },
    });
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const port = (server.server.address() as AddressInfo).port;
    const mailConfig = join(ws.dir, 'mail.config');
    writeFileSync(
      mailConfig,
      `SmtpHost 127.0.0.1\nSmtpPort ${port}\nReportFrom bisector@example.invalid\nReportTo list@example.invalid\n`,
    );
    try {
      const before = (await store.listFlights()).length;
      const r = await ws.cli(['cs-bisection-step', BRANCH, JOB, TESTID, '--json', '--send'], {
        OSSTEST_CONFIG: `${ws.configFile}:${mailConfig}`,
      });
      expect(r.code, r.stderr).toBe(4);
      const out = JSON.parse(r.stdout) as { made: string[]; sent: string };
      expect(out.made).toEqual([]);
      expect(out.sent).toMatch(/^list@example\.invalid through 127\.0\.0\.1:/);
      expect((await store.listFlights()).length).toBe(before);
      expect(received).toHaveLength(1);
      expect(received[0]).toContain(`Subject: [${BRANCH} bisection] complete ${JOB}`);
      expect(received[0]).toContain(`Bug introduced:  ${xen.culprit}`);
    } finally {
      await new Promise<void>((res) => server.close(() => res()));
    }
  });

  it('writes the page, the graph (DOT and SVG) and the email', () => {
    const dir = join(ws.dir, 'results', 'bisect', String(bisection.id));
    const html = readFileSync(join(dir, 'index.html'), 'utf8');
    expect(html).toContain('Bug introduced');
    expect(html).toContain(xen.culprit!);
    expect(html).toContain('Bug not present');
    // The log between: the culprit's own subject line from the repository.
    const label = xen.commits.find((c) => c.sha === xen.culprit)!.label;
    expect(html).toContain(label);
    const dot = readFileSync(join(dir, 'graph.dot'), 'utf8');
    expect(dot).toContain('rankdir=BT');
    expect(dot).toMatch(/shape=hexagon/);
    expect(dot).toMatch(/shape=oval/);
    expect(dot).toMatch(/fillcolor=red/);
    expect(dot).toMatch(/fillcolor=green/);
    expect(dot).toMatch(/style="filled,bold"/);
    // The bold node is the one that adds the culprit, and it failed.
    const boldLine = dot.split('\n').find((l) => l.includes('style="filled,bold"'))!;
    expect(boldLine).toContain(`xen ${xen.culprit!.slice(0, 12)}`);
    expect(boldLine).toContain('fillcolor=red');
    const svg = readFileSync(join(dir, 'graph.svg'), 'utf8');
    wellFormed(svg);
    expect(svg).toContain(xen.culprit!.slice(0, 12));
    expect(svg).toContain(`${failureFlight}: fail`);
    expect(svg).toContain(`${basisFlight}: pass`);
    const mail = readFileSync(join(dir, 'email.txt'), 'utf8');
    expect(mail).toMatch(new RegExp(`^Subject: \\[${BRANCH} bisection\\] complete ${JOB}\\n`));
    expect(mail).toContain(`Bug introduced:  ${xen.culprit}`);
  });

  it('bisect verify reverts the culprit on the failing revision, tests it, and records the confirmation', async () => {
    const r = await ws.cli(['bisect', 'verify', String(bisection.id), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as {
      flight: string;
      result: string;
      confirmed: boolean;
      revision: string;
    };
    expect(out).toMatchObject({ result: 'pass', confirmed: true });
    expect((await store.getBisection(bisection.id))?.confirmed).toBe(true);
    // It tested the failure's revisions with the culprit reverted, on the failure's host.
    expect((await store.getRunvar(out.flight, JOB, 'host'))?.val).toBe('th1');
    expect((await store.getRunvar(out.flight, JOB, 'revision_xen'))?.val).toBe(out.revision);
    expect((await store.getRunvar(out.flight, JOB, 'revision_linux'))?.val).toBe(linux.failure);
  });

  it('bisect stats counts it: found, confirmed precision, flights per bisection', async () => {
    // A bisection that cannot be: no such failure.
    const none = await ws.cli(['bisect', BRANCH, JOB, 'no-such-step', '--json']);
    expect(none.code, none.stderr).toBe(32);
    expect((JSON.parse(none.stdout) as { summary: string }).summary).toMatch(/no finished flight of demo/);
    const r = await ws.cli(['bisect', 'stats', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      total: 2,
      found: 1,
      byCode: { '4': 1, '32': 1 },
      verified: 1,
      confirmed: 1,
      precision: 1,
    });
    const text = await ws.cli(['bisect', 'stats']);
    expect(text.stdout).toContain('culprit found: 1/2');
    expect(text.stdout).toContain('precision 100.0%');
  });

  it('reads a tree named by URL from the gate’s mirror, cloned once', async () => {
    const config = ws.config();
    const url = `file://${xen.path}`;
    const first = await treeRepo('xen', url, [xen.failure], config);
    expect(first).toBe(join(ws.dir, 'repos', 'xen.git'));
    expect(await treeRepo('xen', url, [xen.failure, xen.basis], config)).toBe(first);
    // A local directory is read where it is.
    expect(await treeRepo('linux', linux.path, [], config)).toBe(linux.path);
    await expect(treeRepo('nope', `file://${join(root, 'nothing')}`, [], config)).rejects.toThrow(
      /tree nope \(file:.*\) cannot be read/,
    );
  });

  it('escapes everything on the page and in the DOT', async () => {
    const evil = '<script>alert("x")</script>';
    const b: Bisection = {
      ...bisection,
      job: `job${evil}`,
      testid: `t"${evil}`,
      trees: { xen: `file:///x?a=<b>&c="d"` },
      hosts: { host: `h<i>` },
    };
    const view: BisectionView = {
      bisection: b,
      flights: [
        {
          bisection: b.id,
          flight: 'f<1>',
          role: 'test',
          tuple: 'xen=abc',
          reason: evil,
          result: 'fail',
          at: 1,
          added: 1,
        },
      ],
      trees: [
        {
          tree: 'xen',
          url: evil,
          basis: 'a',
          failure: 'b',
          changes: 1,
          introduced: 'abc',
          notPresent: ['def'],
          log: [{ sha: 'abc', time: 0, author: `Eve <eve@evil>`, subject: evil }],
        },
      ],
      code: 4,
      wording: 'Found',
      summary: evil,
      next: [],
      log: `# ${evil}\n`,
      harness: { failure: [evil], basis: ['x'] },
    };
    const html = renderBisectionPage(view);
    expect(html).not.toContain('<script>');
    expect(html).not.toContain('<i>');
    expect(html).toContain('&lt;script&gt;');
    expect(html).toContain('Eve &lt;eve@evil&gt;');
    expect(bisectionEmail(view).subject).toBe(`[${b.branch} bisection] complete job${evil}`);
    // DOT: a flight name with quotes and backslashes cannot break out of its label.
    const graph = await loadTupleGraph([
      { tree: 'xen', repo: xen.path, basis: xen.basis, failure: xen.failure },
      { tree: 'linux', repo: linux.path, basis: linux.basis, failure: linux.failure },
    ]);
    const dot = bisectionDot(graph, [
      { tuple: graph.node(graph.failure).id, result: 'fail', at: 1, flight: 'x"];\\ evil' },
    ]);
    expect(dot).toContain('x\\"];\\\\ evil: fail');
    wellFormed(await renderSvg(dot));
  });
});
