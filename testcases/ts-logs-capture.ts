/**
 * ts-logs-capture [IDENT]: collects what a person debugging the job will want from the host into the
 * job's stash as `<host>--<what>.log`: command outputs (uname, uptime, df, processes, kernel log
 * tail) and the files named by the host property `CaptureFiles` (default: the usual syslog files
 * that exist). Runs even after a failure; an item that cannot be captured is noted and skipped.
 * Only an unreachable host fails the step.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { shq, testcaseMain } from '../src/testcase/index.js';
import { captureSerialNow } from '../src/testcase/provision.js';

const COMMANDS: Record<string, string> = {
  uname: 'uname -a',
  uptime: 'uptime',
  df: 'df -h',
  ps: 'ps -ef',
  dmesg: 'dmesg 2>/dev/null | tail -n 300',
};

await testcaseMain(async (tc) => {
  const ident = tc.positional[0] ?? 'host';
  if (!(tc.named(ident) ?? (await tc.runvar(ident)))) {
    // The job stopped before it had a host (blocked, or allocation failed): nothing to collect.
    tc.log(`no host was allocated for ${ident}: nothing to capture`);
    return;
  }
  const h = await tc.host(ident);
  // The serial console first: it matters most when the host no longer answers ssh.
  await captureSerialNow(tc, ident).then(
    (log) =>
      tc.log(log ? `serial console of ${h.name} up to now -> ${log}` : `${h.name} has no serial console`),
    (err: unknown) => tc.log(`serial console of ${h.name} not captured: ${(err as Error).message}`),
  );
  const ssh = await tc.ssh(ident);
  const dir = tc.stashDir();
  const save = (what: string, text: string) => {
    const file = join(dir, `${h.name}--${what.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+/, '')}.log`);
    writeFileSync(file, text);
    tc.log(`captured ${what} (${text.length} bytes) -> ${file}`);
  };
  for (const [what, cmd] of Object.entries(COMMANDS)) {
    const r = await ssh.exec(cmd, { allowFailure: true, timeoutMs: 60_000 });
    save(what, r.stdout + (r.stderr ? `\n[stderr]\n${r.stderr}` : ''));
  }
  const files = (h.prop('CaptureFiles') ?? '/var/log/syslog /var/log/kern.log /var/log/messages')
    .split(/\s+/)
    .filter((f) => f !== '');
  for (const f of files) {
    const r = await ssh.exec(`test -r ${shq(f)} && tail -c 4000000 ${shq(f)}`, {
      allowFailure: true,
      timeoutMs: 120_000,
    });
    if (r.exitCode === 0) save(f, r.stdout);
    else tc.log(`not captured: ${f} (not readable on ${h.name})`);
  }
});
