/** What a testcase needs to reach a host: its address and ssh settings, from the host database and config. */
import { readFileSync } from 'node:fs';
import type { Config } from '../config/config.js';
import type { Store } from '../db/store.js';
import type { Host } from '../db/types.js';
import type { HostKeyStore, SshTarget } from '../remote/index.js';

export interface HostInfo {
  name: string;
  address: string;
  port: number;
  user: string;
  flags: string[];
  /** Effective property: config HostProp_<host>_<Prop> > host database > HostProp_<Prop> > default. */
  prop(name: string): string | undefined;
  /** Where testcases keep their files on the host. */
  workdir: string;
}

export function hostInfo(config: Config, host: Host): HostInfo {
  const prop = (p: string) => config.hostProp(host.name, p, host.props);
  return {
    name: host.name,
    address: prop('Ip') ?? host.ip ?? host.name,
    port: Number(prop('SshPort') ?? config.string('SshPort')),
    user: prop('SshUser') ?? config.string('SshUser'),
    flags: config.hostFlags(host.name, host.flags),
    prop,
    workdir: prop('Workdir') ?? '/var/tmp/osstest',
  };
}

/** Host keys live in the host database as the `SshHostKey` property, recorded on first contact. */
export class DbHostKeyStore implements HostKeyStore {
  constructor(private readonly store: Store) {}
  async get(host: string): Promise<string | undefined> {
    return (await this.store.getHost(host))?.props.SshHostKey;
  }
  async record(host: string, key: string): Promise<void> {
    await this.store.setHostProp(host, 'SshHostKey', key);
  }
}

export function sshTarget(config: Config, store: Store, h: HostInfo): SshTarget {
  return {
    host: h.name,
    address: h.address,
    port: h.port,
    username: h.user,
    privateKey: readFileSync(config.path('TestHostKeypairPath')),
    hostKeys: new DbHostKeyStore(store),
    connectTimeoutMs: config.int('SshConnectTimeout') * 1000,
  };
}
