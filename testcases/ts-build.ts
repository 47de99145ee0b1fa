/**
 * ts-build [IDENT]: builds the job's trees on its build host.
 * Clones every `tree_<t>` at `revision_<t>`, records `built_revision_<t>`, runs `build_command` in
 * the `build_tree` (default: the only or first tree) with $OSSTEST_DIST naming an empty directory
 * for the build's output, then stashes that directory as `build/dist.tar.gz` (runvar `path_dist`).
 * A checkout that does not match the requested revision makes the job broken.
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { envPrefix, shq, testcaseMain } from '../src/testcase/index.js';

await testcaseMain(async (tc) => {
  const ident = tc.positional[0] ?? 'host';
  const rv = await tc.runvars();
  const trees = Object.keys(rv)
    .filter((n) => n.startsWith('tree_'))
    .map((n) => n.slice(5))
    .sort();
  if (trees.length === 0) throw new Error('no tree_<name> runvars: nothing to build');
  const command = rv.build_command;
  if (!command) throw new Error('no build_command runvar');
  const buildTree = rv.build_tree ?? trees[0]!;
  if (!trees.includes(buildTree))
    throw new Error(`build_tree ${buildTree} is not one of ${trees.join(', ')}`);

  const h = await tc.host(ident);
  const ssh = await tc.ssh(ident);
  const work = `${h.workdir}/build/${tc.flight}.${tc.job}`;
  const out = (text: string) => process.stdout.write(text);
  await ssh.exec(`rm -rf ${shq(work)} && mkdir -p ${shq(`${work}/dist`)}`);

  for (const t of trees) {
    const url = rv[`tree_${t}`]!;
    const want = rv[`revision_${t}`];
    if (!want) throw new Error(`tree ${t} has no revision_${t} runvar`);
    const dir = `${work}/${t}`;
    tc.log(`tree ${t}: ${url} at ${want}`);
    await ssh.exec(`git clone --quiet --no-checkout ${shq(url)} ${shq(dir)}`, { output: out });
    await ssh.exec(`git -C ${shq(dir)} checkout --quiet --detach ${shq(want)}`, { output: out });
    const head = (await ssh.exec(`git -C ${shq(dir)} rev-parse HEAD`)).stdout.trim();
    await tc.setRunvar(`built_revision_${t}`, head);
    if (/^[0-9a-f]{7,40}$/i.test(want) && !head.startsWith(want.toLowerCase())) {
      await tc.declare('broken', `tree ${t}: built revision ${head} does not match requested ${want}`);
    }
  }

  tc.log(`building in ${buildTree}: ${command}`);
  const env = envPrefix({ OSSTEST_DIST: `${work}/dist`, OSSTEST_TREES: work });
  const build = await ssh.exec(`cd ${shq(`${work}/${buildTree}`)} && ${env}sh -ec ${shq(command)}`, {
    output: out,
    allowFailure: true,
  });
  if (build.exitCode !== 0) throw new Error(`build command failed with exit status ${build.exitCode}`);

  await ssh.exec(`tar -C ${shq(`${work}/dist`)} -czf ${shq(`${work}/dist.tar.gz`)} .`);
  const rel = 'build/dist.tar.gz';
  const local = join(tc.stashDir(), rel);
  mkdirSync(dirname(local), { recursive: true });
  await ssh.get(`${work}/dist.tar.gz`, local);
  await tc.setRunvar('path_dist', rel);
  const listing = await ssh.exec(`tar -tzf ${shq(`${work}/dist.tar.gz`)} | head -50`);
  tc.log(`stashed ${rel}:\n${listing.stdout.trimEnd()}`);
});
