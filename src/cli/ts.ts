import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { Config } from '../config/config.js';
import { resolveTestcase } from '../executor/testcase-path.js';
import { defaultFlight } from './context.js';
import { UsageError } from './output.js';

export function register(program: Command): void {
  program
    .command('ts')
    .argument('<testcase>', 'testcase, e.g. ts-build')
    .argument('[args...]', 'its arguments, e.g. host=buildhost')
    .option('--flight <flight>', 'flight (default: $OSSTEST_FLIGHT or "standalone")')
    .option('--job <job>', 'job (default: $OSSTEST_JOB)')
    .passThroughOptions()
    .usage(
      '[options] <testcase> [args...]  (options before the testcase; everything after it goes to the testcase)',
    )
    .description(
      'Run one testcase by hand for a job, with the arguments the executor would give it; its output goes to the terminal and no step is recorded',
    )
    .action(async (testcase: string, args: string[], o: { flight?: string; job?: string }) => {
      const config = Config.load({ env: process.env });
      const job = o.job ?? process.env.OSSTEST_JOB;
      if (!job) throw new UsageError('which job? give --job JOB or set OSSTEST_JOB');
      const tc = resolveTestcase(testcase, config.optString('TestcasePath'));
      const code = await new Promise<number>((resolve) => {
        const child = spawn(tc.command, [...tc.prefixArgs, ...args], {
          stdio: ['ignore', 'inherit', 'inherit'],
          cwd: config.baseDir,
          env: {
            ...process.env,
            OSSTEST_FLIGHT: o.flight ?? defaultFlight(),
            OSSTEST_JOB: job,
            OSSTEST_CONFIG: config.files.join(':'),
          },
        });
        child.on('error', (e) => {
          process.stderr.write(`osstest: cannot run ${tc.path}: ${e.message}\n`);
          resolve(127);
        });
        child.on('close', (c, sig) => resolve(c ?? (sig ? 128 : 1)));
      });
      process.exitCode = code;
    });
}
