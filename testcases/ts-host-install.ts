/**
 * ts-host-install [IDENT] [--if-install-method]: installs the host from power-off (its InstallMethod:
 * `ramdisk`, `image` or `debian-installer`, src/provision/install/): power off, boot config and install
 * files written, power on, then the host's progress (DHCP lease, boot files fetched, `booted`,
 * `ssh-ready`; for `image` also `partitioning`, `installed`, `first-boot`) followed with deadlines, ending in an ssh
 * session pinned to the host key the install gave it. The serial console goes to the job's
 * `serial-<host>.log`. A failure is the host's, not the code under test's: the recipe makes the job broken.
 *
 * With `--if-install-method` a host that has no InstallMethod property (a netns host, a machine someone
 * looks after by hand) is used as it is: the step says so and passes. Recipes that run on any kind of
 * test host (test-demo) install this way.
 */
import { testcaseMain } from '../src/testcase/index.js';
import { installTestHost } from '../src/testcase/provision.js';

const IF_METHOD = '--if-install-method';

await testcaseMain(async (tc) => {
  const ident = tc.positional.filter((a) => a !== IF_METHOD)[0] ?? 'host';
  if (tc.positional.includes(IF_METHOD)) {
    const h = await tc.host(ident);
    const method = h.prop('InstallMethod');
    if (method === undefined || method === '') {
      tc.log(`${ident}: ${h.name} has no InstallMethod: used as it is, nothing to install`);
      await tc.setRunvar(`${ident}_install_method`, 'none');
      return;
    }
  }
  const r = await installTestHost(tc, ident);
  const uname = await r.session.exec('uname -r', { timeoutMs: 30_000 });
  await r.session.close();
  await tc.setRunvar(`${ident}_install_method`, r.method);
  await tc.setRunvar(`${ident}_install_seconds`, r.seconds.toFixed(1));
  tc.log(`${ident}: running kernel ${uname.stdout.trim()}`);
});
