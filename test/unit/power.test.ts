/**
 * Power methods: `command` with real shell commands keeping the state in a file; `ipmi` against a fake
 * `ipmitool` script put first in PATH (no BMC here); `manual` with streams standing in for the terminal.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  CommandPower,
  IpmiPower,
  ManualPower,
  PowerChain,
  type PowerDriver,
  PowerError,
  type PowerState,
  parsePowerMethod,
  powerFor,
} from '../../src/power/index.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'osstest-power-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const hostWith = (props: Record<string, string>) => ({ name: 'box1', prop: (p: string) => props[p] });

describe('PowerMethod lists', () => {
  it('splits methods on ; and words on blanks', () => {
    expect(parsePowerMethod(' qemu /x ;ipmi bmc-3  admin; ', 'h')).toEqual([
      { name: 'qemu', args: ['/x'] },
      { name: 'ipmi', args: ['bmc-3', 'admin'] },
    ]);
    expect(() => parsePowerMethod(' ; ', 'host box1 PowerMethod')).toThrow(
      'host box1 PowerMethod: empty power method',
    );
  });

  it('picks drivers by name and says what is wrong', () => {
    expect(powerFor(hostWith({ PowerMethod: 'command' }))).toBeInstanceOf(CommandPower);
    expect(powerFor(hostWith({ PowerMethod: 'ipmi bmc' }))).toBeInstanceOf(IpmiPower);
    expect(powerFor(hostWith({ PowerMethod: 'command; manual' }))).toBeInstanceOf(PowerChain);
    expect(() => powerFor(hostWith({}))).toThrow('power - of box1: the host has no PowerMethod property');
    expect(() => powerFor(hostWith({ PowerMethod: 'pdu 3' }))).toThrow(
      /unknown power method \(known: qemu, ipmi, command, manual\)/,
    );
    expect(() => powerFor(hostWith({ PowerMethod: 'command x' }))).toThrow(/takes no arguments/);
    expect(() => powerFor(hostWith({ PowerMethod: 'qemu' }))).toThrow(/qemu VMDIR/);
  });

  it('a chain switches on in order, off in reverse, and reads the last method that can tell', async () => {
    const calls: string[] = [];
    const fake = (name: string, state: PowerState): PowerDriver => ({
      method: name,
      set: async (s) => {
        calls.push(`${name} ${s}`);
      },
      get: async () => state,
    });
    const chain = new PowerChain([fake('pdu', 'on'), fake('bmc', 'unknown')]);
    await chain.set('on');
    await chain.set('off');
    expect(calls).toEqual(['pdu on', 'bmc on', 'bmc off', 'pdu off']);
    expect(await chain.get()).toBe('on');
    expect(chain.method).toBe('pdu;bmc');
  });
});

describe('power method command (shell commands, state in a file)', () => {
  let state: string;
  let calls: string;
  const props = () => ({
    PowerOnCommand: `echo "on $OSSTEST_HOST $OSSTEST_POWER" >> ${calls}; echo on > ${state}`,
    PowerOffCommand: `echo "off $OSSTEST_HOST" >> ${calls}; echo off > ${state}`,
    PowerStatusCommand: `cat ${state}`,
  });
  beforeEach(() => {
    state = join(dir, 'cmd-state');
    calls = join(dir, 'cmd-calls');
    writeFileSync(state, 'off\n');
    rmSync(calls, { force: true });
  });

  it('switches, reads back, and leaves a host already in that state alone', async () => {
    const p = new CommandPower(hostWith(props()));
    expect(await p.get()).toBe('off');
    await p.set('on');
    expect(await p.get()).toBe('on');
    await p.set('on');
    await p.set('off');
    expect(readFileSync(calls, 'utf8')).toBe('on box1 on\noff box1\n');
  });

  it('fails when the status does not follow', async () => {
    const p = new CommandPower(hostWith({ ...props(), PowerOnCommand: 'true' }), () => {}, 300);
    await expect(p.set('on')).rejects.toThrow('power command of box1: asked for on, status still says off');
  });

  it('reports a failing command with its exit status and output, and a nonsense status', async () => {
    const p = new CommandPower(hostWith({ ...props(), PowerOnCommand: 'echo no relay >&2; exit 3' }));
    await expect(p.set('on')).rejects.toThrow(
      /PowerOnCommand `echo no relay >&2; exit 3` exited 3: no relay/,
    );
    const q = new CommandPower(hostWith({ ...props(), PowerStatusCommand: 'echo maybe' }));
    await expect(q.get()).rejects.toThrow(/printed "maybe", not on or off/);
    const r = new CommandPower(hostWith({ PowerStatusCommand: 'echo off' }));
    await expect(r.set('on')).rejects.toThrow(/host property PowerOnCommand is not set/);
  });

  it('without a status command, trusts the exit status and says unknown', async () => {
    const { PowerStatusCommand: _, ...noStatus } = props();
    const p = new CommandPower(hostWith(noStatus));
    expect(await p.get()).toBe('unknown');
    await p.set('on');
    await p.set('on');
    expect(readFileSync(calls, 'utf8')).toBe('on box1 on\non box1 on\n');
  });
});

describe('power method ipmi (a fake ipmitool in PATH; no real BMC)', () => {
  let bin: string;
  const oldPath = process.env.PATH;
  const env = (k: string, v: string | undefined) => {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  };
  beforeEach(() => {
    bin = mkdtempSync(join(dir, 'bin-'));
    const fake = join(bin, 'ipmitool');
    writeFileSync(
      fake,
      `#!/bin/sh
echo "$*|pw=\${IPMI_PASSWORD:-none}" >> "$FAKE_IPMI_LOG"
state=$(cat "$FAKE_IPMI_STATE" 2>/dev/null || echo off)
case "$*" in
  *"chassis power status") echo "Chassis Power is $state" ;;
  *"chassis power on") [ -n "$FAKE_IPMI_STUCK" ] || echo on > "$FAKE_IPMI_STATE"; echo "Chassis Power Control: Up/On" ;;
  *"chassis power off") [ -n "$FAKE_IPMI_STUCK" ] || echo off > "$FAKE_IPMI_STATE"; echo "Chassis Power Control: Down/Off" ;;
  *) echo "Error: unknown command" >&2; exit 1 ;;
esac
`,
    );
    chmodSync(fake, 0o755);
    env('PATH', `${bin}:${oldPath}`);
    env('FAKE_IPMI_LOG', join(bin, 'log'));
    env('FAKE_IPMI_STATE', join(bin, 'state'));
    env('FAKE_IPMI_STUCK', undefined);
  });
  afterEach(() => {
    env('PATH', oldPath);
    for (const k of ['FAKE_IPMI_LOG', 'FAKE_IPMI_STATE', 'FAKE_IPMI_STUCK']) env(k, undefined);
  });
  const log = () => readFileSync(join(bin, 'log'), 'utf8').trim().split('\n');

  it('reads the state first, switches only when needed, and passes the password in the environment', async () => {
    const p = new IpmiPower(hostWith({ IpmiPassword: 's3cret' }), ['bmc-3', 'admin']);
    await p.set('off');
    await p.set('on');
    expect(await p.get()).toBe('on');
    expect(log()).toEqual([
      '-I lanplus -H bmc-3 -U admin -E chassis power status|pw=s3cret',
      '-I lanplus -H bmc-3 -U admin -E chassis power status|pw=s3cret',
      '-I lanplus -H bmc-3 -U admin -E chassis power on|pw=s3cret',
      '-I lanplus -H bmc-3 -U admin -E chassis power status|pw=s3cret',
      '-I lanplus -H bmc-3 -U admin -E chassis power status|pw=s3cret',
    ]);
    expect(log().join('\n')).not.toContain('-P');
  });

  it('fails when the BMC does not obey', async () => {
    env('FAKE_IPMI_STUCK', '1');
    const p = new IpmiPower(hostWith({}), ['bmc-3', 'admin', 'lan'], () => {}, 1_500);
    await expect(p.set('on')).rejects.toThrow('power ipmi of box1: asked for on, BMC still says off');
    expect(log()[0]).toBe('-I lan -H bmc-3 -U admin chassis power status|pw=none');
  });

  it('reports ipmitool failing, and wants a BMC', async () => {
    env('PATH', `/nonexistent:${oldPath}`);
    const p = new IpmiPower(hostWith({}), ['bmc-3']);
    await expect(p.get()).rejects.toThrow(/power ipmi of box1: ipmitool chassis power status \(BMC bmc-3\)/);
    expect(() => new IpmiPower(hostWith({}), [])).toThrow(/ipmi BMC \[USER \[INTERFACE\]\]/);
  });
});

describe('power method manual (streams for the terminal)', () => {
  const ask = async (answer: string | null) => {
    const input = new PassThrough();
    const output = new PassThrough();
    let asked = '';
    output.on('data', (d: Buffer) => {
      asked += d.toString();
    });
    const p = new ManualPower('box1', { input, output });
    const done = p.set('on');
    if (answer === null) input.end();
    else input.write(`${answer}\n`);
    try {
      await done;
    } finally {
      input.destroy();
    }
    return asked;
  };

  it('asks, and takes Enter for done', async () => {
    expect(await ask('')).toContain('please switch host box1 ON, then press Enter');
    expect(await new ManualPower('box1', { input: new PassThrough(), output: new PassThrough() }).get()).toBe(
      'unknown',
    );
  });

  it('fails on "fail" or no answer', async () => {
    await expect(ask('fail: no key to the room')).rejects.toThrow(/could not switch it on: fail: no key/);
    await expect(ask(null)).rejects.toThrow(/no answer on the terminal/);
  });
});

it('PowerError names host and method', () => {
  const e = new PowerError('box1', 'ipmi', 'boom');
  expect(e.message).toBe('power ipmi of box1: boom');
  expect(existsSync(dir)).toBe(true);
});
