/**
 * ts-host-install-twice [IDENT]: ts-host-install, tried a second time if the first attempt fails (a
 * flaky boot should not break a whole job); the second failure fails the step.
 */
import { testcaseMain } from '../src/testcase/index.js';
import { installTestHost } from '../src/testcase/provision.js';

await testcaseMain(async (tc) => {
  const ident = tc.positional[0] ?? 'host';
  let r: Awaited<ReturnType<typeof installTestHost>>;
  try {
    r = await installTestHost(tc, ident);
  } catch (err) {
    tc.log(`first install attempt failed: ${(err as Error).message}; trying once more`);
    r = await installTestHost(tc, ident);
  }
  await r.session.close();
  await tc.setRunvar(`${ident}_install_method`, r.method);
  await tc.setRunvar(`${ident}_install_seconds`, r.seconds.toFixed(1));
});
