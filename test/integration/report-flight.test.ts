/**
 * report-flight end to end: histories written through the real sqlite store, a real git tree with
 * people in its commits, the loader's choices (baseline, versions, revision log, what changed),
 * the CLI's exit status and JSON, JUnit XML parsed back with a strict XML parser, the email file,
 * and an email sent through a real SMTP server on loopback.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { SaxesParser } from 'saxes';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/db/store.js';
import type { JobStatus, StepStatus } from '../../src/model/status.js';
import { buildMessage, renderEmail } from '../../src/report/email.js';
import { junitXml, renderJunit } from '../../src/report/junit.js';
import { loadReport, ReportError } from '../../src/report/load.js';
import type { ReportData } from '../../src/report/report-data.js';
import { treeChange } from '../../src/report/trees.js';
import { createWorkspace, type Workspace } from '../helpers/workspace.js';

// ---------------------------------------------------------------- a git tree with people in it

async function gitIn(dir: string, args: string[], who?: { name: string; email: string }): Promise<string> {
  const env: Record<string, string> = { GIT_CONFIG_NOSYSTEM: '1', HOME: dir };
  if (who) {
    Object.assign(env, {
      GIT_AUTHOR_NAME: who.name,
      GIT_AUTHOR_EMAIL: who.email,
      GIT_COMMITTER_NAME: 'Committer',
      GIT_COMMITTER_EMAIL: 'committer@example.invalid',
    });
  }
  return (await execa('git', args, { cwd: dir, env })).stdout.trim();
}

async function commit(dir: string, file: string, message: string, who: { name: string; email: string }) {
  writeFileSync(join(dir, file), `${message}\n`);
  await gitIn(dir, ['add', '-A']);
  await gitIn(dir, ['commit', '-q', '-m', message], who);
  return gitIn(dir, ['rev-parse', 'HEAD']);
}

const ALICE = { name: 'Alice Author', email: 'alice@example.invalid' };
const BOB = { name: 'Bob Builder', email: 'bob@example.invalid' };

// ---------------------------------------------------------------- flights through the store API

interface StepSpec {
  testid: string;
  status: StepStatus;
  testcase?: string;
  log?: string;
}
interface JobSpec {
  job: string;
  recipe: string;
  status: JobStatus;
  runvars: Record<string, string>;
  synth?: Record<string, string>;
  steps: StepSpec[];
}

let clock = 1_700_000_000_000;
/** Moves the test's clock on and returns it: flights and steps get distinct, ordered times. */
function tick(ms: number): number {
  clock += ms;
  return clock;
}

async function makeFlight(
  store: Store,
  logs: string,
  o: { branch: string; intended?: string; blessing?: string; harness?: string; jobs: JobSpec[] },
): Promise<string> {
  const f = await store.createFlight({ branch: o.branch, intended: o.intended ?? 'real' });
  for (const j of o.jobs) await store.createJob(f.flight, j.job, j.recipe, j.runvars);
  await store.markFlightStarted(f.flight, tick(60_000));
  for (const j of o.jobs) {
    for (const [n, v] of Object.entries(j.synth ?? {}))
      await store.setRunvar(f.flight, j.job, n, v, { synth: true });
    for (const s of j.steps) {
      const st = await store.startStep(f.flight, j.job, {
        testcase: s.testcase ?? `ts-${s.testid.split('/')[0]}`,
        testid: s.testid,
        started: tick(1000),
      });
      let logPath: string | null = null;
      if (s.log !== undefined) {
        logPath = join(f.flight, j.job, `${st.stepno}.log`);
        mkdirSync(join(logs, f.flight, j.job), { recursive: true });
        writeFileSync(join(logs, logPath), s.log);
      }
      await store.finishStep(f.flight, j.job, st.stepno, {
        status: s.status,
        finished: tick(2500),
        logPath,
      });
    }
    await store.setJobStatus(f.flight, j.job, j.status);
  }
  if (o.harness !== undefined) await store.recordHarness(f.flight, o.harness);
  await store.setFlightBlessing(f.flight, o.blessing ?? o.intended ?? 'real');
  return f.flight;
}

