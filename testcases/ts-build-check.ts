/**
 * ts-build-check: every job this one depends on (each runvar ending in `buildjob`, valued `job` or
 * `flight.job`) must exist, have passed, and have its stashed outputs (`path_*`) on disk. Otherwise
 * the job is blocked: the code under test was never built, so it cannot be judged.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseJobRef, testcaseMain } from '../src/testcase/index.js';

await testcaseMain(async (tc) => {
  const rv = await tc.runvars();
  const refs = Object.entries(rv).filter(([n]) => n.endsWith('buildjob'));
  if (refs.length === 0) {
    tc.log('no *buildjob runvars: nothing to check');
    return;
  }
  const problems: string[] = [];
  for (const [name, val] of refs) {
    const ref = parseJobRef(val, tc.flight);
    const j = await tc.store.getJob(ref.flight, ref.job);
    if (!j) {
      problems.push(`${name}=${val}: no such job`);
      continue;
    }
    if (j.status !== 'pass') {
      problems.push(`${name}=${val}: ${j.status}`);
      continue;
    }
    const outputs = (await tc.store.listRunvars(ref.flight, ref.job)).filter((r) =>
      r.name.startsWith('path_'),
    );
    for (const o of outputs) {
      const file = join(tc.config.path('Stash'), ref.flight, ref.job, o.val);
      if (!existsSync(file)) problems.push(`${name}=${val}: ${o.name} ${file} is missing`);
    }
    tc.log(`${name}=${val}: pass, ${outputs.length} output(s) present`);
  }
  if (problems.length > 0) await tc.declare('blocked', problems.join('; '));
});
