/**
 * Reading what a project's test command says about its tests, line by line as it runs.
 * Understands TAP (`ok 3 - name`, `not ok 4 name # SKIP`, `# TODO`) and automake's
 * `PASS: name` / `FAIL: name` / `SKIP: name` / `XFAIL:` / `ERROR:` lines.
 */
export type TestOutcome = 'pass' | 'fail' | 'skip';

export interface TestLine {
  name: string;
  outcome: TestOutcome;
}

const TAP = /^(not )?ok\b\s*(\d+)?\s*(?:-\s*)?(.*?)\s*(?:#\s*(SKIP|TODO)\b.*)?$/i;
const AUTOMAKE = /^(PASS|FAIL|SKIP|XFAIL|XPASS|ERROR):\s*(.*)$/;

export function parseTestLine(line: string): TestLine | undefined {
  const t = line.trimEnd();
  const tap = TAP.exec(t);
  if (tap) {
    const directive = tap[4]?.toUpperCase();
    const name = tap[3] || `test ${tap[2] ?? '?'}`;
    if (directive === 'SKIP') return { name, outcome: 'skip' };
    // A TODO test is expected to fail; it does not count against the run.
    if (directive === 'TODO') return { name, outcome: tap[1] ? 'skip' : 'pass' };
    return { name, outcome: tap[1] ? 'fail' : 'pass' };
  }
  const am = AUTOMAKE.exec(t);
  if (am) {
    const kind = am[1]!;
    const outcome: TestOutcome =
      kind === 'PASS' || kind === 'XFAIL' ? 'pass' : kind === 'SKIP' ? 'skip' : 'fail';
    return { name: am[2]!, outcome };
  }
  return undefined;
}

export class TestTally {
  readonly results: TestLine[] = [];
  private partial = '';

  /** Feeds raw output; returns the test lines completed by this chunk. */
  feed(chunk: string): TestLine[] {
    const lines = (this.partial + chunk).split('\n');
    this.partial = lines.pop() ?? '';
    return this.take(lines);
  }

  flush(): TestLine[] {
    const rest = this.partial;
    this.partial = '';
    return rest === '' ? [] : this.take([rest]);
  }

  private take(lines: string[]): TestLine[] {
    const got = lines.map(parseTestLine).filter((x): x is TestLine => x !== undefined);
    this.results.push(...got);
    return got;
  }

  count(o: TestOutcome): number {
    return this.results.filter((r) => r.outcome === o).length;
  }
}
