/**
 * The HTML pages: escaping of every field by construction (each page is parsed as XML and must hold
 * only the elements and attributes our templates write), grid order and colours, verdict links, the
 * job page's parts, the history pages and their SVG pictures, and where the pages are written.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { SaxesParser } from 'saxes';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type BranchHistory,
  type HostHistory,
  type JobHistory,
  pathSegment,
  renderBranchPage,
  renderFlightGrid,
  renderFlightList,
  renderHostHistory,
  renderJobHistory,
  renderJobPage,
  writeFlightPages,
} from '../../src/report/html/index.js';
import { testidOrder } from '../../src/report/html/order.js';
import { TEMPLATE_DIR } from '../../src/report/html/templates.js';
import { type JobSpec, reportData, XSS_IMG, XSS_SCRIPT } from './html-fixtures.js';

const PAYLOADS = [XSS_SCRIPT, XSS_IMG, "'-alert(1)-'", 'javascript:alert(1)'];

/** What the templates may write: anything else in a page came from data that escaped escaping. */
const ELEMENTS = new Set(
  'html head meta title style body nav a h1 h2 p span table thead tbody tr th td ul li svg line text polyline circle rect main pre noscript script'.split(
    ' ',
  ),
);

interface Parsed {
  elements: { name: string; attrs: Record<string, string> }[];
  text: string;
}

/** Parses a page as XML (our pages are well-formed); throws on any syntax error. */
function parse(html: string): Parsed {
  const p = new SaxesParser({ xmlns: false });
  const out: Parsed = { elements: [], text: '' };
  let err: Error | undefined;
  p.on('error', (e) => {
    err ??= e;
  });
  p.on('opentag', (t) => {
    out.elements.push({ name: t.name, attrs: t.attributes as Record<string, string> });
  });
  p.on('text', (t) => {
    out.text += t;
  });
  p.write(html).close();
  if (err) throw err;
  return out;
}