function buildJob(url: string, rev: string, status: JobStatus = 'pass', host = 'builder1'): JobSpec {
  return {
    job: 'build-amd64',
    recipe: 'build',
    status,
    runvars: {
      tree_demo: url,
      revision_demo: rev,
      tree_gone: '/nonexistent/gone.git',
      revision_gone: 'abc123',
    },
    synth: { host, built_revision_demo: rev, built_revision_gone: 'abc123' },
    steps: [
      { testid: 'hosts-allocate', status: 'pass' },
      { testid: 'build', status: status === 'pass' ? 'pass' : 'fail' },
    ],
  };
}

function testJob(
  job: string,
  host: string,
  steps: StepSpec[],
  status?: JobStatus,
  buildjob = 'build-amd64',
): JobSpec {
  const worst: JobStatus = steps.some((s) => s.status === 'broken')
    ? 'broken'
    : steps.some((s) => s.status === 'fail')
      ? 'fail'
      : 'pass';
  return {
    job,
    recipe: 'test-demo',
    status: status ?? worst,
    runvars: { buildjob },
    synth: { host },
    steps: [{ testid: 'hosts-allocate', status: 'pass' }, ...steps],
  };
}

// ---------------------------------------------------------------- XML and mail readers for checks

interface XmlNode {
  name: string;
  attrs: Record<string, string>;
  children: XmlNode[];
  text: string;
}

/** Parses strictly (saxes: XML 1.0 well-formedness, character validity); throws on any error. */
function parseXml(xml: string): XmlNode {
  const parser = new SaxesParser();
  const root: XmlNode = { name: '#document', attrs: {}, children: [], text: '' };
  const stack: XmlNode[] = [root];
  parser.on('error', (e) => {
    throw e;
  });
  parser.on('opentag', (t) => {
    const node: XmlNode = {
      name: t.name,
      attrs: t.attributes as Record<string, string>,
      children: [],
      text: '',
    };
    stack[stack.length - 1]!.children.push(node);
    stack.push(node);
  });
  parser.on('closetag', () => {
    stack.pop();
  });
  parser.on('text', (t) => {
    stack[stack.length - 1]!.text += t;
  });
  parser.write(xml).close();
  return root.children[0]!;
}

function all(n: XmlNode, name: string): XmlNode[] {
  return [...(n.name === name ? [n] : []), ...n.children.flatMap((c) => all(c, name))];
}

