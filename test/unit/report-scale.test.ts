import { describe, expect, it } from 'vitest';
import { parseAllowFile } from '../../src/report/allow.js';
import { judgeFlight } from '../../src/report/judge.js';
import type { FlightRecord, JobRecord, StepRecord } from '../../src/report/types.js';

/**
 * A branch history the size the loader hands over (the newest flights plus baseline and same-revision
 * flights): judging one flight must stay well inside the report's one-second budget even when every
 * job has a failure, so all of the history is indexed.
 */
function synthetic(
  flights: number,
  jobs: number,
  steps: number,
): { now: FlightRecord; history: FlightRecord[] } {
  const mk = (n: number, rev: string, failEvery: number): FlightRecord => {
    const js: JobRecord[] = [];
    for (let j = 0; j < jobs; j++) {
      const ss: StepRecord[] = [];
      for (let s = 1; s <= steps; s++) {
        ss.push({
          stepno: s,
          testid: `step-${s}/host`,
          status: (n + j + s) % failEvery === 0 ? 'fail' : 'pass',
        });
      }
      js.push({
        job: `test-amd64-${j}`,
        status: ss.some((s) => s.status === 'fail') ? 'fail' : 'pass',
        isBuild: false,
        hosts: { host: `h${(n + j) % 7}` },
        steps: ss,
      });
    }
    return {
      flight: String(n),
      branch: 'b',
      blessing: 'real',
      started: n,
      revisions: { xen: rev },
      jobs: js,
    };
  };
  const history: FlightRecord[] = [];
  for (let n = flights; n >= 1; n--) history.push(mk(n, `r${Math.floor(n / 3)}`, 13));
  return { now: mk(flights + 1, 'new', 5), history };
}

describe('judgement at scale', () => {
  // Speed is measured by bench/report, not asserted here: a loaded CI machine would make it flaky.
  it('200 flights × 50 jobs × 20 steps, a fifth of the steps failing, judged consistently', () => {
    const { now, history } = synthetic(200, 50, 20);
    const allow = parseAllowFile('test-@-1 step-1/@@\ntest-@@ nothing\n', 'allow.all');
    const j = judgeFlight({ flight: now, baseline: { revisions: { xen: 'r10' } }, history, allow });
    expect(j.failures.length).toBeGreaterThan(150);
    expect(new Set(j.failures.map((f) => f.verdict)).size).toBeGreaterThan(1);
    expect(j.warnings).toHaveLength(1);
  });
});
