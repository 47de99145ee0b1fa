/**
 * ts-install-dist [IDENT]: unpacks the build job's stashed `path_dist` on the test host under an
 * install prefix (runvar `install_prefix`, default `<Workdir>/install/<flight>.<job>`), recorded as the
 * execution runvar `install_prefix` (`<ident>_install_prefix` for other idents). A build that did not
 * pass blocks the job; a host that cannot take the files breaks it.
 */
import { join } from 'node:path';
import { shq, testcaseMain } from '../src/testcase/index.js';

await testcaseMain(async (tc) => {
  const ident = tc.positional[0] ?? 'host';
  const rel = await tc.buildOutput('path_dist');
  const ref = await tc.buildJobRef();
  const local = join(tc.config.path('Stash'), ref.flight, ref.job, rel);
  const h = await tc.host(ident);
  const ssh = await tc.ssh(ident);
  const varName = ident === 'host' ? 'install_prefix' : `${ident}_install_prefix`;
  const prefix = (await tc.runvar(varName)) ?? `${h.workdir}/install/${tc.flight}.${tc.job}`;
  const tarball = `${h.workdir}/dist-${tc.flight}.${tc.job}.tar.gz`;
  await ssh.exec(`rm -rf ${shq(prefix)} && mkdir -p ${shq(prefix)}`);
  await ssh.put(local, tarball);
  await ssh.exec(`tar -C ${shq(prefix)} -xzf ${shq(tarball)} && rm -f ${shq(tarball)}`);
  await tc.setRunvar(varName, prefix);
  const files = await ssh.exec(`cd ${shq(prefix)} && find . -type f | sort | head -50`);
  tc.log(`installed ${ref.flight}.${ref.job} ${rel} on ${h.name} in ${prefix}:\n${files.stdout.trimEnd()}`);
});
