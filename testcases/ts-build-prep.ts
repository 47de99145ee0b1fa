/**
 * ts-build-prep [IDENT]: makes a build host ready: reachable over ssh, its work directory usable, and
 * the tools a build needs present. Any failure here is the host's, so the recipe makes it `broken`.
 */
import { shq, testcaseMain } from '../src/testcase/index.js';

await testcaseMain(async (tc) => {
  const ident = tc.positional[0] ?? 'host';
  const h = await tc.host(ident);
  const ssh = await tc.ssh(ident);
  const tools = ((await tc.runvar('build_tools')) ?? 'git tar gzip sh make').split(/\s+/).filter((t) => t);
  await ssh.exec(`mkdir -p ${shq(h.workdir)} && test -w ${shq(h.workdir)}`);
  const r = await ssh.exec(tools.map((t) => `command -v ${shq(t)} >/dev/null || echo ${shq(t)}`).join('; '));
  const missing = r.stdout.split('\n').filter((l) => l.trim() !== '');
  if (missing.length > 0) await tc.declare('broken', `${h.name} lacks ${missing.join(', ')}`);
  tc.log(`${h.name}: ready (workdir ${h.workdir}; tools ${tools.join(' ')})`);
});