/** Headers (unfolded, by lower-case name) and the decoded text body of a single-part message. */
function readMessage(raw: string): { headers: Map<string, string>; body: string } {
  const text = raw.replace(/\r\n/g, '\n');
  const cut = text.indexOf('\n\n');
  const headers = new Map<string, string>();
  for (const h of text
    .slice(0, cut)
    .replace(/\n[ \t]+/g, ' ')
    .split('\n')) {
    const colon = h.indexOf(':');
    headers.set(h.slice(0, colon).toLowerCase(), h.slice(colon + 1).trim());
  }
  let body = text.slice(cut + 2);
  const cte = (headers.get('content-transfer-encoding') ?? '7bit').toLowerCase();
  if (cte === 'quoted-printable') {
    const bytes = body
      .replace(/=\n/g, '')
      .replace(/=([0-9A-F]{2})/g, (_m, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
    body = Buffer.from(bytes, 'latin1').toString('utf8');
  } else if (cte === 'base64') {
    body = Buffer.from(body, 'base64').toString('utf8');
  }
  return { headers, body };
}

// ---------------------------------------------------------------- the history

let ws: Workspace;
let store: Store;
let logs: string;
let repo: string;
const rev: Record<string, string> = {};
const F: Record<string, string> = {};
const BRANCH = 'demo-branch';
const NASTY_TESTID = 'odd/<script>"\'&]]>\u0001';
const NASTY_LOG = 'line one\n<script>alert("x")</script> ]]> & \u001b[31mred\u0000\n';

beforeAll(async () => {
  ws = createWorkspace();
  logs = join(ws.dir, 'logs');
  repo = join(ws.dir, 'demo.git');
  mkdirSync(repo);
  await gitIn(repo, ['init', '-q', '-b', 'main']);
  rev.c1 = await commit(repo, 'a', 'first: builds and passes', ALICE);
  rev.c2 = await commit(
    repo,
    'b',
    'second: tidy\n\nSigned-off-by: Alice Author <alice@example.invalid>\nAcked-by: Carol Acker <carol@example.invalid>',
    ALICE,
  );
  rev.c3 = await commit(
    repo,
    'c',
    'third: break the test\n\nReviewed-by: Dave Reviewer <dave@example.invalid>\nTested-by: Erin Tester <erin@example.invalid>\nSigned-off-by: Bob Builder <bob@example.invalid>',
    BOB,
  );
  ws.configure([`AllowDir ${ws.dir}`, `Repos ${join(ws.dir, 'repos')}`]);
  store = await ws.openStore();

  const good = (leak: StepStatus) => [
    { testid: 'run-tests', status: 'pass' as const },
    { testid: 'leak-check', status: leak },
    { testid: 'always-fails', status: 'fail' as const },
  ];
  F.old = await makeFlight(store, logs, {
    branch: BRANCH,
    harness: 'harness-1',
    jobs: [buildJob(repo, rev.c1!), testJob('test-amd64-amd64-demo', 'h1', good('pass'))],
  });
  F.base = await makeFlight(store, logs, {
    branch: BRANCH,
    harness: 'harness-1',
    jobs: [
      buildJob(repo, rev.c1!),
      testJob('test-amd64-amd64-demo', 'h1', good('fail')),
      testJob('test-amd64-amd64-pair', 'h2', [{ testid: 'run-tests', status: 'pass' }]),
    ],
  });
  // Neither may be the baseline: another intended blessing, and one still running.
  await makeFlight(store, logs, { branch: BRANCH, intended: 'play', jobs: [buildJob(repo, rev.c2!)] });
  await makeFlight(store, logs, { branch: BRANCH, blessing: 'running', jobs: [buildJob(repo, rev.c2!)] });
  F.other = await makeFlight(store, logs, {
    branch: 'other-branch',
    jobs: [
      buildJob(repo, rev.c3!),
      testJob('test-amd64-amd64-demo', 'h3', [{ testid: 'run-tests', status: 'pass' }]),
    ],
  });
  F.now = await makeFlight(store, logs, {
    branch: BRANCH,
    harness: 'harness-2',
    jobs: [
      buildJob(repo, rev.c3!),
      testJob('test-amd64-amd64-demo', 'h1', [
        { testid: 'run-tests', status: 'fail', log: NASTY_LOG },
        { testid: 'leak-check', status: 'fail' },
        { testid: 'always-fails', status: 'fail' },
        { testid: NASTY_TESTID, status: 'broken', log: 'broken here\n' },
        { testid: 'guest-stop', status: 'blocked' },
      ]),
      testJob('test-amd64-amd64-pair', 'h2', [{ testid: 'run-tests', status: 'pass' }]),
    ],
  });
  // The same revisions again, failing the same way: judged against F.now, nothing new is wrong.
  F.later = await makeFlight(store, logs, {
    branch: BRANCH,
    harness: 'harness-2',
    jobs: [
      buildJob(repo, rev.c3!),
      testJob('test-amd64-amd64-demo', 'h1', [
        { testid: 'run-tests', status: 'fail' },
        { testid: 'leak-check', status: 'fail' },
      ]),
    ],
  });
  await store.close();
  store = await ws.openStore();
});

afterAll(async () => {
  await store?.close();
  ws?.cleanup();
});

// ---------------------------------------------------------------- the loader

describe('loadReport', () => {
  let data: ReportData;
  beforeAll(async () => {
    data = await loadReport(store, ws.config(), F.now!, { now: 42 });
  });

  it('picks the newest earlier finished flight of the same intended blessing as the baseline', () => {
    expect(data.baseline?.flight).toBe(F.base);
    expect(data.baselineWhy).toContain(`flight ${F.base}`);
    expect(data.judgement.baseline?.flight).toBe(F.base);
    expect(data.generated).toBe(42);
  });

  it('judges: a regression, like, never pass, broken, blocked', () => {
    const v = Object.fromEntries(
      data.judgement.failures.map((f) => [f.testid, `${f.verdict} ${f.refFlight ?? ''}`.trim()]),
    );
    expect(v['run-tests']).toBe(`regression ${F.base}`);
    expect(v['leak-check']).toBe(`like ${F.base}`);
    expect(v['always-fails']).toBe('never pass');
    expect(v[NASTY_TESTID]).toBe('never pass');
    expect(v['guest-stop']).toBe('blocked');
    expect(data.judgement.overall).toBe('regressions');
    expect(data.judgement.tolerable).toBe(false);
  });

  it('asks the store whether a step passed before the window: never pass means never on the branch', async () => {
    // With no window at all only the baseline is read: leak-check failed there, and passed only in
    // F.old, before it. The store finds that pass, so the failure is "like", not "never pass".
    const narrow = await loadReport(store, ws.config(), F.now!, { historyFlights: 0 });
    const v = Object.fromEntries(
      narrow.judgement.failures.map((f) => [f.testid, `${f.verdict} ${f.refFlight ?? ''}`.trim()]),
    );
    expect(v['leak-check']).toBe(`like ${F.base}`);
    expect(v['always-fails']).toBe('never pass');
    expect(v['run-tests']).toBe(`regression ${F.base}`);
  });

  it('gives versions tested against the baseline per tree', () => {
    expect(data.versions).toEqual([
      { tree: 'demo', now: rev.c3, baseline: rev.c1 },
      { tree: 'gone', now: 'abc123', baseline: 'abc123' },
    ]);
  });

  it('reads the revision log and the people in it (authors and trailers), newest first', () => {
    const demo = data.changes.find((c) => c.tree === 'demo')!;
    expect(demo).toMatchObject({ url: repo, from: rev.c1, to: rev.c3, truncated: false });
    expect(demo.error).toBeUndefined();
    expect(demo.log.map((l) => l.rev)).toEqual([rev.c3, rev.c2]);
    expect(demo.log[0]).toEqual({
      rev: rev.c3,
      author: 'Bob Builder <bob@example.invalid>',
      subject: 'third: break the test',
    });
    expect(demo.people).toEqual([
      'Alice Author <alice@example.invalid>',
      'Bob Builder <bob@example.invalid>',
      'Carol Acker <carol@example.invalid>',
      'Dave Reviewer <dave@example.invalid>',
      'Erin Tester <erin@example.invalid>',
    ]);
  });

  it('bounds the log, and says so', async () => {
    const d = await loadReport(store, ws.config(), F.now!, { logBound: 1 });
    const demo = d.changes.find((c) => c.tree === 'demo')!;
    expect(demo.log.map((l) => l.rev)).toEqual([rev.c3]);
    expect(demo.truncated).toBe(true);
  });

  it('reports a tree it cannot read in the data instead of failing', async () => {
    // `gone` did not change; ask about it against a baseline where it had another revision.
    const s2 = await ws.openStore();
    try {
      const f = await makeFlight(s2, logs, {
        branch: 'gone-branch',
        jobs: [
          {
            ...buildJob(repo, rev.c1!),
            runvars: { tree_gone: '/nonexistent/gone.git', revision_gone: 'def456' },
            synth: { built_revision_gone: 'def456' },
          },
        ],
      });
      const g = await makeFlight(s2, logs, { branch: 'gone-branch', jobs: [buildJob(repo, rev.c1!)] });
      const d = await loadReport(s2, ws.config(), g, {});
      expect(d.baseline?.flight).toBe(f);
      const gone = d.changes.find((c) => c.tree === 'gone')!;
      expect(gone.from).toBe('def456');
      expect(gone.error).toMatch(/cannot read tree gone at \/nonexistent\/gone\.git/);
      expect(gone.log).toEqual([]);
    } finally {
      await s2.close();
    }
  });

  it('says what changed for each regression: trees, harness, hosts, passes elsewhere', () => {
    expect(data.whatChanged).toHaveLength(1);
    const w = data.whatChanged[0]!;
    expect(w).toMatchObject({ job: 'test-amd64-amd64-demo', testid: 'run-tests', hosts: ['h1'] });
    expect(w.harness).toEqual({ now: ['harness-2'], baseline: ['harness-1'] });
    expect(w.trees.map((t) => t.tree)).toEqual(['demo']);
    expect(w.passedElsewhere).toEqual([
      { flight: F.now, branch: BRANCH, job: 'test-amd64-amd64-pair', host: 'h2' },
      { flight: F.other, branch: 'other-branch', job: 'test-amd64-amd64-demo', host: 'h3' },
    ]);
  });

  it('takes --baseline as asked, and refuses a flight that does not exist', async () => {
    const d = await loadReport(store, ws.config(), F.now!, { baseline: F.old! });
    expect(d.baseline?.flight).toBe(F.old);
    expect(d.baselineWhy).toContain('--baseline');
    await expect(loadReport(store, ws.config(), F.now!, { baseline: 'nope' })).rejects.toThrow(ReportError);
    await expect(loadReport(store, ws.config(), 'nope')).rejects.toThrow(/no flight 'nope'/);
  });

  it('judges the first flight of a branch as a baseline test', async () => {
    const d = await loadReport(store, ws.config(), F.old!);
    expect(d.baseline).toBeNull();
    expect(d.judgement.baseline).toBeNull();
    expect(d.changes.find((c) => c.tree === 'demo')).toMatchObject({ from: null, log: [], people: [] });
  });

  it('reads allow files from AllowDir', async () => {
    writeFileSync(join(ws.dir, `allow.${BRANCH}`), 'test-@-@-demo run-tests\n');
    try {
      const d = await loadReport(store, ws.config(), F.now!);
      const f = d.judgement.failures.find((x) => x.testid === 'run-tests')!;
      expect(f.allowed).toMatchObject({ line: 1, pattern: 'test-@-@-demo run-tests' });
      expect(f.blocking).toBe(false);
    } finally {
      writeFileSync(join(ws.dir, `allow.${BRANCH}`), '');
    }
  });
});

// ---------------------------------------------------------------- JUnit

describe('JUnit XML', () => {
  it('is well-formed, escapes everything, and maps statuses the way CI readers expect', async () => {
    const data = await loadReport(store, ws.config(), F.now!);
    const xml = await renderJunit(data, { logsDir: logs });
    // biome-ignore lint/suspicious/noControlCharactersInRegex: no control character may be left
    expect(xml).not.toMatch(/[\u0000-\u0008\u000B\u000C\u000E-\u001F]/);
    const root = parseXml(xml);
    expect(root.name).toBe('testsuites');
    const suites = all(root, 'testsuite');
    expect(suites.map((s) => s.attrs.name)).toEqual([
      'build-amd64',
      'test-amd64-amd64-demo',
      'test-amd64-amd64-pair',
    ]);
    const demo = suites[1]!;
    expect(demo.attrs).toMatchObject({
      tests: '6',
      failures: '3',
      errors: '1',
      skipped: '1',
      hostname: 'h1',
    });
    const cases = all(demo, 'testcase');
    expect(cases.every((c) => c.attrs.classname === 'test-amd64-amd64-demo')).toBe(true);
    const byName = new Map(cases.map((c) => [c.attrs.name, c]));
    const runTests = byName.get('run-tests')!;
    expect(runTests.attrs.time).toBe('2.500');
    const failure = all(runTests, 'failure')[0]!;
    expect(failure.attrs.message).toBe(`fail REGR. vs. ${F.base}`);
    const out = all(runTests, 'system-out')[0]!.text;
    expect(out).toContain(`log: ${join(logs, F.now!, 'test-amd64-amd64-demo', '2.log')}`);
    expect(out).toContain('<script>alert("x")</script> ]]> & \u241b[31mred\u2400');
    // The testid's control character becomes its picture; the rest comes back as written.
    const nasty = byName.get('odd/<script>"\'&]]>\u2401')!;
    expect(all(nasty, 'error')[0]!.attrs).toMatchObject({ type: 'broken', message: 'broken never pass' });
    expect(all(byName.get('guest-stop')!, 'skipped')).toHaveLength(1);
    expect(root.attrs).toMatchObject({ tests: '10', failures: '3', errors: '1', skipped: '1' });
  });

  it('stays well-formed for a job-level failure and without log tails', async () => {
    const data = await loadReport(store, ws.config(), F.now!);
    data.jobs.push({ flight: F.now!, job: 'test-x', recipe: 'r', status: 'broken', steps: [], runvars: [] });
    data.judgement.failures.push({
      job: 'test-x',
      testid: '<none executed>',
      status: 'broken',
      verdict: 'none executed',
      blocking: true,
      reason: 'the job is broken & no step ran',
      text: 'broken',
    });
    const x = parseXml(junitXml(data));
    const c = all(x, 'testcase').find((t) => t.attrs.classname === 'test-x')!;
    expect(c.attrs.name).toBe('<none executed>');
    expect(all(c, 'error')[0]!.text).toBe('the job is broken & no step ran');
  });
});

// ---------------------------------------------------------------- the email

describe('email', () => {
  it('renders the subject shapes and the body sections', async () => {
    const data = await loadReport(store, ws.config(), F.now!);
    const m = renderEmail(data);
    expect(m.subject).toBe(`[${BRANCH} test] ${F.now}: regressions - trouble: broken/pass`);
    for (const s of [
      `flight ${F.now} ${BRANCH}`,
      'Regressions :-(',
      'Tests which did not succeed and are blocking,',
      'Tests which did not succeed, but are not blocking:',
      'version targeted for testing:',
      'baseline version:',
      'People who touched revisions under test:',
      '  Carol Acker <carol@example.invalid>',
      'jobs:',
      ' test-amd64-amd64-demo  broken',
      'What changed, for each regression:',
      `   flight ${F.other} (other-branch) test-amd64-amd64-demo on h3`,
      'Not pushing.',
      'Revision log:',
      `  ${rev.c3!.slice(0, 12)} third: break the test (Bob Builder <bob@example.invalid>)`,
      '  abc123 (unchanged since the baseline)',
    ]) {
      expect(m.text).toContain(s);
    }
    expect(m.text).toMatch(/ test-amd64-amd64-demo +2 run-tests +fail REGR\. vs\. \d+/);
    expect(renderEmail(data, { pushed: true }).subject).toMatch(/ - PUSHED$/);

    const later = await loadReport(store, ws.config(), F.later!);
    const t = renderEmail(later);
    expect(later.baseline?.flight).toBe(F.now);
    expect(t.subject).toBe(`[${BRANCH} test] ${F.later}: tolerable FAIL`);
    expect(t.text).toContain('Failures :-/ but no regressions.');
    expect(t.text).toContain('(none: nothing changed since the baseline)');
    expect(t.text).not.toContain('Not pushing.');
  });

  it('builds an RFC 5322 message', async () => {
    const data = await loadReport(store, ws.config(), F.now!);
    const raw = (
      await buildMessage(
        renderEmail(data),
        { from: 'osstest@example.invalid', to: ['list@example.invalid'] },
        data,
      )
    ).toString();
    expect(raw).toMatch(/\r\n\r\n/);
    const { headers, body } = readMessage(raw);
    expect(headers.get('subject')).toBe(`[${BRANCH} test] ${F.now}: regressions - trouble: broken/pass`);
    expect(headers.get('from')).toBe('osstest@example.invalid');
    expect(headers.get('to')).toBe('list@example.invalid');
    expect(headers.get('x-osstest-verdict')).toBe('regressions');
    expect(headers.get('message-id')).toMatch(/^<.+@.+>$/);
    expect(body).toContain('People who touched revisions under test:');
  });
});

// ---------------------------------------------------------------- the CLI

describe('osstest report-flight', () => {
  it('exits 1 for regressions, 0 when tolerable, 2 when it cannot report; --json carries the report', async () => {
    const bad = await ws.cli(['report-flight', F.now!, '--json']);
    expect(bad.stderr).toBe('');
    expect(bad.code).toBe(1);
    const j = JSON.parse(bad.stdout) as {
      format: string;
      tolerable: boolean;
      overall: string;
      report: {
        baseline: { flight: string };
        whatChanged: unknown[];
        changes: { tree: string; people: string[] }[];
      };
    };
    expect(j).toMatchObject({ format: 'osstest-judgement/1', tolerable: false, overall: 'regressions' });
    expect(j.report.baseline.flight).toBe(F.base);
    expect(j.report.whatChanged).toHaveLength(1);
    expect(j.report.changes.find((c) => c.tree === 'demo')!.people).toHaveLength(5);

    const good = await ws.cli(['sg-report-flight', F.later!]);
    expect(good.code).toBe(0);
    expect(good.stdout).toContain('Failures :-/ but no regressions.');

    const none = await ws.cli(['report-flight', 'no-such-flight']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("no flight 'no-such-flight'");
  });

  it('writes --junit, --mro and --email files', async () => {
    const dir = join(ws.dir, 'out');
    mkdirSync(dir, { recursive: true });
    const r = await ws.cli([
      'report-flight',
      F.now!,
      '--baseline',
      F.old!,
      '--junit',
      join(dir, 'junit.xml'),
      '--mro',
      join(dir, 'flight.mro'),
      '--email',
      join(dir, 'mail.eml'),
    ]);
    expect(r.code, r.stderr).toBe(1);
    expect(all(parseXml(readFileSync(join(dir, 'junit.xml'), 'utf8')), 'testsuite')).toHaveLength(3);
    const mro = readFileSync(join(dir, 'flight.mro'), 'utf8');
    expect(mro).toContain(`regression test-amd64-amd64-demo run-tests ${F.base}`);
    const { headers, body } = readMessage(readFileSync(join(dir, 'mail.eml'), 'utf8'));
    expect(headers.get('subject')).toMatch(/: regressions - /);
    expect(headers.get('from')).toBe('osstest@localhost');
    expect(body).toContain(`Baseline: flight ${F.old}, as asked (--baseline)`);
  });

  it('--html writes the flight grid and a page per job', async () => {
    const dir = join(ws.dir, 'html');
    const r = await ws.cli(['report-flight', F.later!, '--html', dir]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const jobs = readdirSync(join(dir, F.later!), { withFileTypes: true }).filter((d) => d.isDirectory());
    expect(r.stdout).toContain(`wrote ${jobs.length + 1} page(s) under ${dir}`);
    const grid = readFileSync(join(dir, F.later!, 'index.html'), 'utf8');
    expect(grid).toContain('Failures :-/ but no regressions');
    expect(jobs.map((d) => d.name).sort()).toEqual(
      [...grid.matchAll(/data-job-status="([^"]+)"/g)].map((m) => m[1]).sort(),
    );
    for (const d of jobs)
      expect(readFileSync(join(dir, F.later!, d.name, 'index.html'), 'utf8')).toContain('<h1>');
  });

  it('--send without ReportTo is a clear config error', async () => {
    const r = await ws.cli(['report-flight', F.later!, '--send']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('ReportTo names no recipient');
  });
});

// ---------------------------------------------------------------- SMTP on loopback

describe('sending through SMTP', () => {
  it('delivers the report to a real SMTP server on 127.0.0.1', async () => {
    const received: { from: string; to: string[]; raw: string }[] = [];
    const server = new SMTPServer({
      authOptional: true,
      // No TLS here: the server would offer a self-signed certificate the client rightly refuses.
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onData(stream, session, done) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          received.push({
            from: session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address,
            to: session.envelope.rcptTo.map((r) => r.address),
            raw: Buffer.concat(chunks).toString('utf8'),
          });
          done();
        });
      },
    });
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const port = (server.server.address() as AddressInfo).port;
    try {
      const r = await ws.cli(['report-flight', F.now!, '--send'], {
        OSSTEST_CONFIG: `${ws.configFile}:${writeMailConfig(port)}`,
      });
      expect(r.code, r.stderr).toBe(1);
      expect(r.stdout).toContain('sent to list@example.invalid, me@example.invalid through 127.0.0.1:');
      expect(received).toHaveLength(1);
      const m = received[0]!;
      expect(m.from).toBe('reports@example.invalid');
      expect(m.to).toEqual(['list@example.invalid', 'me@example.invalid']);
      const { headers, body } = readMessage(m.raw);
      expect(headers.get('subject')).toBe(`[${BRANCH} test] ${F.now}: regressions - trouble: broken/pass`);
      expect(headers.get('to')).toBe('list@example.invalid, me@example.invalid');
      expect(body).toContain('Regressions :-(');
      expect(body).toContain('  Erin Tester <erin@example.invalid>');
      expect(body).toMatch(/ test-amd64-amd64-demo +2 run-tests +fail REGR\. vs\. \d+/);
    } finally {
      await new Promise<void>((res) => server.close(() => res()));
    }
  });
});

function writeMailConfig(port: number): string {
  const file = join(ws.dir, 'mail.config');
  writeFileSync(
    file,
    [
      'SmtpHost 127.0.0.1',
      `SmtpPort ${port}`,
      'ReportFrom reports@example.invalid',
      'ReportTo list@example.invalid, me@example.invalid',
      '',
    ].join('\n'),
  );
  return file;
}

// ---------------------------------------------------------------- trees given by URL

describe('trees given by URL', () => {
  it('are mirrored into Repos, fetched again only for what is missing, and errors are data', async () => {
    const reposDir = join(ws.dir, 'url-repos');
    const url = `file://${repo}`;
    const first = await treeChange({ tree: 'demo', url, from: rev.c1!, to: rev.c3! }, { reposDir });
    expect(first.error).toBeUndefined();
    expect(first.log.map((l) => l.rev)).toEqual([rev.c3, rev.c2]);
    expect(readdirSync(join(reposDir, 'mirrors'))).toHaveLength(1);
    // A commit made after the mirror was cloned: the mirror lacks it and must fetch.
    const c4 = await commit(repo, 'd', 'fourth: after the mirror', ALICE);
    const next = await treeChange({ tree: 'demo', url, from: rev.c3!, to: c4 }, { reposDir });
    expect(next.error).toBeUndefined();
    expect(next.log).toEqual([
      { rev: c4, author: 'Alice Author <alice@example.invalid>', subject: 'fourth: after the mirror' },
    ]);
    const missing = await treeChange({ tree: 'demo', url, from: rev.c1!, to: 'f'.repeat(40) }, { reposDir });
    expect(missing.error).toMatch(/revision f{40} is not in file:/);
    const refused = await treeChange(
      { tree: 'demo', url: '--upload-pack=touch /tmp/x', from: 'a', to: 'b' },
      { reposDir },
    );
    expect(refused.error).toMatch(/refusing URL/);
  });
});
