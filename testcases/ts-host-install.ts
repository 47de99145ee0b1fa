/**
 * ts-host-install [IDENT]: installs the host from power-off (its InstallMethod; `ramdisk` today): power
 * off, boot config and install files written, power on, then the host's progress (DHCP lease, boot files
 * fetched, `booted`, `ssh-ready`) followed with deadlines, ending in an ssh session pinned to the host
 * key the install gave it. The serial console goes to the job's `serial-<host>.log`. A failure is the
 * host's, not the code under test's: the recipe makes the job broken.
 */
import { testcaseMain } from '../src/testcase/index.js';
import { installTestHost } from '../src/testcase/provision.js';

await testcaseMain(async (tc) => {
  const ident = tc.positional[0] ?? 'host';
  const r = await installTestHost(tc, ident);
  const uname = await r.session.exec('uname -r', { timeoutMs: 30_000 });
  await r.session.close();
  await tc.setRunvar(`${ident}_install_method`, r.method);
  await tc.setRunvar(`${ident}_install_seconds`, r.seconds.toFixed(1));
  tc.log(`${ident}: running kernel ${uname.stdout.trim()}`);
});
