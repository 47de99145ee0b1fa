/** Opens the store the configuration names: sqlite for standalone (JobDB Standalone), PostgreSQL for a lab. */
import type { Config } from '../config/config.js';
import { ConfigError } from '../config/errors.js';
import { openStore } from './open.js';
import type { Store } from './store.js';

export async function openConfiguredStore(config: Config): Promise<Store> {
  const kind = config.string('JobDB');
  if (kind === 'Standalone') return openStore({ kind: 'sqlite', path: config.path('StandaloneDb') });
  if (kind === 'Executive') {
    return openStore({ kind: 'postgres', connection: config.optString('ExecutiveDbConnection') ?? '' });
  }
  const where = config.origin('JobDB');
  throw new ConfigError(`JobDB must be Standalone or Executive, not '${kind}'`, where?.file, where?.line);
}
