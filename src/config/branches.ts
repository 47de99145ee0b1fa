/**
 * What a branch tests, as the push gate and the flight families read it from the config:
 * BranchTrees_<branch>, TreeUnderTest_<branch>, Tree_<tree>, TreeInputRef_<tree>,
 * TreeOutputRef_<tree>, BranchAlwaysRun_<branch>, BranchHook_<branch>_before/_after, GateRetries.
 * Branch and tree names go into setting names with every character outside [A-Za-z0-9_] written
 * as `_` (branch xen-unstable: BranchTrees_xen_unstable), as config.ts does for every name.
 */
import type { Config } from './config.js';
import { ConfigError } from './errors.js';
import { configName } from './parse.js';

export const DEFAULT_INPUT_REF = 'staging';
export const DEFAULT_OUTPUT_REF = 'master';

export interface GateTree {
  tree: string;
  /** Where the tree's upstream is (Tree_<tree>): fetched from, and pushed to. */
  url: string;
  /** The branch holding revisions to test (TreeInputRef_<tree>). */
  inputRef: string;
  /** The branch holding the tested revision, pushed to (TreeOutputRef_<tree>). */
  outputRef: string;
}

export interface BranchGate {
  branch: string;
  trees: GateTree[];
  /** One of `trees`: the one whose input ref is tested and pushed. */
  underTest: string;
  alwaysRun: boolean;
  hooks: { before?: string; after?: string };
  /** Reruns allowed for a failure that would block the push (GateRetries). */
  retries: number;
}

/** The trees of a branch from BranchTrees_<branch>, or undefined when the config does not say. */
export function branchTreeNames(config: Config, branch: string): string[] | undefined {
  const v = config.get(`BranchTrees_${branch}`);
  if (v === undefined) return undefined;
  return v.split(/[\s,]+/).filter((w) => w !== '');
}

/** A branch name is also a ref component and a file name: refuse anything odd before using it. */
const REF_NAME = /^[A-Za-z0-9][A-Za-z0-9._/-]*$/;

function refSetting(config: Config, name: string, dflt: string): string {
  const v = (config.get(name) ?? dflt).trim();
  if (!REF_NAME.test(v) || v.includes('..') || v.endsWith('/') || v.endsWith('.lock')) {
    const at = config.origin(name);
    throw new ConfigError(`${name} '${v}' is not a usable branch name`, at?.file, at?.line);
  }
  return v.replace(/^refs\/heads\//, '');
}

/** Everything the push gate needs to know about a branch; a ConfigError says what is missing. */
export function branchGate(config: Config, branch: string): BranchGate {
  const names = branchTreeNames(config, branch);
  if (names === undefined || names.length === 0) {
    const at = config.origin(`BranchTrees_${branch}`);
    throw new ConfigError(
      `branch ${branch} names no trees: set BranchTrees_${configName(branch)} (e.g. \`xen linux\`) to the trees it tests`,
      at?.file,
      at?.line,
    );
  }
  if (new Set(names).size !== names.length) {
    const at = config.origin(`BranchTrees_${branch}`);
    throw new ConfigError(
      `BranchTrees_${configName(branch)} names a tree twice: ${names.join(' ')}`,
      at?.file,
      at?.line,
    );
  }
  const trees: GateTree[] = names.map((tree) => {
    const url = config.get(`Tree_${tree}`)?.trim();
    if (!url) {
      throw new ConfigError(`tree ${tree} of branch ${branch} has no URL: set Tree_${configName(tree)}`);
    }
    return {
      tree,
      url,
      inputRef: refSetting(config, `TreeInputRef_${tree}`, DEFAULT_INPUT_REF),
      outputRef: refSetting(config, `TreeOutputRef_${tree}`, DEFAULT_OUTPUT_REF),
    };
  });
  const underTest = config.get(`TreeUnderTest_${branch}`)?.trim() || names[0]!;
  if (!names.includes(underTest)) {
    const at = config.origin(`TreeUnderTest_${branch}`);
    throw new ConfigError(
      `TreeUnderTest_${configName(branch)} '${underTest}' is not one of the branch's trees (${names.join(', ')})`,
      at?.file,
      at?.line,
    );
  }
  const ut = trees.find((t) => t.tree === underTest)!;
  if (ut.inputRef === ut.outputRef) {
    throw new ConfigError(
      `tree ${underTest}: its input and output refs are both '${ut.inputRef}': set TreeInputRef_${underTest} or TreeOutputRef_${underTest}`,
    );
  }
  const alwaysRun = config.has(`BranchAlwaysRun_${branch}`)
    ? config.bool(`BranchAlwaysRun_${branch}`)
    : false;
  const hooks: BranchGate['hooks'] = {};
  const before = config.get(`BranchHook_${branch}_before`)?.trim();
  const after = config.get(`BranchHook_${branch}_after`)?.trim();
  if (before) hooks.before = before;
  if (after) hooks.after = after;
  const retries = config.int('GateRetries');
  if (retries < 0) {
    const at = config.origin('GateRetries');
    throw new ConfigError(`GateRetries ${retries}: must not be negative`, at?.file, at?.line);
  }
  return { branch, trees, underTest, alwaysRun, hooks, retries };
}
