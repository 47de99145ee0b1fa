/**
 * ts-hosts-allocate [IDENT…] [IDENT=HOST…]: gives the job its hosts (standalone mode).
 * For each ident (default `host`) the host is, in order: an `IDENT=HOST` argument, the job's
 * `IDENT` runvar, $OSSTEST_HOST_<IDENT>, config TestHost_<IDENT>, config TestHost (ident `host`);
 * failing those, the first free host in the database that has every flag the job asks for
 * (`all_hostflags` and `<IDENT>_hostflags`). The allocation is atomic: a host held by another job
 * is never shared.
 *
 * When the hosts it needs are held by other jobs it waits for them, polling, for up to
 * HostAllocateWait seconds ($OSSTEST_HOST_ALLOCATE_WAIT, which execute-flight sets): then the job is
 * starved. With no wait (the default for a lone run-job) it refuses at once and the job is broken.
 * The job's idents are had all together or not at all: while it waits it holds none of them, so two
 * jobs that each need two hosts cannot each hold one and wait for ever.
 *
 * Lab mode (HostAllocation planner, or auto with JobDB Executive): the lab planner chooses instead
 * (src/testcase/lab-hosts.ts); a job run by a worker already holds its hosts and they are recorded.
 */
import type { Allocation, Testcase } from '../src/testcase/index.js';
import {
  hostAllocateWaitSeconds,
  plannerAllocate,
  testcaseMain,
  usesPlanner,
} from '../src/testcase/index.js';

interface Want {
  ident: string;
  flags: string[];
  /** Chosen by argument, runvar, environment or config; otherwise any free host with the flags. */
  explicit?: string;
  /** Hosts with the flags (when not explicit). */
  candidates: string[];
}

type Attempt = { ok: true; got: Map<string, string> } | { ok: false; why: string[] };

async function wantedFlags(tc: Testcase, ident: string): Promise<string[]> {
  return [
    ...((await tc.runvar('all_hostflags')) ?? '').split(','),
    ...((await tc.runvar(`${ident}_hostflags`)) ?? '').split(','),
  ].filter((f) => f !== '');
}

function holderOf(allocs: Allocation[], host: string): string {
  const a = allocs.find((x) => x.host === host);
  return a ? `${a.flight}/${a.job}` : 'another job';
}

async function plan(tc: Testcase, ident: string): Promise<Want> {
  const flags = await wantedFlags(tc, ident);
  const explicit =
    tc.named(ident) ??
    (await tc.runvar(ident)) ??
    process.env[`OSSTEST_HOST_${ident.toUpperCase()}`] ??
    tc.config.testHost(ident);
  if (explicit === undefined) {
    const candidates: string[] = [];
    for (const h of await tc.store.listHosts()) {
      const have = new Set(tc.config.hostFlags(h.name, h.flags));
      if (flags.every((f) => have.has(f))) candidates.push(h.name);
    }
    if (candidates.length === 0) {
      return tc.declare(
        'broken',
        `no host for '${ident}': set TestHost${ident === 'host' ? '' : `_${ident}`} in the config, the ${ident} runvar or OSSTEST_HOST_${ident.toUpperCase()}, or add a host with flags ${flags.join(',') || '(none)'}`,
      );
    }
    return { ident, flags, candidates };
  }
  let h = await tc.store.getHost(explicit);
  if (!h) {
    h = await tc.store.upsertHost({ name: explicit, ip: tc.config.hostProp(explicit, 'Ip') ?? null });
    tc.log(`host ${explicit} was not in the host database: added`);
  }
  const have = new Set(tc.config.hostFlags(explicit, h.flags));
  const lacking = flags.filter((f) => !have.has(f));
  if (lacking.length > 0)
    tc.log(`warning: ${explicit} lacks flags ${lacking.join(',')} (chosen explicitly: using it anyway)`);
  return { ident, flags, explicit, candidates: [explicit] };
}

/** One try at every ident; on any miss, gives back what this try took. */
async function attempt(tc: Testcase, wants: Want[]): Promise<Attempt> {
  const me = { flight: tc.flight, job: tc.job };
  const allocs = await tc.store.listAllocations();
  const mine = new Set(allocs.filter((a) => a.flight === me.flight && a.job === me.job).map((a) => a.host));
  const got = new Map<string, string>();
  const taken = new Set<string>();
  const why: string[] = [];
  for (const w of wants) {
    let host: string | undefined;
    for (const c of w.candidates) {
      if (taken.has(c)) continue;
      if (await tc.store.allocateHost(c, { ...me, ident: w.ident })) {
        host = c;
        break;
      }
    }
    if (host === undefined) {
      const now = await tc.store.listAllocations();
      if (w.explicit !== undefined) {
        const holder = now.find((a) => a.host === w.explicit);
        if (holder && holder.flight === me.flight && holder.job === me.job) {
          return tc.declare('broken', `host ${w.explicit} is already this job's '${holder.ident}'`);
        }
        why.push(`${w.ident}: ${w.explicit} is held by ${holderOf(now, w.explicit)}`);
      } else {
        const held = w.candidates.map((c) =>
          taken.has(c) ? `${c} by this job` : `${c} by ${holderOf(now, c)}`,
        );
        why.push(
          `${w.ident}: every host with flags ${w.flags.join(',') || '(none)'} is held (${held.join(', ')})`,
        );
      }
      break;
    }
    taken.add(host);
    got.set(w.ident, host);
  }
  if (why.length === 0) return { ok: true, got };
  for (const h of got.values()) if (!mine.has(h)) await tc.store.releaseHost(h, me);
  return { ok: false, why };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

await testcaseMain(async (tc) => {
  const idents = tc.positional.length > 0 ? tc.positional : ['host'];
  const waitS = hostAllocateWaitSeconds(tc.config.int('HostAllocateWait'), process.env);
  if (usesPlanner(tc.config)) return plannerAllocate(tc, idents, waitS);
  const wants: Want[] = [];
  for (const ident of idents) wants.push(await plan(tc, ident));

  const t0 = Date.now();
  const deadline = t0 + waitS * 1000;
  let lastSaid = '';
  let lastSaidAt = 0;
  for (;;) {
    const a = await attempt(tc, wants);
    if (a.ok) {
      if (lastSaid !== '') tc.log(`waited ${Math.round((Date.now() - t0) / 1000)} s for hosts`);
      for (const [ident, host] of a.got) {
        await tc.setRunvar(ident, host);
        tc.log(`${ident}: allocated ${host}`);
      }
      return;
    }
    const why = a.why.join('; ');
    if (waitS === 0) return tc.declare('broken', why);
    if (Date.now() >= deadline) return tc.declare('starved', `no hosts within ${waitS} s: ${why}`);
    // Say why we wait when it changes, and now and then while it does not.
    if (why !== lastSaid || Date.now() - lastSaidAt > 60_000) {
      tc.log(`waiting (up to ${waitS} s in all): ${why}`);
      lastSaid = why;
      lastSaidAt = Date.now();
    }
    // Jitter keeps jobs that wait for one host from polling in step.
    await sleep(Math.min(1000 + Math.random() * 1000, Math.max(0, deadline - Date.now())));
  }
});
