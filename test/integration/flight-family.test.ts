/**
 * The flight-family interface carries OSSTest's job matrix (OSSTEST-BEHAVIOUR §2): per-arch build
 * jobs, test jobs per (hypervisor arch, dom0 arch), a pair job on two equivalent hosts, and test
 * jobs that take their builds from another flight. A small family of that shape goes through the
 * real makeFlight into a real store.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/db/store.js';
import { buildRef, type FlightFamily, type JobSpec } from '../../src/flight/family.js';
import { makeFlight } from '../../src/flight/make-flight.js';
import { createWorkspace, type Workspace } from '../helpers/workspace.js';

const matrix: FlightFamily = {
  name: 'matrix',
  description: 'an OSSTest-shaped job matrix',
  trees: () => ['xen', 'linux'],
  makeJobs: ({ revisions, trees, buildFlight }) => {
    const jobs: JobSpec[] = [];
    const treeVars = (t: string) => ({ [`tree_${t}`]: trees[t]!, [`revision_${t}`]: revisions[t]! });
    for (const arch of ['amd64', 'i386']) {
      if (buildFlight) continue;
      const flags = `share-build-bookworm-${arch},arch-${arch},suite-bookworm,purpose-build`;
      jobs.push({
        job: `build-${arch}`,
        recipe: 'build',
        runvars: { ...treeVars('xen'), arch, host_hostflags: flags },
      });
      jobs.push({
        job: `build-${arch}-pvops`,
        recipe: 'build',
        runvars: { ...treeVars('linux'), arch, host_hostflags: flags },
      });
    }
    for (const [xen, dom0] of [
      ['amd64', 'amd64'],
      ['amd64', 'i386'],
      ['i386', 'i386'],
    ] as const) {
      const common = {
        xenbuildjob: buildRef(`build-${xen}`, buildFlight),
        kernbuildjob: buildRef(`build-${dom0}-pvops`, buildFlight),
        buildjob: buildRef(`build-${dom0}`, buildFlight),
        toolstack: 'xl',
        all_hostflags: `arch-${xen},purpose-test`,
      };
      jobs.push({ job: `test-${xen}-${dom0}-xl`, recipe: 'test-debian', runvars: common });
      jobs.push({
        job: `test-${xen}-${dom0}-pair`,
        recipe: 'test-pair',
        runvars: {
          ...common,
          host_idents: 'src_host dst_host',
          src_host_hostflags: 'equiv-1',
          dst_host_hostflags: 'equiv-1',
        },
      });
    }
    return jobs;
  },
};

let ws: Workspace;
let store: Store;
const revs = { xen: 'a'.repeat(40), linux: 'b'.repeat(40) };

beforeAll(async () => {
  ws = createWorkspace([
    'Tree_xen git://example.invalid/xen.git',
    'Tree_linux git://example.invalid/linux.git',
  ]);
  store = await ws.openStore();
});
afterAll(async () => {
  await store?.close();
  ws?.cleanup();
});

describe('flight families carry the OSSTest job matrix', () => {
  it('builds per arch, tests per (xen, dom0) arch, pair jobs on two equivalent hosts', async () => {
    const made = await makeFlight({
      store,
      config: ws.config(),
      branch: 'xen-unstable',
      blessing: 'real',
      revs,
      family: matrix,
      env: {},
    });
    const jobs = (await store.listJobs(made.flight.flight)).map((j) => j.job);
    expect(jobs).toEqual(
      expect.arrayContaining([
        'build-amd64',
        'build-i386-pvops',
        'test-amd64-i386-xl',
        'test-i386-i386-pair',
      ]),
    );
    expect(jobs).toHaveLength(4 + 6);
    const pair = await store.listRunvars(made.flight.flight, 'test-amd64-amd64-pair');
    const v = (n: string) => pair.find((r) => r.name === n)?.val;
    expect(v('host_idents')).toBe('src_host dst_host');
    expect(v('src_host_hostflags')).toBe('equiv-1');
    expect(v('kernbuildjob')).toBe('build-amd64-pvops');
    expect((await store.getRunvar(made.flight.flight, 'build-i386', 'revision_xen'))?.val).toBe(revs.xen);
  });

  it('test jobs can take their builds from another flight', async () => {
    const builds = await makeFlight({
      store,
      config: ws.config(),
      branch: 'xen-unstable',
      blessing: 'real',
      revs,
      family: matrix,
      env: {},
    });
    const tests = await makeFlight({
      store,
      config: ws.config(),
      branch: 'xen-unstable',
      blessing: 'real',
      revs,
      family: matrix,
      buildFlight: builds.flight.flight,
      env: { OSSTEST_JOBS_ONLY: 'test-*-xl' },
    });
    const jobs = await store.listJobs(tests.flight.flight);
    expect(jobs.map((j) => j.job).sort()).toEqual([
      'test-amd64-amd64-xl',
      'test-amd64-i386-xl',
      'test-i386-i386-xl',
    ]);
    const rv = await store.getRunvar(tests.flight.flight, 'test-amd64-i386-xl', 'kernbuildjob');
    expect(rv?.val).toBe(`${builds.flight.flight}.build-i386-pvops`);
  });

  it('the demo family adds a two-host pair job when asked', async () => {
    ws.configure(['DemoPairTest true']);
    const made = await makeFlight({
      store,
      config: ws.config(),
      branch: 'demo',
      blessing: 'play',
      revs: { demo: 'c'.repeat(40) },
      env: { TREE_DEMO: '/nonexistent/demo.git' },
    });
    const pair = await store.listRunvars(made.flight.flight, 'test-amd64-amd64-demo-pair');
    expect(pair.find((r) => r.name === 'host_idents')?.val).toBe('src_host dst_host');
    expect(pair.find((r) => r.name === 'buildjob')?.val).toBe('build-amd64');
  });
});
