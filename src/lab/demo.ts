/**
 * The demo the README's first command runs: a throw-away standalone lab on this machine. It makes
 * a sample C project in a real git repository, two hosts (network namespaces running sshd: a build
 * host and a test host), a config file, and then runs exactly what a user would type:
 * standalone-reset, run-job build-amd64, run-job test-amd64-amd64-demo, flight show. The hosts
 * are torn down at the end; the workspace (database, logs, stash) is kept for a look.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { harnessRoot } from '../executor/paths.js';
import { NetnsHost } from './netns-host.js';
import { createSampleProject } from './sample-project.js';

const dir = resolve(process.env.OSSTEST_DEMO_DIR ?? '/tmp/osstest-demo');
const cli = join(harnessRoot, 'bin', 'osstest.js');

function say(text: string): void {
  process.stdout.write(`\n\x1b[1m== ${text}\x1b[0m\n`);
}

function osstest(args: string[], env: Record<string, string> = {}): number {
  process.stdout.write(`$ osstest ${args.join(' ')}\n`);
  const r = spawnSync(process.execPath, [cli, ...args], {
    cwd: dir,
    stdio: 'inherit',
    env: { ...process.env, OSSTEST_CONFIG: join(dir, 'standalone.config'), ...env },
  });
  return r.status ?? 1;
}

if (typeof process.getuid === 'function' && process.getuid() !== 0) {
  process.stderr.write('demo: run as root: its hosts are network namespaces running sshd\n');
  process.exit(2);
}

rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
say(`a sample C project in a git repository: ${join(dir, 'demo.git')}`);
const project = await createSampleProject(join(dir, 'demo.git'));
writeFileSync(
  join(dir, 'standalone.config'),
  [
    '# made by the demo (see standalone.config.example for every setting)',
    `Tree_demo ${project.path}`,
    'DemoBuildCommand make && make install DESTDIR="$OSSTEST_DIST"',
    'DemoTestCommand ./run-tests',
    `HostProp_buildbox_Workdir ${join(dir, 'hosts', 'buildbox')}`,
    `HostProp_testbox_Workdir ${join(dir, 'hosts', 'testbox')}`,
    '',
  ].join('\n'),
);

let code = 1;
const hosts: NetnsHost[] = [];
try {
  say('standalone-reset: database, lab key pair, the standalone flight');
  if (osstest(['standalone-reset']) !== 0) throw new Error('standalone-reset failed');
  const pub = readFileSync(join(dir, '.osstest', 'id_ed25519.pub'), 'utf8');
  say('two hosts: network namespaces running sshd that accepts the lab key');
  for (const name of ['buildbox', 'testbox']) {
    const h = await NetnsHost.create({ name, authorizedKeys: pub, stateDir: join(dir, 'netns', name) });
    hosts.push(h);
    process.stdout.write(`${name}: ${h.address} (namespace ${h.namespace})\n`);
  }
  osstest(['hosts', 'add', 'buildbox', '--ip', hosts[0]!.address, '--flags', 'purpose-build,arch-amd64']);
  osstest(['hosts', 'add', 'testbox', '--ip', hosts[1]!.address, '--flags', 'purpose-test,arch-amd64']);
  say('build job: clone, build on buildbox, stash the artefacts');
  const b = osstest(['run-job', 'build-amd64']);
  say('test job: install the build on testbox and run its tests');
  const t = osstest(['run-job', 'test-amd64-amd64-demo']);
  say('the flight');
  osstest(['flight', 'show']);
  code = b === 0 && t === 0 ? 0 : 1;
  process.stdout.write(
    `\nlogs and stash: ${join(dir, 'logs', 'standalone')}\ndatabase: ${join(dir, 'standalone.db')}\n`,
  );
} finally {
  for (const h of hosts) await h.destroy();
}
process.exit(code);
