/**
 * ts-host-powercycle [IDENT]: power cycles the host with its PowerMethod (off, a pause, on) and waits
 * for ssh and the boot-complete marker of a new boot.
 */
import { testcaseMain } from '../src/testcase/index.js';
import { powercycleTestHost } from '../src/testcase/provision.js';

await testcaseMain(async (tc) => {
  const ident = tc.positional[0] ?? 'host';
  const r = await powercycleTestHost(tc, ident);
  await tc.setRunvar(`${ident}_powercycle_seconds`, r.seconds.toFixed(1));
});
