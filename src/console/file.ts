/**
 * Serial method `file PATH`: a file that something else keeps writing the host's console into (a
 * console server's log, conserver, QEMU's `-serial file:`). Followed by polling its size (inotify
 * misses writes made through some network filesystems); a file that is replaced or truncated is read
 * again from its start.
 *
 * Tested with files appended to by the test and by QEMU (test/unit/console.test.ts, the e2e test).
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import type { ConsoleFollower, ConsolePosition, SerialConsole } from './types.js';

const POLL_MS = 200;
const CHUNK = 64 * 1024;

function statOf(path: string): { ino: number; size: number } | undefined {
  try {
    const s = statSync(path);
    return { ino: s.ino, size: s.size };
  } catch {
    return undefined;
  }
}

export class FileConsole implements SerialConsole {
  readonly method: string = 'file';
  constructor(readonly path: string) {}

  get describe(): string {
    return `file ${this.path}`;
  }

  async follow(sink: (chunk: Buffer) => void, from?: ConsolePosition): Promise<ConsoleFollower> {
    const first = statOf(this.path);
    let ino = first?.ino ?? -1;
    let offset = first?.size ?? 0;
    if (from && from.file === this.path && first && from.ino === first.ino && from.offset <= first.size) {
      offset = from.offset;
    }
    const drain = () => {
      const now = statOf(this.path);
      if (!now) return;
      if (now.ino !== ino || now.size < offset) {
        // Replaced or truncated: the new content is all new.
        ino = now.ino;
        offset = 0;
      }
      if (now.size <= offset) return;
      let fd: number;
      try {
        fd = openSync(this.path, 'r');
      } catch {
        return;
      }
      try {
        const buf = Buffer.alloc(CHUNK);
        while (offset < now.size) {
          const n = readSync(fd, buf, 0, Math.min(CHUNK, now.size - offset), offset);
          if (n <= 0) break;
          offset += n;
          sink(Buffer.from(buf.subarray(0, n)));
        }
      } finally {
        closeSync(fd);
      }
    };
    drain();
    const timer = setInterval(drain, POLL_MS);
    return {
      stop: async () => {
        clearInterval(timer);
        drain();
        return ino === -1 ? undefined : { file: this.path, ino, offset };
      },
    };
  }
}