function expectSafe(html: string, o: { scripts?: string[] } = {}): Parsed {
  const doc = parse(html);
  for (const e of doc.elements) {
    expect(ELEMENTS.has(e.name), `element <${e.name}>`).toBe(true);
    for (const [name, val] of Object.entries(e.attrs)) {
      expect(name.toLowerCase().startsWith('on'), `attribute ${name} on <${e.name}>`).toBe(false);
      if (name === 'href' || name === 'src') {
        // Relative paths only: nothing that a browser would take as a scheme.
        expect(val, `${name} of <${e.name}>`).toMatch(/^(\.\.?\/|[A-Za-z0-9%_][A-Za-z0-9._~%+-]*\/|#)[^:]*$/);
      }
    }
  }
  const scripts = doc.elements.filter((e) => e.name === 'script').map((e) => e.attrs.src ?? '(inline)');
  expect(scripts).toEqual(o.scripts ?? []);
  for (const p of PAYLOADS) {
    if (p.includes('<')) expect(html.includes(p), `raw ${p}`).toBe(false);
  }
  return doc;
}

/** A flight where hostile text is in every field the pages show. */
function hostile() {
  const jobs: JobSpec[] = [
    {
      job: `build-${XSS_SCRIPT}`,
      recipe: XSS_IMG,
      steps: [
        { testid: 'build', status: 'pass', testcase: `ts-${XSS_IMG}` },
        { testid: 'capture-logs', status: 'pass', testcase: 'ts-logs-capture' },
      ],
      runvars: { [`tree_${XSS_SCRIPT}`]: XSS_IMG },
      synth: { built_revision_xen: XSS_SCRIPT, host: XSS_IMG },
    },
    {
      job: XSS_IMG,
      steps: [
        { testid: 'hosts-allocate', status: 'pass' },
        { testid: XSS_SCRIPT, status: 'fail', logPath: `101/x/${XSS_SCRIPT}.log` },
        { testid: `${XSS_IMG}/host`, status: 'broken' },
      ],
      runvars: { host: 'box1', javascript: 'javascript:alert(1)' },
    },
  ];
  const d = reportData('101', jobs);
  d.versions.push({ tree: XSS_SCRIPT, now: XSS_IMG, baseline: "'-alert(1)-'" });
  d.judgement.warnings.push(XSS_SCRIPT);
  d.baselineWhy = XSS_IMG;
  d.flight.branch = XSS_IMG;
  d.flight.blessing = XSS_SCRIPT;
  return d;
}

describe('escaping', () => {
  it('the flight grid shows hostile job names, testids, recipes, versions and verdicts as text', () => {
    const d = hostile();
    const doc = expectSafe(renderFlightGrid(d));
    expect(doc.text).toContain(`build-${XSS_SCRIPT}`);
    expect(doc.text).toContain(XSS_IMG);
    expect(doc.text).toContain(XSS_SCRIPT);
    // Links built from hostile names stay relative paths with every name percent-encoded.
    const hrefs = doc.elements.filter((e) => e.name === 'a').map((e) => e.attrs.href);
    expect(hrefs).toContain(`../101/${encodeURIComponent(pathSegment(XSS_IMG))}/`);
    expect(hrefs.some((h) => h?.includes('<'))).toBe(false);
  });

  it('the job page shows hostile runvars, scripts, log paths and host names as text', () => {
    const d = hostile();
    for (const j of d.jobs) {
      const html = renderJobPage(d, j, {
        logs: [{ path: `101/x/serial-${XSS_SCRIPT}.log`, name: `serial-${XSS_SCRIPT}.log`, size: 10 }],
        stash: [{ path: `101/x/${XSS_IMG}`, name: XSS_IMG, size: 2048 }],
      });
      const doc = expectSafe(html);
      expect(doc.text).toContain(j.job);
      for (const r of j.runvars) {
        expect(doc.text).toContain(r.name);
        expect(doc.text).toContain(r.val);
      }
      expect(doc.text).toContain(`serial-${XSS_SCRIPT}.log`);
    }
  });

  it('the history, branch and flight list pages escape theirs', () => {
    const h: JobHistory = {
      job: XSS_SCRIPT,
      branch: XSS_IMG,
      scanned: 3,
      limit: 100,
      rows: [
        {
          flight: XSS_IMG,
          branch: XSS_SCRIPT,
          blessing: 'real',
          started: 1000,
          status: 'fail',
          firstFailure: { stepno: 2, testid: XSS_SCRIPT, status: 'fail' },
          duration: 5000,
          hosts: [{ ident: XSS_IMG, host: XSS_SCRIPT }],
          revisions: { [XSS_SCRIPT]: XSS_IMG },
          steps: [{ stepno: 2, testid: XSS_SCRIPT, status: 'fail' }],
        },
      ],
    };
    expectSafe(renderJobHistory(h));
    const host: HostHistory = {
      host: XSS_SCRIPT,
      known: false,
      flags: [XSS_IMG],
      limit: 100,
      rows: [
        {
          flight: XSS_IMG,
          job: XSS_SCRIPT,
          role: XSS_IMG,
          allocated: 1,
          released: 2,
          branch: XSS_SCRIPT,
          status: 'pass',
        },
      ],
    };
    expectSafe(renderHostHistory(host));
    const b: BranchHistory = {
      branch: XSS_SCRIPT,
      limit: 100,
      rows: [
        {
          flight: XSS_IMG,
          blessing: XSS_SCRIPT,
          intended: 'real',
          created: 1,
          started: null,
          jobs: 1,
          counts: { [XSS_SCRIPT]: 1 },
          outcome: XSS_IMG,
          verdict: { heading: XSS_SCRIPT, overall: 'regressions', tolerable: false },
        },
      ],
    };
    expectSafe(renderBranchPage(b));
    expectSafe(
      renderFlightList({
        limit: 100,
        branch: XSS_SCRIPT,
        flights: [
          {
            flight: XSS_IMG,
            seq: 1,
            branch: XSS_SCRIPT,
            intended: 'real',
            blessing: XSS_IMG,
            created: 0,
            started: null,
            jobs: 0,
            outcome: 'no jobs',
          },
        ],
      }),
    );
  });

  it('templates write data only escaped: raw output is for includes and the layout body only', () => {
    const files = readdirSync(TEMPLATE_DIR).filter((f) => f.endsWith('.eta'));
    expect(files.length).toBeGreaterThan(8);
    for (const f of files) {
      const t = readFileSync(join(TEMPLATE_DIR, f), 'utf8');
      for (const m of t.matchAll(/<%~\s*([^%]*)%>/g)) {
        expect(m[1]!.trim(), `${f}: ${m[0]}`).toMatch(/^(include\('_[a-z-]+', [A-Za-z.]+\)|it\.body)$/);
      }
      // No data inside script or style elements, nor in event-handler attributes.
      for (const m of t.matchAll(/<(script|style)\b[^>]*>([\s\S]*?)<\/\1>/g)) {
        expect(m[2]!.includes('<%'), `${f}: data inside <${m[1]}>`).toBe(false);
      }
      expect(/\son[a-z]+\s*=/i.test(t), `${f}: event-handler attribute`).toBe(false);
    }
  });
});

describe('flight grid', () => {
  const jobs: JobSpec[] = [
    {
      job: 'build-amd64',
      recipe: 'build',
      steps: [
        { testid: 'hosts-allocate', status: 'pass' },
        { testid: 'build', status: 'pass' },
        { testid: 'capture-logs', status: 'pass', testcase: 'ts-logs-capture' },
      ],
    },
    {
      job: 'test-amd64-xl',
      steps: [
        { testid: 'hosts-allocate', status: 'pass' },
        { testid: 'install-dist', status: 'pass' },
        { testid: 'guest-start', status: 'fail' },
        { testid: 'guest-stop', status: 'blocked' },
        { testid: 'capture-logs', status: 'pass', testcase: 'ts-logs-capture' },
      ],
    },
    {
      job: 'test-amd64-pair',
      steps: [
        { testid: 'hosts-allocate', status: 'pass' },
        { testid: 'install-dist/src_host', status: 'pass' },
        { testid: 'install-dist', status: 'broken' },
        { testid: 'capture-logs/src_host', status: 'pass', testcase: 'ts-logs-capture' },
      ],
    },
  ];

  it('orders rows by a merge of every job step order, log capture last', () => {
    const d = reportData('200', jobs);
    const doc = parse(renderFlightGrid(d));
    const rows = doc.elements.filter((e) => e.name === 'th' && e.attrs.class === 'testid');
    expect(rows.length).toBe(8);
    const html = renderFlightGrid(d);
    const order = [...html.matchAll(/<th class="testid" scope="row">([^<]*)<\/th>/g)].map((m) => m[1]);
    expect(order).toEqual([
      'hosts-allocate',
      'build',
      'install-dist/src_host',
      'install-dist',
      'guest-start',
      'guest-stop',
      'capture-logs',
      'capture-logs/src_host',
    ]);
  });

  it('testidOrder respects each job, breaks cycles stably, and puts capture-logs last', () => {
    expect(
      testidOrder([
        [
          { testid: 'a', stepno: 1 },
          { testid: 'c', stepno: 3 },
        ],
        [
          { testid: 'b', stepno: 1 },
          { testid: 'c', stepno: 2 },
          { testid: 'capture-logs', stepno: 3 },
          { testid: 'd', stepno: 4 },
        ],
      ]),
    ).toEqual(['a', 'b', 'c', 'd', 'capture-logs']);
    const cyc = [
      [
        { testid: 'x', stepno: 1 },
        { testid: 'y', stepno: 2 },
      ],
      [
        { testid: 'y', stepno: 1 },
        { testid: 'x', stepno: 2 },
      ],
    ];
    expect(testidOrder(cyc)).toEqual(['x', 'y']);
    expect(testidOrder(cyc)).toEqual(testidOrder(cyc));
  });

  it('colours cells by status, greys missing ones, and links each to its log', () => {
    const html = renderFlightGrid(reportData('200', jobs));
    const cell = (job: string, stepno: number) =>
      new RegExp(`<td class="(s-[a-z]+)" title="${job} step ${stepno} [^"]*">(<a href="([^"]*)">)?`).exec(
        html,
      );
    expect(cell('build-amd64', 2)?.[1]).toBe('s-pass');
    expect(cell('test-amd64-xl', 3)?.[1]).toBe('s-fail');
    expect(cell('test-amd64-xl', 4)?.[1]).toBe('s-other');
    expect(cell('test-amd64-pair', 3)?.[1]).toBe('s-other');
    expect(cell('test-amd64-xl', 3)?.[3]).toBe('../../logs/200/test-amd64-xl/3.ts-x.log');
    expect(html).toContain('<td class="empty"></td>');
    expect(html).toMatch(/<td class="s-fail" data-job-status="test-amd64-xl">fail/);
  });

  it('shows the verdict of a justified failure with a link to the reference flight', () => {
    const d = reportData('200', jobs, { base: '150' });
    const html = renderFlightGrid(d);
    expect(html).toMatch(
      /title="test-amd64-xl step 3 [^"]*"><a [^>]*>fail<\/a><span class="verdict blocking">fail REGR\. vs\. <a href="\.\.\/150\/" class="ref">150<\/a><\/span>/,
    );
    expect(html).toContain('<span class="heading s-fail" id="heading">Regressions :-(</span>');
    // The failures are listed by category as in the email.
    expect(html).toContain('Tests which did not succeed and are blocking');
  });

  it('shows what changed for each regression, escaped', () => {
    const d = reportData('200', jobs, { base: '150' });
    d.whatChanged = [
      {
        job: 'test-amd64-xl',
        testid: 'guest-start',
        trees: [
          {
            tree: 'xen',
            url: '/srv/xen.git',
            from: 'a'.repeat(40),
            to: 'b'.repeat(40),
            log: [{ rev: 'b'.repeat(40), author: XSS_SCRIPT, subject: 'a change' }],
            people: [XSS_IMG],
            truncated: false,
          },
        ],
        harness: { now: ['h1'], baseline: ['h0'] },
        hosts: ['fiano0'],
        passedElsewhere: [{ flight: '199', branch: 'linux-linus', job: 'test-i386-xl', host: 'italia0' }],
      },
    ];
    const doc = expectSafe(renderFlightGrid(d));
    expect(doc.text).toContain('What changed');
    expect(doc.text).toContain('aaaaaaaaaaaa..bbbbbbbbbbbb');
    expect(doc.text).toContain(`1 commits; ${XSS_IMG}`);
    expect(doc.text).toContain('test-i386-xl in flight 199 (linux-linus) on italia0');
    expect(renderFlightGrid(reportData('200', jobs, { base: '150' }))).not.toContain('What changed');
  });

  it('shows a failure that never passed as not blocking, and a perfect flight green', () => {
    const same = reportData('201', [jobs[1]!], { baseJobs: [jobs[1]!] });
    const html = renderFlightGrid(same);
    expect(html).toMatch(
      /<td class="s-fail" [^>]*><a [^>]*>fail<\/a><span class="verdict">fail never pass<\/span><\/td>/,
    );
    const perfect = reportData('202', [jobs[0]!]);
    expect(renderFlightGrid(perfect)).toContain(
      '<span class="heading s-pass" id="heading">Perfect :-)</span>',
    );
  });

  it('shows the versions tested against the baseline, changes marked', () => {
    const html = renderFlightGrid(reportData('200', jobs));
    expect(html).toMatch(
      /<tr><td>xen<\/td><td class="mono changed">b{40}<\/td><td class="mono">a{40}<\/td><\/tr>/,
    );
    expect(html).toContain('<a href="../100/" id="baseline">100</a>');
  });
});

describe('job page', () => {
  it('lists steps with status, duration and log link, runvars by kind, files and serial logs', () => {
    const d = reportData('300', [
      {
        job: 'test-amd64-xl',
        steps: [
          { testid: 'hosts-allocate', status: 'pass' },
          { testid: 'guest-start', status: 'fail' },
          { testid: 'capture-logs', status: 'running', testcase: 'ts-logs-capture', logPath: null },
        ],
        runvars: { host: 'box1', arch: 'amd64' },
        synth: { box1_ip: '10.0.0.5' },
      },
    ]);
    const html = renderJobPage(d, 'test-amd64-xl', {
      logs: [
        { path: '300/test-amd64-xl/1.ts-x.log', name: '1.ts-x.log', size: 100 },
        { path: '300/test-amd64-xl/serial-box1.log', name: 'serial-box1.log', size: 5000 },
        { path: '300/test-amd64-xl/box1--syslog.log', name: 'box1--syslog.log', size: 1 },
      ],
      stash: [{ path: '300/test-amd64-xl/build/dist.tar.gz', name: 'build/dist.tar.gz', size: 3 << 20 }],
    });
    expectSafe(html);
    expect(html).toMatch(
      /<tr data-stepno="2"><td class="num">2<\/td><td class="mono">guest-start<\/td><td class="mono">ts-guest-start<\/td><td class="s-fail"><a href="\.\.\/\.\.\/\.\.\/logs\/300\/test-amd64-xl\/2\.ts-x\.log">fail<\/a>/,
    );
    expect(html).toContain('<td>2026-11-21 10:01:00</td><td class="num">45s</td>');
    // A running step has no log path yet and no duration.
    expect(html).toMatch(
      /<td class="s-running">running(<span [^>]*>.*<\/span>)?<\/td><td>2026-11-21 10:02:00<\/td><td class="num"><\/td>/,
    );
    expect(html).toMatch(/<td class="mono">arch<\/td><td class="runvar-val">amd64<\/td><td>definition<\/td>/);
    expect(html).toMatch(
      /<td class="mono">box1_ip<\/td><td class="runvar-val">10\.0\.0\.5<\/td><td>execution<\/td>/,
    );
    expect(html).toContain('<a href="../../../history/hosts/box1/">box1</a>');
    expect(html).toMatch(
      /<ul id="serial"><li><a href="\.\.\/\.\.\/\.\.\/logs\/300\/test-amd64-xl\/serial-box1\.log">serial-box1\.log<\/a>/,
    );
    expect(html).toContain(
      '<a href="../../../stash/300/test-amd64-xl/build/dist.tar.gz">build/dist.tar.gz</a> <span class="muted">3.0 MiB</span>',
    );
    // The step log is in the steps table, not again among the files.
    expect(html.match(/1\.ts-x\.log/g)?.length).toBe(1);
    expect(html).toContain('<a href="../../../history/jobs/test-amd64-xl/?branch=xen-unstable">');
  });
});

describe('history pages', () => {
  const row = (flight: string, status: 'pass' | 'fail', rev: string, duration: number) => ({
    flight,
    branch: 'xen-unstable',
    blessing: 'real',
    started: Number(flight) * 1000,
    status,
    firstFailure: status === 'fail' ? { stepno: 2, testid: 'guest-start', status: 'fail' as const } : null,
    duration,
    hosts: [{ ident: 'host', host: 'box1' }],
    revisions: { xen: rev, linux: 'l1' },
    steps: [
      { stepno: 1, testid: 'hosts-allocate', status: 'pass' as const },
      { stepno: 2, testid: 'guest-start', status },
    ],
  });
  const h: JobHistory = {
    job: 'test-amd64-xl',
    scanned: 10,
    limit: 100,
    rows: [row('13', 'fail', 'r3', 90_000), row('12', 'pass', 'r2', 60_000), row('11', 'pass', 'r2', 65_000)],
  };

  it('job history: first failing testid, revisions with changes marked, hosts linked', () => {
    const html = renderJobHistory(h);
    expectSafe(html);
    expect(html).toContain('<td class="mono">2 guest-start fail</td>');
    expect(html).toContain('<td class="mono changed" title="r3">r3</td>');
    expect(html).toContain('<td class="mono" title="r2">r2</td>');
    expect(html).toContain('<a href="../../../history/hosts/box1/" title="host">box1</a>');
    expect(html).toContain('<a href="../../../flights/13/">13</a>');
  });

  it('draws a well-formed duration trend and a pass-rate strip per testid', () => {
    const html = renderJobHistory(h);
    const svgs = [...html.matchAll(/<svg[\s\S]*?<\/svg>/g)].map((m) => m[0]);
    expect(svgs.length).toBe(3);
    for (const s of svgs) {
      const doc = parse(s);
      expect(doc.elements[0]?.attrs.xmlns).toBe('http://www.w3.org/2000/svg');
    }
    const trend = parse(svgs[0]!);
    const circles = trend.elements.filter((e) => e.name === 'circle');
    // Oldest on the left; the slowest run at the top of the plot.
    expect(circles.map((c) => c.attrs.class)).toEqual(['s-pass', 's-pass', 's-fail']);
    const ys = circles.map((c) => Number(c.attrs.cy));
    expect(ys[2]).toBeLessThan(ys[0]!);
    expect(ys[0]).toBeLessThan(ys[1]!);
    expect(trend.text).toContain('flight 13: fail, 1m 30s');
    const strip = parse(svgs[2]!);
    expect(strip.elements.filter((e) => e.name === 'rect').map((r) => r.attrs.class)).toEqual([
      's-pass',
      's-pass',
      's-fail',
    ]);
    expect(html).toMatch(
      /<td class="mono">guest-start<\/td><td><svg[\s\S]*?<\/svg>\n?<\/td><td class="num flake"><\/td><td class="num">2\/3 67%<\/td>/,
    );
  });

  it('job history: a flake rate per testid, counting fails at revisions that also passed', () => {
    // 14 fails at r2, where 12 and 11 passed: a flake. 13 fails at r3, which never passed: not one.
    const flaky: JobHistory = { ...h, rows: [row('14', 'fail', 'r2', 70_000), ...h.rows] };
    const html = renderJobHistory(flaky);
    expectSafe(html);
    expect(html).toMatch(
      /<td class="mono">guest-start<\/td><td><svg[\s\S]*?<\/svg>\n?<\/td><td class="num flake">flaked 1\/4<\/td><td class="num">2\/4 50%<\/td>/,
    );
    expect(html).toMatch(
      /<td class="mono">hosts-allocate<\/td><td><svg[\s\S]*?<\/svg>\n?<\/td><td class="num flake"><\/td>/,
    );
    // Without revisions nothing is a flake: the same statuses say nothing then.
    const unknown: JobHistory = { ...flaky, rows: flaky.rows.map((r) => ({ ...r, revisions: {} })) };
    expect(renderJobHistory(unknown)).not.toContain('flaked');
  });

  it('host history and branch page', () => {
    const host = renderHostHistory({
      host: 'box1',
      known: true,
      flags: ['arch-amd64'],
      limit: 100,
      rows: [
        {
          flight: '13',
          job: 'test-amd64-xl',
          role: 'src_host',
          allocated: 0,
          released: 125_000,
          branch: 'b',
          status: 'fail',
        },
        { flight: '9', job: 'gone', role: 'host', allocated: 0, released: null },
      ],
    });
    expectSafe(host);
    expect(host).toMatch(
      /<td class="mono">src_host<\/td><td>1970-01-01 00:00:00<\/td><td>2m 05s<\/td><td class="s-fail">fail<\/td>/,
    );
    expect(host).toContain('(flight deleted)');
    expect(host).toContain('still allocated');
    const branch = renderBranchPage({
      branch: 'xen-unstable',
      limit: 100,
      rows: [
        {
          flight: '13',
          blessing: 'real',
          intended: 'real',
          created: 0,
          started: 0,
          jobs: 3,
          counts: { pass: 2, fail: 1 },
          outcome: 'FAIL',
          verdict: {
            heading: 'Failures :-/ but no regressions.',
            overall: 'tolerable',
            tolerable: true,
            pushed: true,
          },
        },
      ],
    });
    expectSafe(branch);
    expect(branch).toMatch(
      /<td>1 fail, 2 pass<\/td><td class="s-fail">FAIL<\/td><td class="s-pass">Failures :-\/ but no regressions\.<\/td><td>pushed<\/td>/,
    );
  });
});

describe('writeFlightPages', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('writes the grid and one page per job under <dir>/<flight>/, hostile names kept inside', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'osstest-html-'));
    dirs.push(dir);
    const d = reportData('400', [
      { job: 'build-amd64', steps: [{ testid: 'build', status: 'pass' }] },
      { job: '../../escape', steps: [{ testid: 'x', status: 'pass' }] },
      { job: `..`, steps: [{ testid: 'x', status: 'pass' }] },
      { job: XSS_SCRIPT, steps: [{ testid: 'x', status: 'pass' }] },
    ]);
    const paths = await writeFlightPages(d, dir);
    expect(paths.map((p) => relative(dir, p))).toEqual([
      '400/index.html',
      '400/build-amd64/index.html',
      '400/%2E%2E%2F%2E%2E%2Fescape/index.html',
      '400/%2E%2E/index.html',
      `400/${pathSegment(XSS_SCRIPT)}/index.html`,
    ]);
    for (const p of paths) {
      expect(relative(dir, p).startsWith('..')).toBe(false);
      expectSafe(readFileSync(p, 'utf8'));
    }
    expect(readdirSync(join(dir, '400')).some((f) => f.includes('.tmp-'))).toBe(false);
    // The grid's link to each job page is the directory it was written in.
    const grid = readFileSync(paths[0]!, 'utf8');
    expect(grid).toContain(`href="../400/${encodeURIComponent('%2E%2E%2F%2E%2E%2Fescape')}/"`);
  });

  it('lists the job files from logsDir when given', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'osstest-html-'));
    dirs.push(dir);
    const { mkdirSync, writeFileSync, symlinkSync } = await import('node:fs');
    const logs = join(dir, 'logs');
    mkdirSync(join(logs, '401', 'build-amd64'), { recursive: true });
    writeFileSync(join(logs, '401', 'build-amd64', 'serial-box1.log'), 'boot\n');
    writeFileSync(join(logs, '401', 'build-amd64', 'box1--dmesg.log'), 'x\n');
    symlinkSync('/etc/passwd', join(logs, '401', 'build-amd64', 'passwd'));
    const d = reportData('401', [{ job: 'build-amd64', steps: [{ testid: 'build', status: 'pass' }] }]);
    const [, page] = await writeFlightPages(d, join(dir, 'results'), { logsDir: logs });
    const html = readFileSync(page!, 'utf8');
    expect(html).toContain('>serial-box1.log</a>');
    expect(html).toContain('>box1--dmesg.log</a>');
    expect(html).not.toContain('passwd');
  });
});
