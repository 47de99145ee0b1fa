/** What a branch tests, read from the config (src/config/branches.ts): defaults and clear refusals. */
import { describe, expect, it } from 'vitest';
import { branchGate, branchTreeNames } from '../../src/config/branches.js';
import { Config } from '../../src/config/config.js';
import { ConfigError } from '../../src/config/errors.js';

const cfg = (text: string) => Config.fromText(text, 'gate.config');

describe('branch gate config', () => {
  it('trees, the tree under test (default the first), refs (default staging → master), hooks, retries', () => {
    const g = branchGate(
      cfg(`BranchTrees_xen_unstable xen, linux
Tree_xen /srv/xen.git
Tree_linux https://example.org/linux.git
TreeOutputRef_linux tested/linux
BranchHook_xen_unstable_before echo hi
GateRetries 2
`),
      'xen-unstable',
    );
    expect(g.underTest).toBe('xen');
    expect(g.trees).toEqual([
      { tree: 'xen', url: '/srv/xen.git', inputRef: 'staging', outputRef: 'master' },
      { tree: 'linux', url: 'https://example.org/linux.git', inputRef: 'staging', outputRef: 'tested/linux' },
    ]);
    expect(g.hooks).toEqual({ before: 'echo hi' });
    expect(g.alwaysRun).toBe(false);
    expect(g.retries).toBe(2);
    expect(branchTreeNames(cfg('BranchTrees_a x y'), 'a')).toEqual(['x', 'y']);
    expect(branchTreeNames(cfg(''), 'a')).toBeUndefined();
    expect(branchGate(cfg('BranchTrees_a x\nTree_x /x\nBranchAlwaysRun_a yes'), 'a')).toMatchObject({
      alwaysRun: true,
      retries: 1,
    });
  });

  it('refuses what cannot work, naming the setting', () => {
    const bad = (text: string, branch: string, msg: RegExp) => {
      let err: unknown;
      try {
        branchGate(cfg(text), branch);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(msg);
    };
    bad('', 'xen-unstable', /branch xen-unstable names no trees: set BranchTrees_xen_unstable/);
    bad('BranchTrees_a x', 'a', /tree x of branch a has no URL: set Tree_x/);
    bad('BranchTrees_a x x\nTree_x /x', 'a', /names a tree twice/);
    bad(
      'BranchTrees_a x\nTree_x /x\nTreeUnderTest_a y',
      'a',
      /gate.config:3: TreeUnderTest_a 'y' is not one of the branch's trees \(x\)/,
    );
    bad(
      'BranchTrees_a x\nTree_x /x\nTreeOutputRef_x staging',
      'a',
      /input and output refs are both 'staging'/,
    );
    bad(
      'BranchTrees_a x\nTree_x /x\nTreeInputRef_x ../evil',
      'a',
      /TreeInputRef_x '..\/evil' is not a usable branch name/,
    );
    bad('BranchTrees_a x\nTree_x /x\nGateRetries -1', 'a', /GateRetries -1: must not be negative/);
    bad('BranchTrees_a x\nTree_x /x\nBranchAlwaysRun_a maybe', 'a', /BranchAlwaysRun_a must be true\/false/);
  });
});
