/**
 * Serial method `ipmi-sol BMC [USER [INTERFACE]]`: Serial-over-LAN through the board's management
 * controller, read from `ipmitool … sol activate` (password from the host property `IpmiPassword`,
 * passed in the environment with -E). A session that ends is restarted every 2 s while following; on
 * stop the session is deactivated so the next one is not refused as "already active".
 *
 * Implemented but not tested end to end: there is no BMC here. Only its argument handling is unit-tested.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { execa } from 'execa';
import type { PowerHost } from '../power/types.js';
import { ConsoleError, type ConsoleFollower, type SerialConsole } from './types.js';

export class IpmiSolConsole implements SerialConsole {
  readonly method = 'ipmi-sol';
  constructor(
    private readonly host: PowerHost,
    private readonly args: readonly string[],
  ) {
    if (args.length < 1 || args.length > 3) {
      throw new ConsoleError(
        host.name,
        this.method,
        'SerialMethod ipmi-sol wants: ipmi-sol BMC [USER [INTERFACE]]',
      );
    }
  }

  get describe(): string {
    return `ipmi-sol ${this.args[0]}`;
  }

  /** ipmitool's arguments for a `sol` subcommand, and its environment. */
  command(sub: 'activate' | 'deactivate'): { argv: string[]; env: Record<string, string> } {
    const [bmc, user, iface] = this.args;
    const argv = ['-I', iface ?? 'lanplus', '-H', bmc!];
    if (user) argv.push('-U', user);
    const password = this.host.prop('IpmiPassword');
    if (password !== undefined) argv.push('-E');
    argv.push('sol', sub);
    return { argv, env: password !== undefined ? { IPMI_PASSWORD: password } : {} };
  }

  async follow(sink: (chunk: Buffer) => void): Promise<ConsoleFollower> {
    let stopped = false;
    let child: ChildProcess | undefined;
    let retry: NodeJS.Timeout | undefined;
    const start = () => {
      if (stopped) return;
      const { argv, env } = this.command('activate');
      const c = spawn('ipmitool', argv, {
        stdio: ['pipe', 'pipe', 'ignore'],
        env: { ...process.env, ...env },
      });
      child = c;
      c.stdout?.on('data', (d: Buffer) => sink(d));
      c.on('error', () => {});
      c.on('close', () => {
        if (!stopped) retry = setTimeout(start, 2_000);
      });
    };
    start();
    return {
      stop: async () => {
        stopped = true;
        if (retry) clearTimeout(retry);
        child?.kill('SIGTERM');
        const { argv, env } = this.command('deactivate');
        await execa('ipmitool', argv, { reject: false, timeout: 15_000, env });
        return undefined;
      },
    };
  }
}
