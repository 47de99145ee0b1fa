/**
 * The bisection's report: an HTML page (the graph, the trees, the per-tree verdict — bug
 * introduced at X, not present at Y, the log between — the flights and the replayable log) and
 * the email, whose subject is the original's `[<branch> bisection] complete <job>`.
 *
 * The page is an eta template with auto-escaping: every value is written with `<%= %>`; nothing
 * is written raw. The graph is linked as graph.svg (an <img>), never inlined, so no text from a
 * repository or the database reaches the page unescaped.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Eta } from 'eta';
import type { Bisection, BisectionFlight } from '../db/types.js';
import { OUTCOME_WORDING } from './engine.js';
import { type ShortLogEntry, shortLog } from './git.js';
import { parseTupleId, type TupleGraph } from './graph.js';

export interface TreeVerdict {
  tree: string;
  url: string;
  basis: string;
  failure: string;
  /** Changes of this tree between basis and failure. */
  changes: number;
  /** Set when the culprit is in this tree: the commit that introduced the failure. */
  introduced?: string;
  /** The tree's revisions in the passing parents: "not present at". */
  notPresent?: string[];
  /** The log between notPresent[0] and introduced. */
  log?: ShortLogEntry[];
  logError?: string;
}

export interface BisectionView {
  bisection: Bisection;
  flights: readonly BisectionFlight[];
  trees: readonly TreeVerdict[];
  /** 0 while testing, else the verdict's code. */
  code: number;
  wording: string;
  /** One line: what it does now, or what it found. */
  summary: string;
  /** Tuple ids about to be tested (while running). */
  next: readonly string[];
  log: string;
  harness: { failure: readonly string[]; basis: readonly string[] };
  /** Where the page will be (for the email); optional. */
  url?: string;
  /** The graph could not be drawn (trees unreadable): why. */
  graphError?: string;
}

/** Per tree: its range and, for the culprit's tree, the verdict and the log between. */
export async function treeVerdicts(
  b: Bisection,
  graph: TupleGraph | undefined,
  repos: Readonly<Record<string, string>>,
): Promise<TreeVerdict[]> {
  const failure = b.failureTuple ? parseTupleId(b.failureTuple) : {};
  const basis = b.basisTuple ? parseTupleId(b.basisTuple) : {};
  const out: TreeVerdict[] = [];
  for (const tree of Object.keys(b.trees).sort()) {
    const v: TreeVerdict = {
      tree,
      url: b.trees[tree]!,
      basis: basis[tree] ?? '',
      failure: failure[tree] ?? '',
      changes: graph ? graph.changes.filter((c) => c.tree === tree).length : 0,
    };
    if (b.culpritTree === tree && b.culpritRev) {
      v.introduced = b.culpritRev;
      v.notPresent = b.culpritParents;
      const repo = repos[tree];
      const from = b.culpritParents[0];
      if (repo && from) {
        try {
          v.log = await shortLog(repo, from, b.culpritRev, 200);
        } catch (e) {
          v.logError = (e as Error).message;
        }
      }
    }
    out.push(v);
  }
  return out;
}

const short = (rev: string) => rev.slice(0, 12);

function shortTuple(id: string): string {
  try {
    return Object.entries(parseTupleId(id))
      .map(([t, r]) => `${t}=${short(r)}`)
      .join(' ');
  } catch {
    return id;
  }
}

