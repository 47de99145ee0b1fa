/**
 * ts-run-tests [IDENT]: runs the project's `test_command` on the test host in the install prefix
 * (with $OSSTEST_INSTALL set to it and its bin/ first on $PATH). Every test the command reports
 * (TAP or automake lines) is logged as `test: NAME: pass|fail|skip`; counts go to the runvars
 * `tests_passed`, `tests_failed`, `tests_skipped`. The step fails when the command fails or any test did.
 */
import { envPrefix, shq, testcaseMain } from '../src/testcase/index.js';
import { TestTally } from '../src/testcase/test-report.js';

await testcaseMain(async (tc) => {
  const ident = tc.positional[0] ?? 'host';
  const command = await tc.mustRunvar('test_command');
  const prefix = await tc.mustRunvar(ident === 'host' ? 'install_prefix' : `${ident}_install_prefix`);
  const ssh = await tc.ssh(ident);
  const tally = new TestTally();
  const show = (lines: ReturnType<TestTally['feed']>) => {
    for (const t of lines) tc.log(`test: ${t.name}: ${t.outcome}`);
  };
  const env = envPrefix({ OSSTEST_INSTALL: prefix });
  const r = await ssh.exec(
    `cd ${shq(prefix)} && PATH=${shq(`${prefix}/bin`)}:"$PATH" ${env}sh -ec ${shq(command)}`,
    {
      allowFailure: true,
      output: (text) => {
        process.stdout.write(text);
        show(tally.feed(text));
      },
    },
  );
  show(tally.flush());
  const passed = tally.count('pass');
  const failed = tally.count('fail');
  const skipped = tally.count('skip');
  await tc.setRunvar('tests_passed', String(passed));
  await tc.setRunvar('tests_failed', String(failed));
  await tc.setRunvar('tests_skipped', String(skipped));
  tc.log(
    `tests: ${passed} passed, ${failed} failed, ${skipped} skipped; test command exit status ${r.exitCode}`,
  );
  if (r.exitCode !== 0) throw new Error(`test command failed with exit status ${r.exitCode}`);
  if (failed > 0) throw new Error(`${failed} test(s) failed`);
});
