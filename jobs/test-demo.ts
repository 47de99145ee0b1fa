/**
 * Recipe `test-demo`: install a build job's artefacts on the test host(s) and run the project's tests.
 * build-check (blocked) → allocate (broken) → per host: host install (broken; only hosts with an
 * InstallMethod, e.g. the virtual lab's QEMU hosts, are installed) → install the build (broken) → tests
 * (fail) → per host: capture logs (always). With `host_idents=src_host dst_host` the per-host steps run in parallel.
 */
import { hostIdentsFrom, identArgs, perHost, type Recipe } from '../src/executor/recipe.js';

const recipe: Recipe = {
  name: 'test-demo',
  description: "install the build's artefacts on the test host and run the project's test command",
  hostIdents: ({ runvars }) => hostIdentsFrom(runvars, ['host']),
  steps: ({ runvars }) => {
    const hosts = hostIdentsFrom(runvars, ['host']);
    return [
      { testcase: 'ts-build-check', onFailure: 'blocked', timeoutSeconds: 300 },
      {
        testcase: 'ts-hosts-allocate',
        args: ['+', ...hosts],
        onFailure: 'broken',
        marksRunning: true,
        waitsForHosts: true,
        timeoutSeconds: 600,
      },
      perHost(hosts, (h) => ({
        testcase: 'ts-host-install',
        args: identArgs(hosts, h, '--if-install-method'),
        onFailure: 'broken',
        timeoutSeconds: 1200,
      })),
      perHost(hosts, (h) => ({
        testcase: 'ts-install-dist',
        args: identArgs(hosts, h),
        onFailure: 'broken',
        timeoutSeconds: 1800,
      })),
      { testcase: 'ts-run-tests', args: ['+', hosts[0]!], onFailure: 'fail' },
      perHost(hosts, (h) => ({
        testcase: 'ts-logs-capture',
        args: identArgs(hosts, h),
        testid: hosts.length > 1 ? 'capture-logs/@' : 'capture-logs',
        onFailure: 'broken',
        always: true,
        timeoutSeconds: 900,
      })),
    ];
  },
};

export default recipe;
