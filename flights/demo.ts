/**
 * The `demo` family: a generic git project with one or more trees (config BranchTrees_<branch>,
 * else DemoTrees; each URL in Tree_<tree>). Per arch in DemoArchs: `build-<arch>` builds every tree with DemoBuildCommand on a
 * build host, and `test-<arch>-<arch>-demo` installs that build on a test host and runs
 * DemoTestCommand. With DemoPairTest set, `test-<arch>-<arch>-demo-pair` does the same on two
 * hosts of one equivalence class.
 */
import { branchTreeNames } from '../src/config/branches.js';
import { buildRef, type FlightFamily, type JobSpec } from '../src/flight/family.js';

const family: FlightFamily = {
  name: 'demo',
  description: 'a generic git project: build-<arch> and test-<arch>-<arch>-demo',
  // The branch's own trees when the config names them (the push gate's BranchTrees_<branch>).
  trees: (branch, config) => branchTreeNames(config, branch) ?? config.list('DemoTrees'),
  makeJobs: ({ config, revisions, trees, buildFlight }) => {
    const jobs: JobSpec[] = [];
    const names = Object.keys(trees).sort();
    const treeVars: Record<string, string> = {};
    for (const t of names) {
      treeVars[`tree_${t}`] = trees[t]!;
      treeVars[`revision_${t}`] = revisions[t]!;
    }
    for (const arch of config.list('DemoArchs')) {
      const build = `build-${arch}`;
      if (!buildFlight) {
        jobs.push({
          job: build,
          recipe: 'build',
          runvars: {
            ...treeVars,
            arch,
            build_tree: names[0]!,
            build_command: config.string('DemoBuildCommand'),
            host_hostflags: `arch-${arch},purpose-build`,
          },
        });
      }
      const common = {
        arch,
        buildjob: buildRef(build, buildFlight),
        test_command: config.string('DemoTestCommand'),
        all_hostflags: `arch-${arch},purpose-test`,
        // What the test ran against, for reports (the build job records what it built).
        ...Object.fromEntries(names.map((t) => [`revision_${t}`, revisions[t]!])),
      };
      jobs.push({ job: `test-${arch}-${arch}-demo`, recipe: 'test-demo', runvars: { ...common } });
      if (config.optString('DemoPairTest') === 'true') {
        jobs.push({
          job: `test-${arch}-${arch}-demo-pair`,
          recipe: 'test-demo',
          runvars: {
            ...common,
            host_idents: 'src_host dst_host',
            src_host_hostflags: 'equiv-1',
            dst_host_hostflags: 'equiv-1',
          },
        });
      }
    }
    return jobs;
  },
};

export default family;
