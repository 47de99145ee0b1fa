/**
 * The power methods and how a host's `PowerMethod` property picks them (see types.ts for the list
 * syntax). A host with no PowerMethod cannot be power-controlled: asking is an error naming the host.
 */
import { CommandPower } from './command.js';
import { IpmiPower } from './ipmi.js';
import { ManualPower } from './manual.js';
import { QemuPower } from './qemu.js';
import {
  type MethodSpec,
  type PowerContext,
  type PowerDriver,
  PowerError,
  type PowerHost,
  type PowerState,
  parsePowerMethod,
} from './types.js';

export { CommandPower } from './command.js';
export { IpmiPower } from './ipmi.js';
export { ManualPower } from './manual.js';
export { QemuPower, type QemuVmSpec, qemuArgv, readVmSpec, runningQemuPid, writeVmSpec } from './qemu.js';
export * from './types.js';

export const POWER_METHODS = ['qemu', 'ipmi', 'command', 'manual'] as const;

function driverFor(host: PowerHost, spec: MethodSpec, ctx: PowerContext): PowerDriver {
  const log = ctx.log ?? (() => {});
  const noArgs = () => {
    if (spec.args.length > 0) {
      throw new PowerError(host.name, spec.name, `takes no arguments (got ${spec.args.join(' ')})`);
    }
  };
  switch (spec.name) {
    case 'qemu':
      if (spec.args.length !== 1)
        throw new PowerError(host.name, 'qemu', 'PowerMethod qemu wants: qemu VMDIR');
      return new QemuPower(host.name, spec.args[0]!, log);
    case 'ipmi':
      return new IpmiPower(host, spec.args, log);
    case 'command':
      noArgs();
      return new CommandPower(host, log);
    case 'manual':
      noArgs();
      return new ManualPower(host.name, ctx.terminal);
    default:
      throw new PowerError(host.name, spec.name, `unknown power method (known: ${POWER_METHODS.join(', ')})`);
  }
}

/** All of a host's power methods as one driver. */
export class PowerChain implements PowerDriver {
  readonly method: string;
  constructor(readonly drivers: readonly PowerDriver[]) {
    this.method = drivers.map((d) => d.method).join(';');
  }
  async set(state: 'on' | 'off'): Promise<void> {
    const order = state === 'on' ? this.drivers : [...this.drivers].reverse();
    for (const d of order) await d.set(state);
  }
  async get(): Promise<PowerState> {
    for (const d of [...this.drivers].reverse()) {
      const s = await d.get();
      if (s !== 'unknown') return s;
    }
    return 'unknown';
  }
}

/** The driver for a host, from its PowerMethod property. */
export function powerFor(host: PowerHost, ctx: PowerContext = {}): PowerDriver {
  const value = host.prop('PowerMethod');
  if (!value) throw new PowerError(host.name, '-', 'the host has no PowerMethod property');
  const drivers = parsePowerMethod(value, `host ${host.name} PowerMethod`).map((s) =>
    driverFor(host, s, ctx),
  );
  return drivers.length === 1 ? drivers[0]! : new PowerChain(drivers);
}

/** Off, a pause, on: a power cycle. */
export async function powerCycle(driver: PowerDriver, offSeconds = 2): Promise<void> {
  await driver.set('off');
  await new Promise((r) => setTimeout(r, offSeconds * 1000));
  await driver.set('on');
}
