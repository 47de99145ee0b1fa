/**
 * Serial consoles, one small module per method: each can follow what a host prints on its serial port
 * and hand it over in chunks. A host's `SerialMethod` property is `name arg…`: `qemu VMDIR`,
 * `file PATH`, `tcp HOST:PORT`, `ipmi-sol BMC [USER [INTERFACE]]`, `none`.
 *
 * File-backed consoles (qemu, file) keep everything the host printed, so following can resume where the
 * previous follower stopped, even from another process: that is how one serial log covers a whole job
 * whose testcases are separate processes. Stream consoles (tcp, ipmi-sol) only see what is printed while
 * they follow.
 */

/** Where a file-backed follower stopped: the file (by inode, so a replaced file is noticed) and offset. */
export interface ConsolePosition {
  file: string;
  ino: number;
  offset: number;
}

export interface ConsoleFollower {
  /** Stops after reading what is already there; returns where it stopped (file-backed consoles). */
  stop(): Promise<ConsolePosition | undefined>;
}

export interface SerialConsole {
  readonly method: string;
  /** What it reads, for logs. */
  readonly describe: string;
  /**
   * Calls `sink` with everything printed from now on, or, for file-backed consoles given `from`,
   * from that position (if it is still the same file).
   */
  follow(sink: (chunk: Buffer) => void, from?: ConsolePosition): Promise<ConsoleFollower>;
}

export class ConsoleError extends Error {
  override name = 'ConsoleError';
  constructor(host: string, method: string, message: string, options?: { cause?: unknown }) {
    super(`serial ${method} of ${host}: ${message}`, options);
  }
}
