/**
 * Which data pumps the TFTP tests run against: always the JS one, and the native one when it is built.
 * An unbuilt native pump is skipped loudly, and under CI=true it is a failure (CI must not quietly test
 * only the fallback).
 */
import { nativePump } from '../../src/provision/tftp/native-pump.js';
import { underCI } from './env.js';

export type TestedPump = 'js' | 'native';

function pumps(): TestedPump[] {
  const status = nativePump();
  if (status.available) return ['js', 'native'];
  const msg = `TFTP native pump: ${status.reason}`;
  if (underCI) throw new Error(`${msg} (CI=true: refusing to skip)`);
  process.stderr.write(`\n*** SKIPPING the native-pump variants of these tests: ${msg} ***\n\n`);
  return ['js'];
}

export const PUMPS: TestedPump[] = pumps();
