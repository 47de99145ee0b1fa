/**
 * ts-hosts-allocate [IDENT…] [IDENT=HOST…]: gives the job its hosts (standalone mode).
 * For each ident (default `host`) the host is, in order: an `IDENT=HOST` argument, the job's
 * `IDENT` runvar, $OSSTEST_HOST_<IDENT>, config TestHost_<IDENT>, config TestHost (ident `host`);
 * failing those, the first free host in the database that has every flag the job asks for
 * (`all_hostflags` and `<IDENT>_hostflags`). The allocation is atomic: a host held by another job
 * is refused, never shared.
 */
import type { Testcase } from '../src/testcase/index.js';
import { testcaseMain } from '../src/testcase/index.js';

async function wantedFlags(tc: Testcase, ident: string): Promise<string[]> {
  return [
    ...((await tc.runvar('all_hostflags')) ?? '').split(','),
    ...((await tc.runvar(`${ident}_hostflags`)) ?? '').split(','),
  ].filter((f) => f !== '');
}

async function byFlags(tc: Testcase, wanted: string[], taken: Set<string>): Promise<string | undefined> {
  const held = new Set((await tc.store.listAllocations()).map((a) => a.host));
  for (const h of await tc.store.listHosts()) {
    if (held.has(h.name) || taken.has(h.name)) continue;
    const have = new Set(tc.config.hostFlags(h.name, h.flags));
    if (wanted.every((f) => have.has(f))) return h.name;
  }
  return undefined;
}

await testcaseMain(async (tc) => {
  const idents = tc.positional.length > 0 ? tc.positional : ['host'];
  const taken = new Set<string>();
  for (const ident of idents) {
    const wanted = await wantedFlags(tc, ident);
    const name =
      tc.named(ident) ??
      (await tc.runvar(ident)) ??
      process.env[`OSSTEST_HOST_${ident.toUpperCase()}`] ??
      tc.config.testHost(ident) ??
      (await byFlags(tc, wanted, taken));
    if (!name) {
      await tc.declare(
        'broken',
        `no host for '${ident}': set TestHost${ident === 'host' ? '' : `_${ident}`} in the config, the ${ident} runvar or OSSTEST_HOST_${ident.toUpperCase()}, or add a free host with flags ${wanted.join(',') || '(none)'}`,
      );
      return;
    }
    let h = await tc.store.getHost(name);
    if (!h) {
      h = await tc.store.upsertHost({ name, ip: tc.config.hostProp(name, 'Ip') ?? null });
      tc.log(`host ${name} was not in the host database: added`);
    }
    const have = new Set(tc.config.hostFlags(name, h.flags));
    const lacking = wanted.filter((f) => !have.has(f));
    if (lacking.length > 0)
      tc.log(`warning: ${name} lacks flags ${lacking.join(',')} (chosen explicitly: using it anyway)`);
    const ok = await tc.store.allocateHost(name, { flight: tc.flight, job: tc.job, ident });
    if (!ok) {
      const holder = (await tc.store.listAllocations()).find((a) => a.host === name);
      await tc.declare(
        'broken',
        `host ${name} is held by ${holder ? `${holder.flight}/${holder.job}` : 'another job'}`,
      );
    }
    taken.add(name);
    await tc.setRunvar(ident, name);
    tc.log(`${ident}: allocated ${name}`);
  }
});
