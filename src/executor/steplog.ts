/**
 * A step's log file: every line stamped with the time it was written, and a last line with how
 * the testcase ended, so a log read months later still says what happened.
 */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { logStamp } from '../model/testcase-protocol.js';

export class StepLog {
  private readonly out: WriteStream;
  private partial = '';
  private readonly closed: Promise<void>;

  constructor(
    readonly path: string,
    private readonly onLine?: (line: string) => void,
  ) {
    mkdirSync(dirname(path), { recursive: true });
    this.out = createWriteStream(path, { flags: 'a' });
    this.closed = new Promise((resolve, reject) => {
      this.out.on('close', resolve);
      this.out.on('error', reject);
    });
  }

  /** Raw output from the testcase; complete lines are stamped and written, the rest waits. */
  write(chunk: string): void {
    const text = this.partial + chunk;
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    for (const l of lines) this.line(l);
  }

  line(text: string): void {
    this.out.write(`${logStamp()} ${text}\n`);
    this.onLine?.(text);
  }

  async close(finalLine?: string): Promise<void> {
    if (this.partial !== '') {
      this.line(this.partial);
      this.partial = '';
    }
    if (finalLine !== undefined) this.line(finalLine);
    this.out.end();
    await this.closed;
  }
}
