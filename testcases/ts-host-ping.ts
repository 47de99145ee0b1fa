/**
 * ts-host-ping [IDENT]: the smallest proof that a host can be used: it answers ssh, runs a command
 * and can write its work directory. A host that cannot is the infrastructure's failure: broken.
 */
import { shq, testcaseMain } from '../src/testcase/index.js';

await testcaseMain(async (tc) => {
  const ident = tc.positional[0] ?? 'host';
  const h = await tc.host(ident);
  const ssh = await tc.ssh(ident);
  const t0 = Date.now();
  const r = await ssh.exec(
    `echo osstest-ping && mkdir -p ${shq(h.workdir)} && test -w ${shq(h.workdir)} && uname -n`,
  );
  const [first, node] = r.stdout.trim().split('\n');
  if (first !== 'osstest-ping')
    await tc.declare('broken', `${h.name} answered ${JSON.stringify(r.stdout.slice(0, 80))}`);
  tc.log(`${h.name}: answers ssh as ${node ?? '?'} (${Date.now() - t0} ms); ${h.workdir} writable`);
});