const PAGE = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<meta name="generator" content="osstest"/>
<title>bisection <%= it.b.id %>: <%= it.b.branch %> <%= it.b.job %> <%= it.b.testid %></title>
<style>
body { font-family: system-ui, sans-serif; font-size: 14px; margin: 1em 2em; color: #222; }
table { border-collapse: collapse; margin: 0.3em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
code, pre, .mono { font-family: ui-monospace, monospace; font-size: 0.95em; }
.r-pass { background: #b9f0b9; } .r-fail { background: #f7a9a9; } .r-other { background: #a9cdf7; }
.verdict { font-size: 1.1em; font-weight: 600; }
img.graph { max-width: 100%; border: 1px solid #ddd; }
</style>
</head>
<body>
<h1>Bisection <%= it.b.id %>: <%= it.b.branch %> <span class="mono"><%= it.b.job %></span> <span class="mono"><%= it.b.testid %></span></h1>
<p class="verdict"><%= it.code === 0 ? 'Testing' : 'Verdict ' + it.code %>: <%= it.wording %></p>
<p><%= it.summary %></p>
<table>
<tr><th>state</th><td><%= it.b.state %></td></tr>
<tr><th>failure</th><td>flight <%= it.b.failureFlight ?? '-' %></td></tr>
<tr><th>basis</th><td>flight <%= it.b.basisFlight ?? '-' %></td></tr>
<tr><th>hosts</th><td class="mono"><%= it.hosts %></td></tr>
<tr><th>flights tested</th><td><%= it.tested %></td></tr>
<% if (it.b.confidence !== null) { %><tr><th>confidence</th><td><%= it.confidence %></td></tr><% } %>
<tr><th>culprit confirmed</th><td><%= it.confirmed %></td></tr>
<% if (it.harnessChanged) { %><tr><th>harness</th><td>the harness changed between basis (<%= it.harness.basis %>) and failure (<%= it.harness.failure %>)</td></tr><% } %>
</table>
<h2>Trees</h2>
<table>
<tr><th>tree</th><th>URL</th><th>basis</th><th>failure</th><th>changes</th></tr>
<% for (const t of it.trees) { %><tr><td><%= t.tree %></td><td class="mono"><%= t.url %></td><td class="mono"><%= t.basis %></td><td class="mono"><%= t.failure %></td><td><%= t.changes %></td></tr>
<% } %>
</table>
<% for (const t of it.trees) { %>
<h2>Tree <%= t.tree %></h2>
<% if (t.introduced) { %>
<table>
<tr><th>Bug is in tree</th><td><%= t.tree %> <span class="mono"><%= t.url %></span></td></tr>
<tr><th>Bug introduced</th><td class="mono"><%= t.introduced %></td></tr>
<tr><th>Bug not present</th><td class="mono"><%= (t.notPresent ?? []).join(' ') %></td></tr>
</table>
<% if (t.logError) { %><p>log unavailable: <%= t.logError %></p><% } %>
<% if (t.log && t.log.length > 0) { %>
<table>
<tr><th>commit</th><th>author</th><th>subject</th></tr>
<% for (const c of t.log) { %><tr><td class="mono"><%= c.sha %></td><td><%= c.author %></td><td><%= c.subject %></td></tr>
<% } %>
</table>
<% } %>
<% } else { %>
<p>No change in this tree is blamed (<%= t.changes %> changes between basis and failure).</p>
<% } %>
<% } %>
<h2>Revision-tuple graph</h2>
<% if (it.graphError) { %><p>no graph: <%= it.graphError %></p><% } else { %>
<p><a href="graph.svg"><img class="graph" src="graph.svg" alt="revision-tuple graph"/></a></p>
<p>As <a href="graph.dot">DOT</a>: fail red, pass green, other blue, conflicted yellow; the failure is an oval, the basis a hexagon, the target bold.</p>
<% } %>
<h2>Flights</h2>
<table>
<tr><th>flight</th><th>role</th><th>why</th><th>tuple</th><th>result</th></tr>
<% for (const f of it.flights) { %><tr><td><%= f.flight %></td><td><%= f.role %></td><td><%= f.reason ?? '' %></td><td class="mono"><%= f.tuple %></td><td class="<%= f.cls %>"><%= f.result ?? 'running' %></td></tr>
<% } %>
</table>
<% if (it.next.length > 0) { %><h2>Next</h2><ul><% for (const n of it.next) { %><li class="mono"><%= n %></li><% } %></ul><% } %>
<h2>Log</h2>
<p>Replayable with <code>osstest bisect log <%= it.b.id %></code>.</p>
<pre><%= it.log %></pre>
</body>
</html>
`;

let eta: Eta | undefined;
function engine(): Eta {
  if (!eta) {
    eta = new Eta({ autoEscape: true, useWith: false, autoTrim: [false, 'nl'], cache: true });
    eta.loadTemplate('@bisection', PAGE);
  }
  return eta;
}

function confirmedText(c: boolean | null): string {
  return c === null
    ? 'not verified'
    : c
      ? 'yes (reverting it makes the test pass)'
      : 'no (the test still fails with it reverted)';
}

export function renderBisectionPage(v: BisectionView): string {
  const b = v.bisection;
  const resultClass = (r: string | null) =>
    r === 'pass' ? 'r-pass' : r === 'fail' ? 'r-fail' : r ? 'r-other' : '';
  return engine().render('@bisection', {
    b,
    code: v.code,
    wording: v.wording,
    summary: v.summary,
    hosts: Object.entries(b.hosts)
      .map(([i, h]) => `${i}=${h}`)
      .join(' '),
    tested: v.flights.filter((f) => f.role === 'test').length,
    confidence: b.confidence === null ? '' : `${(b.confidence * 100).toFixed(2)}%`,
    confirmed: confirmedText(b.confirmed),
    harness: { basis: v.harness.basis.join(', '), failure: v.harness.failure.join(', ') },
    harnessChanged: v.harness.basis.join(',') !== v.harness.failure.join(','),
    trees: v.trees,
    flights: v.flights.map((f) => ({ ...f, tuple: shortTuple(f.tuple), cls: resultClass(f.result) })),
    next: v.next.map(shortTuple),
    log: v.log,
    graphError: v.graphError,
  });
}

const SUBJECT_WORD: Record<number, string> = {
  4: 'complete',
  8: 'unfinished',
  12: 'complete (inconsistent)',
  16: 'not reproducible',
  32: 'not possible',
};

/** The email the bisection sends when it has its verdict (plain text). */
export function bisectionEmail(v: BisectionView): { subject: string; body: string } {
  const b = v.bisection;
  const subject = `[${b.branch} bisection] ${SUBJECT_WORD[v.code] ?? 'testing'} ${b.job}`;
  const out: string[] = [
    `branch ${b.branch}`,
    `job ${b.job}`,
    `testid ${b.testid}`,
    '',
    ...v.trees.map((t) => `Tree: ${t.tree} ${t.url}`),
    '',
    `*** ${v.code === 0 ? 'Testing a revision' : ((OUTCOME_WORDING as Record<number, string>)[v.code] ?? v.wording)} ***`,
    v.summary,
  ];
  if (b.confidence !== null) out.push(`Confidence: ${(b.confidence * 100).toFixed(2)}%`);
  for (const t of v.trees) {
    if (!t.introduced) continue;
    out.push(
      '',
      `  Bug is in tree:  ${t.tree} ${t.url}`,
      `  Bug introduced:  ${t.introduced}`,
      `  Bug not present: ${(t.notPresent ?? []).join(' ')}`,
    );
    const lastFail = [...v.flights].reverse().find((f) => f.result === 'fail');
    if (lastFail) out.push(`  Last fail repro: flight ${lastFail.flight}`);
    if (t.logError) out.push('', `  (log unavailable: ${t.logError})`);
    for (const c of t.log ?? []) {
      out.push(
        '',
        `  commit ${c.sha}`,
        `  Author: ${c.author}`,
        `  Date:   ${new Date(c.time * 1000).toISOString()}`,
        '',
        `      ${c.subject}`,
      );
    }
  }
  if (v.harness.basis.join(',') !== v.harness.failure.join(',')) {
    out.push(
      '',
      `The harness changed between basis (${v.harness.basis.join(', ') || 'unknown'}) and failure (${v.harness.failure.join(', ') || 'unknown'}).`,
    );
  }
  out.push('', `Flights: ${v.flights.filter((f) => f.role === 'test').length} bisect flights.`);
  if (v.url) out.push(`For bisection revision-tuple graph see: ${v.url}`);
  out.push('', '----------------------------------------', v.log.trimEnd(), '');
  return { subject, body: out.join('\n') };
}

export interface WrittenReport {
  dir: string;
  files: string[];
  /** The email, once there is a verdict. */
  email?: { subject: string; body: string };
}

/** Writes index.html, graph.dot, graph.svg, log.txt and (with a verdict) email.txt into DIR. */
export function writeBisectionReport(
  dir: string,
  v: BisectionView,
  graph: { dot: string; svg: string } | undefined,
): WrittenReport {
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  // Each file written beside and renamed: a web server never serves half a page.
  const put = (name: string, text: string) => {
    const tmp = join(dir, `.${name}.tmp-${process.pid}`);
    writeFileSync(tmp, text);
    renameSync(tmp, join(dir, name));
    files.push(name);
  };
  if (graph) {
    put('graph.dot', graph.dot);
    put('graph.svg', graph.svg);
  }
  put('log.txt', v.log);
  const email = v.code !== 0 ? bisectionEmail(v) : undefined;
  if (email) put('email.txt', `Subject: ${email.subject}\n\n${email.body}`);
  put('index.html', renderBisectionPage(v));
  return email ? { dir, files, email } : { dir, files };
}
