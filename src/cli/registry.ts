/** Every command of the CLI, one module each; each exports register(program). */
import type { Command } from 'commander';
import { register as abort } from './abort.js';
import { register as aliases } from './aliases.js';
import { register as allocate } from './allocate.js';
import { register as bisect } from './bisect.js';
import { register as blockage } from './blockage.js';
import { register as branch } from './branch.js';
import { register as config } from './config.js';
import { register as dailyBranch } from './daily-branch.js';
import { register as executeFlight } from './execute-flight.js';
import { register as flight } from './flight.js';
import { register as hosts } from './hosts.js';
import { register as hostsHealth } from './hosts-health.js';
import { register as images } from './images.js';
import { register as lab } from './lab.js';
import { register as makeFlight } from './make-flight.js';
import { register as plan } from './plan.js';
import { register as reportFlight } from './report-flight.js';
import { register as runJob } from './run-job.js';
import { register as runvar } from './runvar.js';
import { register as serve } from './serve.js';
import { register as standaloneReset } from './standalone-reset.js';
import { register as ts } from './ts.js';
import { register as worker } from './worker.js';

export function registerAll(program: Command): void {
  for (const r of [
    standaloneReset,
    makeFlight,
    runJob,
    executeFlight,
    ts,
    flight,
    runvar,
    hosts,
    abort,
    config,
    aliases,
    reportFlight,
    lab,
    images,
    serve,
    bisect,
    dailyBranch,
    branch,
    plan,
    blockage,
    allocate,
    // These add subcommands to flight and hosts, so they come after them.
    worker,
    hostsHealth,
  ])
    r(program);
}
