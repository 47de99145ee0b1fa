/**
 * The native data pump (native/tftp-pump, built by `npm run build:native`, which scripts/setup runs):
 * loads it if it is there and says plainly why not otherwise, so the server can fall back to the JS
 * pump on a machine without a compiler while CI can insist on it (test/integration/tftp-native-pump).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface PumpStart {
  /** The open file's descriptor; the caller keeps it open until onEnd and closes it then. */
  fd: number;
  /** Where the transfer's strays socket is bound: the pump binds the same (SO_REUSEADDR). */
  localAddress: string;
  localPort: number;
  peerAddress: string;
  peerPort: number;
  blksize: number;
  windowsize: number;
  timeoutMs: number;
  retries: number;
  /** Sent first, and repeated until ACK 0; absent = start with DATA 1. */
  oack?: Buffer;
}

export interface PumpCounters {
  packetsReceived: number;
  bytesSent: number;
  retransmissions: number;
  timeouts: number;
  droppedMalformed: number;
}

export interface PumpResult extends PumpCounters {
  outcome: 'completed' | 'aborted' | 'timeout' | 'failed';
  /** File bytes the client acknowledged. */
  bytes: number;
  /** The ERROR code the pump sent the client, -1 for none. */
  errorSent: number;
  /** With outcome timeout: the block (unwrapped; 0 = the OACK) that was never acknowledged. */
  timeoutBlock: number;
  /** With outcome aborted: the client's ERROR. */
  peerErrorCode: number;
  peerErrorMessage: Buffer;
  /** With outcome failed, unless aborted from JS: what went wrong ("read error: …"). */
  failure: string;
  /** Why the first malformed packet was dropped, in parsePeerPacket's words; '' if none. */
  firstDrop: string;
  /** Send/receive errors the pump rode out (ICMP unreachable …), and the last one's text. */
  socketErrors: number;
  lastSocketError: string;
}

/** An opaque handle; the addon checks its type tag. */
export type PumpHandle = { readonly __tftpPump: unique symbol };

export interface PumpBinding {
  start(opts: PumpStart, onEnd: (r: PumpResult) => void): PumpHandle;
  /** Ends the transfer: the pump sends ERROR `code` with `message` (latin1) and reports `failed`. */
  abort(h: PumpHandle, code: number, message: Buffer): void;
  counters(h: PumpHandle): PumpCounters;
}

export type NativePumpStatus =
  | { available: true; binding: PumpBinding; path: string }
  | { available: false; reason: string };

const ADDON_DIR = join('native', 'tftp-pump');
const ADDON_FILE = join(ADDON_DIR, 'build', 'Release', 'tftp_pump.node');

/** The checkout's root: the nearest directory up from this module with native/tftp-pump (from src/ or dist/src/). */
function checkoutRoot(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, ADDON_DIR, 'binding.gyp'))) return dir;
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

function load(): NativePumpStatus {
  if (process.platform !== 'linux') {
    return { available: false, reason: `the native TFTP pump is Linux-only (this is ${process.platform})` };
  }
  const root = checkoutRoot();
  if (root === undefined) return { available: false, reason: `${ADDON_DIR} not found above this module` };
  const path = join(root, ADDON_FILE);
  if (!existsSync(path)) {
    return { available: false, reason: `${path} is not built (npm run build:native; scripts/setup does it)` };
  }
  let mod: unknown;
  try {
    mod = createRequire(import.meta.url)(path);
  } catch (e) {
    return {
      available: false,
      reason: `${path} does not load: ${e instanceof Error ? e.message : String(e)}`,
    };
  }
  const m = mod as Partial<Record<keyof PumpBinding, unknown>>;
  if (typeof m.start !== 'function' || typeof m.abort !== 'function' || typeof m.counters !== 'function') {
    return { available: false, reason: `${path} is not the TFTP pump (no start/abort/counters)` };
  }
  return { available: true, binding: mod as PumpBinding, path };
}

let status: NativePumpStatus | undefined;

/** Loads the addon on first use; the answer does not change afterwards. */
export function nativePump(): NativePumpStatus {
  status ??= load();
  return status;
}
