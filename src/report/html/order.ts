/**
 * The order of the flight grid's rows (OSSTEST-BEHAVIOUR §8): every job's testids in its step order,
 * merged into one order that respects each job's wherever they agree (a topological sort of "comes
 * after" from consecutive steps), log capture last.
 *
 * Ties, and cycles (two jobs running the same two testids in opposite orders), are broken by where a
 * testid was first seen, taking the jobs in the order given: the result is stable for the same input.
 */

/** Steps that collect logs go to the bottom of the grid, whatever their step numbers. */
export function isCaptureLogs(testid: string, testcase?: string): boolean {
  return (
    testcase === 'ts-logs-capture' ||
    testid === 'capture-logs' ||
    testid.startsWith('capture-logs/') ||
    testid.startsWith('capture-logs(')
  );
}

export interface OrderedStep {
  testid: string;
  stepno: number;
  testcase?: string;
}

export function testidOrder(jobs: readonly (readonly OrderedStep[])[]): string[] {
  const firstSeen = new Map<string, number>();
  const capture = new Set<string>();
  const after = new Map<string, Set<string>>();
  const indegree = new Map<string, number>();

  const sequences = jobs.map((steps) => [...steps].sort((a, b) => a.stepno - b.stepno));
  for (const steps of sequences) {
    for (const s of steps) {
      if (!firstSeen.has(s.testid)) firstSeen.set(s.testid, firstSeen.size);
      if (isCaptureLogs(s.testid, s.testcase)) capture.add(s.testid);
    }
  }
  const main = [...firstSeen.keys()].filter((t) => !capture.has(t));
  for (const t of main) {
    after.set(t, new Set());
    indegree.set(t, 0);
  }
  for (const steps of sequences) {
    const seq = steps.map((s) => s.testid).filter((t) => !capture.has(t));
    for (let i = 1; i < seq.length; i++) {
      const a = seq[i - 1]!;
      const b = seq[i]!;
      if (a === b) continue;
      const succ = after.get(a)!;
      if (succ.has(b)) continue;
      succ.add(b);
      indegree.set(b, (indegree.get(b) ?? 0) + 1);
    }
  }

  const rank = (t: string): number => firstSeen.get(t) ?? 0;
  const out: string[] = [];
  const done = new Set<string>();
  // Kahn's algorithm, taking the earliest-seen ready testid each time; the grids are small (tens of
  // rows), so a scan per pick is cheaper to read than a priority queue.
  while (out.length < main.length) {
    let pick: string | undefined;
    for (const t of main) {
      if (done.has(t) || (indegree.get(t) ?? 0) > 0) continue;
      if (pick === undefined || rank(t) < rank(pick)) pick = t;
    }
    // A cycle: nothing is ready, so the earliest-seen remaining testid goes next.
    pick ??= main.find((t) => !done.has(t))!;
    done.add(pick);
    out.push(pick);
    for (const b of after.get(pick) ?? []) indegree.set(b, (indegree.get(b) ?? 0) - 1);
  }
  return [...out, ...[...capture].sort((a, b) => rank(a) - rank(b))];
}
