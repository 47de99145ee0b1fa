/**
 * Guards for tests that need what not every machine has (root, network namespaces, QEMU).
 * Off CI such a test is skipped, loudly; under CI=true a missing prerequisite is a failure,
 * so nothing is ever skipped silently where it counts.
 */
import { execFileSync } from 'node:child_process';

export const underCI = process.env.CI === 'true';

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Returns true when the test can run. When it cannot: throws under CI, otherwise prints why
 * it is skipped and returns false (use with describe.skipIf(!ok)).
 */
export function prerequisites(what: string, needs: { root?: boolean; commands?: string[] }): boolean {
  const missing: string[] = [];
  if (needs.root && !isRoot()) missing.push('root');
  for (const c of needs.commands ?? []) if (!hasCommand(c)) missing.push(c);
  if (missing.length === 0) return true;
  const msg = `${what}: needs ${missing.join(', ')}`;
  if (underCI) throw new Error(`${msg} (CI=true: refusing to skip)`);
  process.stderr.write(`\n*** SKIPPING ${msg} ***\n\n`);
  return false;
}
