#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { reportError } from './output.js';
import { registerAll } from './registry.js';

const program = new Command('osstest')
  .description('Test-lab orchestration: flights of build and test jobs on real hosts')
  .showHelpAfterError()
  .enablePositionalOptions()
  .exitOverride();

registerAll(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode;
  } else {
    process.exitCode = reportError(err);
  }
}
