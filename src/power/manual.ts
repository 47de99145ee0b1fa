/**
 * Power method `manual`: a person does it. The prompt goes to the terminal (or the streams given) and
 * the answer is read there: Enter once done, or `fail` (anything starting with f/n) if it could not be
 * done. The state cannot be read back other than by asking, so `get` says `unknown`.
 *
 * Tested with in-memory streams standing in for the terminal (test/unit/power.test.ts).
 */
import { openSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { ReadStream, WriteStream } from 'node:tty';
import { type PowerContext, type PowerDriver, PowerError, type PowerState } from './types.js';

export class ManualPower implements PowerDriver {
  readonly method = 'manual';
  constructor(
    private readonly host: string,
    private readonly terminal?: PowerContext['terminal'],
  ) {}

  async get(): Promise<PowerState> {
    return 'unknown';
  }

  private openTerminal(): { input: NodeJS.ReadableStream; output: NodeJS.WritableStream; close(): void } {
    if (this.terminal) return { ...this.terminal, close: () => {} };
    let fd: number;
    try {
      fd = openSync('/dev/tty', 'r+');
    } catch (err) {
      throw new PowerError(
        this.host,
        this.method,
        `power method manual needs a terminal to ask on, and /dev/tty cannot be opened (${(err as Error).message})`,
      );
    }
    const input = new ReadStream(fd);
    const output = new WriteStream(fd);
    return {
      input,
      output,
      close: () => {
        input.destroy();
      },
    };
  }

  async set(state: 'on' | 'off'): Promise<void> {
    const t = this.openTerminal();
    try {
      const rl = createInterface({ input: t.input, output: t.output, terminal: false });
      const answer = await new Promise<string | undefined>((resolve) => {
        t.output.write(
          `\nosstest: please switch host ${this.host} ${state.toUpperCase()}, then press Enter (type "fail" if you cannot): `,
        );
        rl.once('line', (line) => resolve(line));
        rl.once('close', () => resolve(undefined));
      });
      rl.close();
      if (answer === undefined) {
        throw new PowerError(this.host, this.method, `no answer on the terminal (asked to switch ${state})`);
      }
      if (/^\s*[fn]/i.test(answer)) {
        throw new PowerError(
          this.host,
          this.method,
          `the operator could not switch it ${state}: ${answer.trim()}`,
        );
      }
    } finally {
      t.close();
    }
  }
}
