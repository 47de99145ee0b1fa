/**
 * Capturing a host's serial console into a job's log, `<Logs>/<flight>/<job>/serial-<host>.log`.
 * Each testcase that touches the host captures while it runs; where it stopped is kept next to the log
 * (`.serial-<host>.pos`), so the next testcase of the job resumes there and, for file-backed consoles,
 * nothing the host printed between testcases is lost.
 */
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeAtomic } from '../remote/keys.js';
import type { ConsolePosition, SerialConsole } from './types.js';

export interface SerialCapture {
  readonly logFile: string;
  /** Bytes written to the log by this capture so far. */
  readonly bytes: number;
  stop(): Promise<void>;
}

export function serialLogPath(jobLogDir: string, host: string): string {
  return join(jobLogDir, `serial-${host}.log`);
}

function positionFile(logFile: string): string {
  return join(dirname(logFile), `.${logFile.slice(dirname(logFile).length + 1).replace(/\.log$/, '')}.pos`);
}

function readPosition(file: string): ConsolePosition | undefined {
  try {
    const p = JSON.parse(readFileSync(file, 'utf8')) as ConsolePosition;
    return typeof p.file === 'string' && typeof p.offset === 'number' ? p : undefined;
  } catch {
    return undefined;
  }
}

export async function startSerialCapture(console: SerialConsole, logFile: string): Promise<SerialCapture> {
  mkdirSync(dirname(logFile), { recursive: true });
  const posFile = positionFile(logFile);
  let bytes = 0;
  const follower = await console.follow((chunk) => {
    appendFileSync(logFile, chunk);
    bytes += chunk.length;
  }, readPosition(posFile));
  return {
    logFile,
    get bytes() {
      return bytes;
    },
    stop: async () => {
      const pos = await follower.stop();
      if (pos) writeAtomic(posFile, `${JSON.stringify(pos)}\n`, 0o644);
    },
  };
}
