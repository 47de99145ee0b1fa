/**
 * Power method `command`: the site's own tools. The host's properties name shell commands:
 * `PowerOnCommand`, `PowerOffCommand` and, optionally, `PowerStatusCommand` (prints `on` or `off`).
 * Each runs with `sh -c`, with OSSTEST_HOST (and OSSTEST_POWER, the state asked for) in its environment,
 * for at most 120 s. Without a status command the state cannot be read back: a command that exits 0 is
 * trusted and `get` says `unknown`.
 *
 * Tested with shell commands keeping the state in a file (test/unit/power.test.ts).
 */
import { execa } from 'execa';
import { type PowerDriver, PowerError, type PowerHost, type PowerState, waitForState } from './types.js';

const TIMEOUT_MS = 120_000;

export class CommandPower implements PowerDriver {
  readonly method = 'command';
  constructor(
    private readonly host: PowerHost,
    private readonly log: (line: string) => void = () => {},
    /** How long to wait for the status to read back what was asked. */
    private readonly settleMs = 30_000,
  ) {}

  private async run(prop: string, env: Record<string, string> = {}) {
    const cmd = this.host.prop(prop);
    if (!cmd) {
      throw new PowerError(this.host.name, this.method, `host property ${prop} is not set`);
    }
    const r = await execa('sh', ['-c', cmd], {
      reject: false,
      timeout: TIMEOUT_MS,
      env: { OSSTEST_HOST: this.host.name, ...env },
      all: true,
    });
    if (r.exitCode !== 0 || r.timedOut) {
      const why = r.timedOut ? `timed out after ${TIMEOUT_MS / 1000} s` : `exited ${r.exitCode ?? r.signal}`;
      throw new PowerError(
        this.host.name,
        this.method,
        `${prop} \`${cmd}\` ${why}${r.all?.trim() ? `: ${r.all.trim().slice(-500)}` : ''}`,
      );
    }
    return r.stdout.trim();
  }

  async get(): Promise<PowerState> {
    if (!this.host.prop('PowerStatusCommand')) return 'unknown';
    const out = (await this.run('PowerStatusCommand')).toLowerCase();
    if (out === 'on' || out === 'off') return out;
    throw new PowerError(
      this.host.name,
      this.method,
      `PowerStatusCommand printed ${JSON.stringify(out.slice(0, 100))}, not on or off`,
    );
  }

  async set(state: 'on' | 'off'): Promise<void> {
    const known = this.host.prop('PowerStatusCommand') !== undefined;
    if (known && (await this.get()) === state) return;
    this.log(`command: switching ${this.host.name} ${state}`);
    await this.run(state === 'on' ? 'PowerOnCommand' : 'PowerOffCommand', { OSSTEST_POWER: state });
    if (!known) return;
    const now = await waitForState(() => this.get(), state, this.settleMs, 250);
    if (now !== state) {
      throw new PowerError(this.host.name, this.method, `asked for ${state}, status still says ${now}`);
    }
  }
}
