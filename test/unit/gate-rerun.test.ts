/**
 * The gate's heisenbug rule (src/gate/rerun.ts applyReruns) must say exactly what judge.ts says when
 * the rerun flight is in the history: same verdicts, wording, overall verdict. So a rerun flight
 * qualifies for the judge's own rule, and the gate's shortcut for the flight it gates agrees with it.
 */
import { describe, expect, it } from 'vitest';
import { applyReruns, type RerunOutcome, rerunnable } from '../../src/gate/rerun.js';
import { judgeFlight } from '../../src/report/judge.js';
import type { FlightRecord } from '../../src/report/types.js';
import { flight, job, NEW, OLD } from './report-fixtures.js';

const baseline = flight(10, OLD, [
  job('build-amd64', { build: 'pass' }, { revisions: OLD }),
  job('test-amd64-amd64-demo', { 'run-tests': 'pass', 'capture-logs': 'pass' }, { revisions: OLD }),
  job('test-amd64-amd64-pair', { 'run-tests': 'pass' }, { revisions: OLD }),
]);

const gated = flight(11, NEW, [
  job('build-amd64', { build: 'pass' }, { revisions: NEW }),
  job('test-amd64-amd64-demo', { 'run-tests': 'fail', 'capture-logs': 'pass' }, { revisions: NEW }),
  job('test-amd64-amd64-pair', { 'run-tests': 'fail' }, { revisions: NEW }),
]);

/** The rerun flight as the loader would read it: one job, its builds those of flight 11. */
function rerunFlight(n: number, jobName: string, status: 'pass' | 'fail'): FlightRecord {
  return flight(
    n,
    NEW,
    [
      job(
        jobName,
        { 'run-tests': status, 'capture-logs': 'pass' },
        { revisions: NEW, hosts: { host: 'h2' } },
      ),
    ],
    {
      blessing: 'real-retest',
    },
  );
}

function outcome(f: FlightRecord): RerunOutcome {
  const j = f.jobs[0]!;
  return { flight: f.flight, job: j.job, status: j.status, recipe: 'test-demo', steps: j.steps };
}

const judge = (history: FlightRecord[]) =>
  judgeFlight({ flight: gated, baseline: { flight: '10', revisions: OLD }, history });

describe('gate reruns (the heisenbug rule)', () => {
  it('regressions before any rerun', () => {
    const j = judge([baseline]);
    expect(j.overall).toBe('regressions');
    expect(j.failures.filter(rerunnable).map((f) => f.job)).toEqual([
      'test-amd64-amd64-demo',
      'test-amd64-amd64-pair',
    ]);
  });

  it('a rerun that passed: the same judgement as the judge gives with the rerun flight in the history', () => {
    const r12 = rerunFlight(12, 'test-amd64-amd64-demo', 'pass');
    const r13 = rerunFlight(13, 'test-amd64-amd64-pair', 'fail');
    const before = judge([baseline]);
    const byGate = applyReruns(before, [outcome(r12), outcome(r13)]);
    const byJudge = judge([r13, r12, baseline]);
    const pick = (x: typeof byGate) => ({
      overall: x.overall,
      heading: x.heading,
      tolerable: x.tolerable,
      failures: x.failures.map((f) => ({
        job: f.job,
        testid: f.testid,
        verdict: f.verdict,
        refFlight: f.refFlight,
        blocking: f.blocking,
        text: f.text,
      })),
    });
    expect(pick(byGate)).toEqual(pick(byJudge));
    const demo = byGate.failures.find((f) => f.job === 'test-amd64-amd64-demo')!;
    expect(demo).toMatchObject({
      verdict: 'pass in',
      refFlight: '12',
      blocking: false,
      text: 'fail pass in 12',
    });
    expect(byGate.overall).toBe('regressions');
    // The judgement given is left as it was.
    expect(before.failures.find((f) => f.job === 'test-amd64-amd64-demo')!.verdict).toBe('regression');
  });

  it('every blocking failure passing on rerun makes the flight tolerable', () => {
    const j = applyReruns(judge([baseline]), [
      outcome(rerunFlight(12, 'test-amd64-amd64-demo', 'pass')),
      outcome(rerunFlight(12, 'test-amd64-amd64-pair', 'pass')),
    ]);
    expect(j.tolerable).toBe(true);
    expect(j.overall).toBe('tolerable');
    expect(j.heading).toBe('Failures :-/ but no regressions.');
  });

  it('a rerun of another job, or one that failed again, changes nothing', () => {
    const before = judge([baseline]);
    const j = applyReruns(before, [outcome(rerunFlight(12, 'test-amd64-amd64-pair', 'fail'))]);
    expect(j.failures.map((f) => f.verdict)).toEqual(before.failures.map((f) => f.verdict));
    expect(j.tolerable).toBe(false);
  });
});
