/**
 * Power control of a host, one small module per method (labgrid's shape): `set` asks for a state and
 * then reads it back, failing if the device did not obey; `get` reads the state.
 *
 * A host's `PowerMethod` property is a `;`-separated list of methods, each `name arg…` (words split on
 * blanks), e.g. `qemu /var/lib/osstest/lab/vms/lab-q0` or `ipmi bmc-3 admin` or `command`. Several
 * methods are applied in order (a PDU outlet, then the board's own controller): power on switches each
 * on in order, power off each off in reverse order; the state read back is the last method's that can
 * tell.
 */

export type PowerState = 'on' | 'off' | 'unknown';

export interface PowerDriver {
  /** `qemu`, `ipmi`, `command`, `manual`: for messages. */
  readonly method: string;
  /** Switches to `state` and verifies it (unless the method cannot read the state back). */
  set(state: 'on' | 'off'): Promise<void>;
  get(): Promise<PowerState>;
}

/** What a power method learns about its host. */
export interface PowerHost {
  name: string;
  /** The host's effective property (config over host database). */
  prop(name: string): string | undefined;
}

export interface PowerContext {
  log?: (line: string) => void;
  /** For `manual`: where the prompt is written and the answer read. Default: the controlling terminal. */
  terminal?: { input: NodeJS.ReadableStream; output: NodeJS.WritableStream };
}

export class PowerError extends Error {
  override name = 'PowerError';
  constructor(
    readonly host: string,
    readonly method: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`power ${method} of ${host}: ${message}`, options);
  }
}

export interface MethodSpec {
  name: string;
  args: string[];
}

/** `qemu /x; ipmi bmc admin` → [{name: 'qemu', args: ['/x']}, {name: 'ipmi', args: ['bmc', 'admin']}]. */
export function parsePowerMethod(value: string, where: string): MethodSpec[] {
  const specs = value
    .split(';')
    .map((part) =>
      part
        .trim()
        .split(/\s+/)
        .filter((w) => w !== ''),
    )
    .filter((words) => words.length > 0)
    .map(([name, ...args]) => ({ name: name!, args }));
  if (specs.length === 0) throw new Error(`${where}: empty power method`);
  return specs;
}

/** Polls `get` until it says `want` or `timeoutMs` passes; returns the last state read. */
export async function waitForState(
  get: () => Promise<PowerState>,
  want: PowerState,
  timeoutMs: number,
  intervalMs = 200,
): Promise<PowerState> {
  const deadline = Date.now() + timeoutMs;
  let s = await get();
  while (s !== want && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, intervalMs));
    s = await get();
  }
  return s;
}
