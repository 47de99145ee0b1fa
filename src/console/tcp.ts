/**
 * Serial method `tcp HOST:PORT`: a console server (ser2net, a terminal server port, QEMU's
 * `-serial tcp:…,server`) that sends the console's bytes to whoever connects. Only reads: nothing is
 * written to the port. A dropped connection is retried every second while following.
 *
 * Tested against a local TCP server that sends text and drops the connection (test/unit/console.test.ts).
 */
import { connect, type Socket } from 'node:net';
import { ConsoleError, type ConsoleFollower, type SerialConsole } from './types.js';

export function parseHostPort(value: string, host: string): { address: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value);
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65535) {
    throw new ConsoleError(host, 'tcp', `SerialMethod tcp wants HOST:PORT, not ${JSON.stringify(value)}`);
  }
  return { address: (m[1] ?? m[2])!, port };
}

export class TcpConsole implements SerialConsole {
  readonly method = 'tcp';
  readonly address: string;
  readonly port: number;
  constructor(
    host: string,
    target: string,
    private readonly retryMs = 1_000,
  ) {
    ({ address: this.address, port: this.port } = parseHostPort(target, host));
  }

  get describe(): string {
    return `tcp ${this.address}:${this.port}`;
  }

  async follow(sink: (chunk: Buffer) => void): Promise<ConsoleFollower> {
    let stopped = false;
    let socket: Socket | undefined;
    let retry: NodeJS.Timeout | undefined;
    const open = () => {
      if (stopped) return;
      const s = connect({ host: this.address, port: this.port });
      socket = s;
      s.on('data', (d: Buffer) => sink(d));
      s.on('error', () => {});
      s.on('close', () => {
        if (!stopped) retry = setTimeout(open, this.retryMs);
      });
    };
    open();
    return {
      stop: async () => {
        stopped = true;
        if (retry) clearTimeout(retry);
        if (socket && !socket.destroyed) {
          // Let bytes already in flight arrive before closing.
          await new Promise((r) => setTimeout(r, 50));
          socket.destroy();
        }
        return undefined;
      },
    };
  }
}
