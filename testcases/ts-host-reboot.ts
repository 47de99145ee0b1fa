/**
 * ts-host-reboot [IDENT]: reboots the host from inside (`reboot` over ssh), waits for it to go down,
 * then for ssh and the boot-complete marker of a new boot (its boot id differs from the old one).
 */
import { testcaseMain } from '../src/testcase/index.js';
import { rebootTestHost } from '../src/testcase/provision.js';

await testcaseMain(async (tc) => {
  const ident = tc.positional[0] ?? 'host';
  const r = await rebootTestHost(tc, ident);
  await tc.setRunvar(`${ident}_reboot_seconds`, r.seconds.toFixed(1));
});
