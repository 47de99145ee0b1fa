/** Serial console methods, picked by a host's `SerialMethod` property (see types.ts). */
import type { PowerHost } from '../power/types.js';
import { FileConsole } from './file.js';
import { IpmiSolConsole } from './ipmi-sol.js';
import { NoConsole } from './none.js';
import { QemuConsole } from './qemu.js';
import { TcpConsole } from './tcp.js';
import { ConsoleError, type SerialConsole } from './types.js';

export { type SerialCapture, startSerialCapture } from './capture.js';
export { FileConsole } from './file.js';
export { IpmiSolConsole } from './ipmi-sol.js';
export { NoConsole } from './none.js';
export { QemuConsole } from './qemu.js';
export { parseHostPort, TcpConsole } from './tcp.js';
export * from './types.js';

export const SERIAL_METHODS = ['qemu', 'file', 'tcp', 'ipmi-sol', 'none'] as const;

/** The console of a host, from its SerialMethod property; no property means `none`. */
export function consoleFor(host: PowerHost): SerialConsole {
  const value = host.prop('SerialMethod')?.trim() ?? 'none';
  const [name, ...args] = value.split(/\s+/);
  const want = (n: number, usage: string) => {
    if (args.length !== n) throw new ConsoleError(host.name, name ?? '', `SerialMethod wants: ${usage}`);
  };
  switch (name) {
    case 'none':
    case '':
      return new NoConsole();
    case 'qemu':
      want(1, 'qemu VMDIR');
      return new QemuConsole(args[0]!);
    case 'file':
      want(1, 'file PATH');
      return new FileConsole(args[0]!);
    case 'tcp':
      want(1, 'tcp HOST:PORT');
      return new TcpConsole(host.name, args[0]!);
    case 'ipmi-sol':
      return new IpmiSolConsole(host, args);
    default:
      throw new ConsoleError(
        host.name,
        name ?? '',
        `unknown serial method (known: ${SERIAL_METHODS.join(', ')})`,
      );
  }
}
