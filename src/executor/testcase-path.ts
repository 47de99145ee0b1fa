/**
 * Finding a testcase: `ts-NAME` may be an executable in any language (first in the configured
 * TestcasePath, then the shipped testcases/), or a TypeScript testcase shipped as
 * testcases/ts-NAME.ts and run from its compiled form with this Node.
 */
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { distRoot, harnessRoot } from './paths.js';

export interface ResolvedTestcase {
  command: string;
  /** Arguments that come before the step's own (the script path when run by node). */
  prefixArgs: string[];
  path: string;
}

const NAME = /^ts-[A-Za-z0-9][A-Za-z0-9._+-]*$/;

function isExecutableFile(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function testcaseSearchPath(extra: string | undefined): string[] {
  const dirs = (extra ?? '').split(delimiter).filter((d) => d !== '');
  return [...dirs, join(harnessRoot, 'testcases')];
}

export function resolveTestcase(name: string, extraPath: string | undefined): ResolvedTestcase {
  if (!NAME.test(name)) throw new Error(`invalid testcase name '${name}' (must look like ts-something)`);
  for (const dir of testcaseSearchPath(extraPath)) {
    const exe = join(dir, name);
    if (isExecutableFile(exe)) return { command: exe, prefixArgs: [], path: exe };
    const js = join(dir, `${name}.js`);
    if (existsSync(js)) return { command: process.execPath, prefixArgs: [js], path: js };
  }
  const compiled = join(distRoot, 'testcases', `${name}.js`);
  if (existsSync(compiled)) return { command: process.execPath, prefixArgs: [compiled], path: compiled };
  if (existsSync(join(harnessRoot, 'testcases', `${name}.ts`))) {
    throw new Error(`testcase ${name} is not built: run \`npm run build\` in ${harnessRoot}`);
  }
  throw new Error(`no testcase ${name} in ${testcaseSearchPath(extraPath).join(', ')}`);
}
