/** Power method qemu against a real QEMU (an empty machine: no firmware runs, so it is quick). */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processStartTime } from '../../src/lab/netns-names.js';
import { QemuPower, readVmSpec, runningQemuPid, writeVmSpec } from '../../src/power/qemu.js';
import { prerequisites } from '../helpers/env.js';

const ok = prerequisites('power method qemu', { commands: ['qemu-system-x86_64'] });

describe.skipIf(!ok)('power method qemu', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'osstest-qemu-'));
  });
  afterAll(async () => {
    await new QemuPower('vm1', join(dir, 'vm1')).set('off').catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });

  const define = (name: string, args: string[]) => {
    const vmDir = join(dir, name);
    writeVmSpec(vmDir, {
      name,
      qemu: 'qemu-system-x86_64',
      args: ['-machine', 'none', '-nodefaults', '-display', 'none', '-monitor', 'none', ...args],
      serialLog: join(vmDir, 'serial.log'),
      pidFile: join(vmDir, 'qemu.pid'),
    });
    return vmDir;
  };

  it('starts the VM, leaves a running one alone, stops it; reads the state back each time', async () => {
    const vmDir = define('vm1', []);
    const p = new QemuPower('vm1', vmDir);
    expect(await p.get()).toBe('off');
    await p.set('on');
    expect(await p.get()).toBe('on');
    const pid = runningQemuPid(readVmSpec(vmDir));
    expect(pid).toBeGreaterThan(0);
    await p.set('on');
    expect(runningQemuPid(readVmSpec(vmDir))).toBe(pid);
    expect(existsSync(join(vmDir, 'serial.log'))).toBe(true);
    await p.set('off');
    expect(await p.get()).toBe('off');
    // Gone, or a zombie waiting for init to reap it (QEMU daemonized, so init is its parent).
    expect(processStartTime(pid!)).toBeUndefined();
    await p.set('off');
  });

  it("fails with QEMU's own message when it cannot start", async () => {
    const p = new QemuPower('vm2', define('vm2', ['-no-such-option']));
    await expect(p.set('on')).rejects.toThrow(/power qemu of vm2: QEMU exited 1: .*no-such-option/);
    expect(await p.get()).toBe('off');
  });

  it('says the lab is not up when the VM has no definition', () => {
    expect(() => readVmSpec(join(dir, 'missing'))).toThrow(
      /no usable VM definition .* is the virtual lab up\?/,
    );
  });
});
