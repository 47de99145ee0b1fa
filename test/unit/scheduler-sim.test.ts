import { describe, expect, it } from 'vitest';
import { prng } from '../../src/bisect/simulate.js';
import { greedyPlan } from '../../src/scheduler/greedy.js';
import { plan } from '../../src/scheduler/planner.js';
import { type SimJob, simulateLab } from '../../src/scheduler/simulate.js';
import { HOUR, host, MIN, req } from './scheduler-fixtures.js';

const PAIR = {
  host_idents: 'src_host dst_host',
  src_host_hostflags: 'equiv-1',
  dst_host_hostflags: 'equiv-1',
};

/**
 * Two equivalent hosts; one-host jobs of an hour arrive every 25 minutes (more than the two hosts
 * can take), staggered so the two hosts never free at the same moment; a pair job arrives at 5 min.
 */
function pairAmongSingles(): SimJob[] {
  const jobs: SimJob[] = [
    {
      key: 'pair',
      req: req('pair', PAIR),
      actualMs: 2 * HOUR,
      estimateMs: 2 * HOUR,
      release: 5 * MIN,
      priority: 200,
    },
  ];
  for (let i = 0; i < 60; i++) {
    const release = i === 0 ? 0 : 5 * MIN + i * 25 * MIN;
    jobs.push({
      key: `s${String(i).padStart(2, '0')}`,
      req: req(`s${i}`),
      actualMs: HOUR,
      estimateMs: HOUR,
      release,
      priority: 200,
    });
  }
  return jobs;
}

describe('the planner against a naive allocator in a simulated lab', () => {
  const hosts = [host('e1', ['equiv-g']), host('e2', ['equiv-g'])];

  it('a pair job is starved by a stream of one-host jobs under the naive allocator, not under ours', () => {
    const until = 24 * HOUR;
    const greedy = simulateLab(pairAmongSingles(), greedyPlan, { hosts, until });
    const ours = simulateLab(pairAmongSingles(), (s) => plan(s).decisions, { hosts, until });
    // Naive: in 24 hours the pair never gets both hosts, while one-host jobs keep running.
    expect(greedy.jobs.get('pair')!.start).toBeUndefined();
    expect([...greedy.jobs.values()].filter((j) => j.status === 'pass').length).toBeGreaterThan(40);
    // Ours: booked when it arrived, it starts as soon as the job already running on e1 ends.
    expect(ours.jobs.get('pair')!.start).toBe(HOUR);
    expect(ours.jobs.get('pair')!.status).toBe('pass');
    expect(ours.jobs.get('pair')!.hosts!.sort()).toEqual(['e1', 'e2']);
  });

  it('with a starvation limit, the naive lab would have starved it; ours runs it', () => {
    const jobs = pairAmongSingles().map((j) => (j.key === 'pair' ? { ...j, starveAfterMs: 4 * HOUR } : j));
    const ours = simulateLab(jobs, (s) => plan(s).decisions, { hosts, until: 24 * HOUR });
    expect(ours.jobs.get('pair')!.status).toBe('pass');
    const tight = pairAmongSingles().map((j) => (j.key === 'pair' ? { ...j, starveAfterMs: 30 * MIN } : j));
    const starved = simulateLab(tight, (s) => plan(s).decisions, { hosts, until: 24 * HOUR });
    expect(starved.jobs.get('pair')!.status).toBe('starved');
  });

  it('random labs: every allocation satisfies its job, no host is ever held twice, every job runs', () => {
    for (let seed = 1; seed <= 5; seed++) {
      const rnd = prng(seed);
      // amd64: h0, h1 alone, h2..h7 in two groups; arm64: h8..h11 in one group.
      const labHosts = Array.from({ length: 12 }, (_, i) =>
        host(`h${i}`, [
          i < 8 ? 'arch-amd64' : 'arch-arm64',
          ...(i >= 8 ? ['equiv-arm'] : i >= 2 ? [`equiv-amd${i % 2}`] : []),
        ]),
      );
      const jobs: SimJob[] = Array.from({ length: 80 }, (_, i) => {
        const arch = rnd() < 0.7 ? 'amd64' : 'arm64';
        const pair = rnd() < 0.2;
        const actual = Math.round((20 + rnd() * 100) * MIN);
        return {
          key: `j${i}`,
          req: req(`j${i}`, { all_hostflags: `arch-${arch}`, ...(pair ? PAIR : {}) }),
          actualMs: actual,
          // Estimates off by up to ±50%: early ends, and overdue holders to re-estimate.
          estimateMs: Math.round(actual * (0.5 + rnd())),
          release: Math.round(rnd() * 4 * HOUR),
          priority: rnd() < 0.2 ? 100 : 200,
        };
      });
      const sim = simulateLab(jobs, (s) => plan(s).decisions, { hosts: labHosts });
      for (const j of jobs) {
        const r = sim.jobs.get(j.key)!;
        expect(r.status, `seed ${seed} ${j.key}`).toBe('pass');
        const arch = j.req.idents[0]!.flags.find((f) => f.startsWith('arch-'))!;
        for (const h of r.hosts!) expect(labHosts.find((x) => x.name === h)!.flags).toContain(arch);
        if (j.req.idents.length === 2) {
          const eq = r.hosts!.map((h) =>
            labHosts.find((x) => x.name === h)!.flags.find((f) => f.startsWith('equiv-')),
          );
          expect(eq[0]).toBeDefined();
          expect(eq[0]).toBe(eq[1]);
        }
      }
      // Hosts never overlap (simulateLab throws on a double allocation; check the record too).
      const spans = [...sim.jobs.values()].flatMap((r) =>
        r.hosts!.map((h) => ({ h, s: r.start!, e: r.end! })),
      );
      for (const a of spans)
        for (const b of spans)
          if (a !== b && a.h === b.h) expect(a.e <= b.s || b.e <= a.s, `seed ${seed}: ${a.h}`).toBe(true);
    }
  });
});
