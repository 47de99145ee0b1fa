/**
 * Power method `ipmi BMC [USER [INTERFACE]]`: the board's management controller, through ipmitool
 * (`-I lanplus` unless INTERFACE says otherwise). The password comes from the host property
 * `IpmiPassword` and reaches ipmitool through its environment (`-E`), never its command line.
 * Idempotent: the state is read first and a host already in the wanted state is left alone (some
 * BMCs reset a running board on a second "on"); after switching, the state is polled until it obeys.
 *
 * Tested only against a fake `ipmitool` script put first in PATH (test/unit/power.test.ts), which
 * checks the arguments and keeps the state in a file; not against real BMC hardware.
 */
import { execa } from 'execa';
import { type PowerDriver, PowerError, type PowerHost, type PowerState, waitForState } from './types.js';

export class IpmiPower implements PowerDriver {
  readonly method = 'ipmi';
  constructor(
    private readonly host: PowerHost,
    private readonly args: readonly string[],
    private readonly log: (line: string) => void = () => {},
    private readonly settleMs = 60_000,
  ) {
    if (args.length < 1 || args.length > 3) {
      throw new PowerError(host.name, this.method, 'PowerMethod ipmi wants: ipmi BMC [USER [INTERFACE]]');
    }
  }

  private async ipmitool(words: string[]): Promise<string> {
    const [bmc, user, iface] = this.args;
    const argv = ['-I', iface ?? 'lanplus', '-H', bmc!];
    if (user) argv.push('-U', user);
    const password = this.host.prop('IpmiPassword');
    if (password !== undefined) argv.push('-E');
    argv.push(...words);
    const r = await execa('ipmitool', argv, {
      reject: false,
      timeout: 30_000,
      env: password !== undefined ? { IPMI_PASSWORD: password } : {},
    });
    if (r.exitCode !== 0 || r.timedOut) {
      const why = r.failed && r.exitCode === undefined ? r.shortMessage : `exited ${r.exitCode}`;
      throw new PowerError(
        this.host.name,
        this.method,
        `ipmitool ${words.join(' ')} (BMC ${bmc}) ${why}: ${r.stderr.trim().slice(-500)}`,
      );
    }
    return r.stdout;
  }

  async get(): Promise<PowerState> {
    const out = await this.ipmitool(['chassis', 'power', 'status']);
    const m = /Chassis Power is (on|off)/i.exec(out);
    if (!m) {
      throw new PowerError(
        this.host.name,
        this.method,
        `cannot read power status from ${JSON.stringify(out.trim())}`,
      );
    }
    return m[1]!.toLowerCase() as 'on' | 'off';
  }

  async set(state: 'on' | 'off'): Promise<void> {
    if ((await this.get()) === state) return;
    this.log(`ipmi: chassis power ${state} for ${this.host.name}`);
    await this.ipmitool(['chassis', 'power', state]);
    const now = await waitForState(() => this.get(), state, this.settleMs, 1_000);
    if (now !== state) {
      throw new PowerError(this.host.name, this.method, `asked for ${state}, BMC still says ${now}`);
    }
  }
}
