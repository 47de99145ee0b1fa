/** Serial method `none`: the host's console is not captured. */
import type { ConsoleFollower, SerialConsole } from './types.js';

export class NoConsole implements SerialConsole {
  readonly method = 'none';
  readonly describe = 'no serial console';
  async follow(): Promise<ConsoleFollower> {
    return { stop: async () => undefined };
  }
}
