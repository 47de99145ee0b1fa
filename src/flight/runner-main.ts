/**
 * The runner process a worker starts for a claimed job: `node runner-main.js FLIGHT JOB` (see
 * runner.ts). A module of its own rather than a CLI command, so a job does not pay for loading
 * every command of the CLI (about 0.25 s of CPU each here).
 */
import { Config } from '../config/config.js';
import { openConfiguredStore } from '../db/from-config.js';
import { RunnerRefused, runClaimedJob, watchParent } from './runner.js';

const [flight, job] = process.argv.slice(2);
if (!flight || !job) {
  process.stderr.write('usage: runner-main.js FLIGHT JOB (started by osstest worker)\n');
  process.exit(2);
}
const unwatch = watchParent();
let code = 1;
try {
  const config = Config.load({ env: process.env });
  const store = await openConfiguredStore(config);
  try {
    const r = await runClaimedJob({ store, config, flight, job });
    process.stdout.write(`${flight} ${job}: ${r.status}\n`);
    code = r.status === 'pass' ? 0 : 1;
  } finally {
    await store.close();
  }
} catch (e) {
  process.stdout.write(`runner: ${e instanceof Error ? e.message : String(e)}\n`);
  if (process.env.OSSTEST_DEBUG && e instanceof Error) process.stdout.write(`${e.stack}\n`);
  code = e instanceof RunnerRefused ? 2 : 1;
} finally {
  unwatch();
}
process.exit(code);
