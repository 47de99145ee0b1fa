/**
 * The ramdisk: the cpio writer (listed with busybox's own cpio, an independent reader), module
 * dependencies from .modinfo, and the image's contents (listed, scripts syntax-checked with busybox sh).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KernelImage } from '../../src/provision/images/kernel.js';
import { writeCpio } from '../../src/provision/install/cpio.js';
import { indexModules, moduleClosure, readModinfo } from '../../src/provision/install/kmod.js';
import {
  buildRamdisk,
  hostOverlay,
  makeDropbearHostKey,
  sharedLibraries,
} from '../../src/provision/install/ramdisk.js';
import { hostConf, INIT, RCS, UDHCPC_SCRIPT } from '../../src/provision/install/ramdisk-files.js';
import { prerequisites } from '../helpers/env.js';

const BUSYBOX = '/bin/busybox';

/** `busybox cpio -tv` of an archive: lines `mode path [-> target]`. */
function list(archive: Buffer): string[] {
  const out = execFileSync(BUSYBOX, ['cpio', '-tv'], {
    input: archive,
    stdio: ['pipe', 'pipe', 'ignore'],
  }).toString();
  return out
    .trim()
    .split('\n')
    .map((l) => {
      const f = l.split(/\s+/);
      return `${f[0]} ${f.slice(5).join(' ')}`;
    });
}

/** A minimal ELF64 relocatable object with a .modinfo section, as a kernel module has. */
function fakeModule(modinfo: Record<string, string>): Buffer {
  const info = Buffer.from(
    `${Object.entries(modinfo)
      .map(([k, v]) => `${k}=${v}`)
      .join('\0')}\0`,
  );
  const shstr = Buffer.from('\0.shstrtab\0.modinfo\0');
  const infoAt = 64;
  const strAt = infoAt + info.length;
  const shoff = strAt + shstr.length;
  const head = Buffer.alloc(64);
  head.writeUInt32BE(0x7f454c46, 0);
  head[4] = 2; // 64-bit
  head[5] = 1; // little-endian
  head[6] = 1;
  head.writeUInt16LE(1, 16); // ET_REL
  head.writeUInt16LE(62, 18); // x86-64
  head.writeBigUInt64LE(BigInt(shoff), 0x28);
  head.writeUInt16LE(64, 0x34);
  head.writeUInt16LE(64, 0x3a);
  head.writeUInt16LE(3, 0x3c);
  head.writeUInt16LE(1, 0x3e);
  const sh = (name: number, type: number, offset: number, size: number) => {
    const b = Buffer.alloc(64);
    b.writeUInt32LE(name, 0);
    b.writeUInt32LE(type, 4);
    b.writeBigUInt64LE(BigInt(offset), 24);
    b.writeBigUInt64LE(BigInt(size), 32);
    return b;
  };
  return Buffer.concat([
    head,
    info,
    shstr,
    sh(0, 0, 0, 0),
    sh(1, 3, strAt, shstr.length),
    sh(11, 1, infoAt, info.length),
  ]);
}

describe.skipIf(!prerequisites('ramdisk tools', { commands: [BUSYBOX] }))('cpio newc writer', () => {
  it('writes what busybox cpio lists: parents first, modes, symlinks, device nodes', () => {
    const a = writeCpio([
      { type: 'file', path: 'bin/busybox', data: Buffer.from('x'), mode: 0o755 },
      { type: 'symlink', path: 'bin/sh', target: 'busybox' },
      { type: 'chardev', path: 'dev/console', major: 5, minor: 1 },
      { type: 'dir', path: 'tmp', mode: 0o1777 },
      { type: 'file', path: './etc//passwd', data: 'root:x:0:0::/root:/bin/sh\n' },
    ]);
    expect(list(a)).toEqual([
      'drwxr-xr-x bin',
      '-rwxr-xr-x bin/busybox',
      'lrwxrwxrwx bin/sh -> busybox',
      'drwxr-xr-x dev',
      'crw------- dev/console',
      'drwxrwxrwt tmp',
      'drwxr-xr-x etc',
      '-rw-r--r-- etc/passwd',
    ]);
    // Extracted, the contents are exact.
    const d = mkdtempSync(join(tmpdir(), 'osstest-cpio-'));
    try {
      const noDev = writeCpio([{ type: 'file', path: 'etc/passwd', data: 'root:x:0:0::/root:/bin/sh\n' }]);
      execFileSync(BUSYBOX, ['cpio', '-id'], { input: noDev, cwd: d, stdio: ['pipe', 'ignore', 'ignore'] });
      expect(readFileSync(join(d, 'etc', 'passwd'), 'utf8')).toBe('root:x:0:0::/root:/bin/sh\n');
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('is reproducible, and refuses a path listed twice or leaving the archive', () => {
    const e = [{ type: 'file' as const, path: 'a', data: 'x' }];
    expect(writeCpio(e).equals(writeCpio(e))).toBe(true);
    expect(() => writeCpio([...e, ...e])).toThrow(/listed twice/);
    expect(() => writeCpio([{ type: 'file', path: '../etc/x', data: '' }])).toThrow(/bad archive path/);
  });
});

describe('kernel module dependencies', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'osstest-kmod-'));
    const put = (rel: string, info: Record<string, string>) => {
      mkdirSync(join(dir, rel, '..'), { recursive: true });
      writeFileSync(join(dir, rel), fakeModule(info));
    };
    put('kernel/drivers/net/virtio_net.ko', { depends: 'virtio,net_failover', name: 'virtio_net' });
    put('kernel/drivers/virtio/virtio.ko', { depends: 'virtio_ring', name: 'virtio' });
    put('kernel/drivers/virtio/virtio_ring.ko', { depends: '', name: 'virtio_ring' });
    put('kernel/drivers/net/net_failover.ko', { depends: 'failover', name: 'net_failover' });
    put('kernel/net/core/failover.ko', { depends: '', name: 'failover' });
    put('kernel/drivers/net/ethernet/intel/e1000/e1000.ko', { depends: '', license: 'GPL' });
    put('kernel/loop/a.ko', { depends: 'b' });
    put('kernel/loop/b.ko', { depends: 'a' });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads .modinfo from the ELF section', () => {
    expect(readModinfo(fakeModule({ depends: 'x,y', license: 'GPL' }), 'm.ko')).toEqual([
      ['depends', 'x,y'],
      ['license', 'GPL'],
    ]);
    expect(() =>
      readModinfo(Buffer.from('not elf at all, not elf at all, not elf at all, not elf at all!'), 'x.ko'),
    ).toThrow(/x.ko: not a kernel module/);
  });

  it('orders the closure dependencies first', () => {
    const idx = indexModules(dir);
    expect(moduleClosure(idx, ['e1000']).map((m) => m.name)).toEqual(['e1000']);
    expect(moduleClosure(idx, ['virtio-net']).map((m) => m.name)).toEqual([
      'virtio_ring',
      'virtio',
      'failover',
      'net_failover',
      'virtio_net',
    ]);
  });

  it('names a missing module and a cycle', () => {
    const idx = indexModules(dir);
    expect(() => moduleClosure(idx, ['e1001'])).toThrow(/no module e1001 \(needed by the ramdisk\)/);
    expect(() => moduleClosure(idx, ['a'])).toThrow(/dependency cycle/);
  });
});

const haveTools = prerequisites('ramdisk image (busybox-static, dropbear-bin)', {
  commands: [BUSYBOX, '/usr/sbin/dropbear', 'dropbearkey', 'ldd', '/usr/lib/openssh/sftp-server'],
});

describe.skipIf(!haveTools)('the ramdisk image', () => {
  let dir: string;
  let kernel: KernelImage;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'osstest-ramdisk-'));
    const mods = join(dir, 'kernel-amd64', 'lib', 'modules', '6.1.0-test');
    mkdirSync(join(mods, 'kernel', 'net'), { recursive: true });
    writeFileSync(join(mods, 'kernel', 'net', 'e1000.ko'), fakeModule({ depends: 'mii' }));
    writeFileSync(join(mods, 'kernel', 'net', 'mii.ko'), fakeModule({ depends: '' }));
    kernel = {
      dir: join(dir, 'kernel-amd64'),
      arch: 'amd64',
      release: '6.1.0-test',
      vmlinuz: join(dir, 'vmlinuz'),
      modulesDir: mods,
      package: 'linux-image-test',
      version: '1',
      debSha256: '0',
      vmlinuzSha256: '0',
      fetchedAt: '',
    };
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('holds busybox, /init and the scripts, dropbear with its libraries, the modules in load order', async () => {
    const r = await buildRamdisk(join(dir, 'images'), { kernel });
    expect(r.cached).toBe(false);
    expect(r.modules).toEqual(['mii', 'e1000']);
    expect(r.path).toMatch(new RegExp(`/ramdisk/base-${r.sha256.slice(0, 20)}\\.cpio\\.gz$`));
    const cpio = gunzipSync(readFileSync(r.path));
    const names = list(cpio).map((l) => l.split(' ').slice(0, 2).join(' '));
    for (const want of [
      'crw------- dev/console',
      '-rwxr-xr-x init',
      '-rwxr-xr-x bin/busybox',
      '-rwxr-xr-x usr/sbin/dropbear',
      // Where Debian's dropbear runs the sftp subsystem from: files go to and from hosts over SFTP.
      '-rwxr-xr-x usr/lib/sftp-server',
      '-rwxr-xr-x etc/osstest/rcS',
      '-rwxr-xr-x etc/osstest/udhcpc.script',
      '-rw-r--r-- etc/inittab',
      '-rw-r--r-- lib/modules/e1000.ko',
      '-rw-r--r-- lib/modules/mii.ko',
    ]) {
      expect(names).toContain(want);
    }
    for (const [lib] of await sharedLibraries('/usr/sbin/dropbear'))
      expect(names).toContain(`-rwxr-xr-x ${lib.slice(1)}`);
    const d = mkdtempSync(join(dir, 'x-'));
    // Extract (device nodes need root; the listing above already showed it) and read the load order.
    execFileSync(BUSYBOX, ['cpio', '-id', 'etc/osstest/modules', 'init'], {
      input: cpio,
      cwd: d,
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    expect(readFileSync(join(d, 'etc', 'osstest', 'modules'), 'utf8')).toBe('mii.ko\ne1000.ko\n');
    expect(readFileSync(join(d, 'init'), 'utf8')).toBe(INIT);
  });

  it('is cached by content: the same inputs give the same file without building again', async () => {
    const a = await buildRamdisk(join(dir, 'images'), { kernel });
    const b = await buildRamdisk(join(dir, 'images'), { kernel });
    expect(b).toEqual({ ...a, cached: true });
    const c = await buildRamdisk(join(dir, 'images'), { kernel, modules: ['mii'] });
    expect(c.sha256).not.toBe(a.sha256);
  });

  it('has scripts busybox sh accepts', () => {
    for (const [name, text] of Object.entries({ INIT, RCS, UDHCPC_SCRIPT })) {
      const f = join(dir, name);
      writeFileSync(f, text);
      expect(() => execFileSync(BUSYBOX, ['sh', '-n', f]), name).not.toThrow();
    }
  });

  it('makes a per-host overlay: settings, authorized key, the host key dropbear made', async () => {
    const key = await makeDropbearHostKey('lab-q0', join(dir, 'keys'));
    expect(key.publicKey).toMatch(/^ssh-ed25519 [A-Za-z0-9+/=]+$/);
    const ov = gunzipSync(
      hostOverlay({
        host: 'lab-q0',
        mac: '52:54:00:D7:00:0A',
        progressUrl: 'http://10.215.0.1:80/host/lab-q0/progress',
        authorizedKeys: 'ssh-ed25519 AAAA lab',
        hostKey: key,
      }),
    );
    expect(list(ov)).toEqual([
      'drwxr-xr-x etc',
      'drwxr-xr-x etc/osstest',
      '-rw-r--r-- etc/osstest/host.conf',
      'drwx------ etc/dropbear',
      '-rw------- etc/dropbear/dropbear_ed25519_host_key',
      'drwx------ root',
      'drwx------ root/.ssh',
      '-rw------- root/.ssh/authorized_keys',
    ]);
    const d = mkdtempSync(join(dir, 'ov-'));
    execFileSync(BUSYBOX, ['cpio', '-id'], { input: ov, cwd: d, stdio: ['pipe', 'ignore', 'ignore'] });
    expect(readFileSync(join(d, 'etc', 'dropbear', 'dropbear_ed25519_host_key')).equals(key.privateKey)).toBe(
      true,
    );
    // dropbear itself reads the key back to the same public half.
    const pub = execFileSync('dropbearkey', [
      '-y',
      '-f',
      join(d, 'etc', 'dropbear', 'dropbear_ed25519_host_key'),
    ]).toString();
    expect(pub).toContain(key.publicKey);
    const conf = execFileSync(BUSYBOX, [
      'sh',
      '-c',
      '. "$1"; echo "$OSSTEST_HOST|$OSSTEST_MAC|$OSSTEST_PROGRESS_ADDR|$OSSTEST_PROGRESS_PORT|$OSSTEST_PROGRESS_PATH"',
      'sh',
      join(d, 'etc', 'osstest', 'host.conf'),
    ]).toString();
    expect(conf.trim()).toBe('lab-q0|52:54:00:d7:00:0a|10.215.0.1|80|/host/lab-q0/progress');
  });

  it('quotes settings safely and insists on an http URL with an IPv4 address', () => {
    expect(hostConf({ host: "it's", mac: 'aa', progressUrl: 'http://10.0.0.1/p' })).toContain(
      `OSSTEST_HOST='it'\\''s'`,
    );
    expect(() => hostConf({ host: 'h', mac: 'aa', progressUrl: 'http://controller/p' })).toThrow(/IPv4/);
    expect(() => hostConf({ host: 'h', mac: 'aa', progressUrl: 'https://10.0.0.1/p' })).toThrow(/http/);
  });
});

/**
 * rcS itself, run by busybox sh as far as its DHCP step: its absolute paths moved under a temporary
 * directory, and every command it runs on the way that would touch this machine (insmod, ip, hostname,
 * mount…) replaced by a shell function that logs the call. Functions, not programs on PATH: busybox's
 * sh runs its own applets before looking at PATH. The fake udhcpc fails, which ends the script.
 */
describe.skipIf(!prerequisites('rcS under busybox sh', { commands: [BUSYBOX] }))('the ramdisk rcS', () => {
  const MAC = '52:54:00:d7:00:0a';
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'osstest-rcs-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function runRcs(o: {
    modules: string[];
    /** The module whose loading makes the interface with MAC appear (none: it never does). */
    nicFrom?: string;
    /** The link has a carrier this long after `ip link set … up`; absent: never. */
    carrierAfterS?: number;
  }) {
    const d = mkdtempSync(join(dir, 'run-'));
    const net = join(d, 'sys/class/net/eth0');
    mkdirSync(join(d, 'etc/osstest'), { recursive: true });
    mkdirSync(join(d, 'sys/class/net/lo'), { recursive: true });
    writeFileSync(join(d, 'sys/class/net/lo/address'), '00:00:00:00:00:00\n');
    writeFileSync(
      join(d, 'etc/osstest/host.conf'),
      hostConf({ host: 'lab-q0', mac: MAC, progressUrl: 'http://127.0.0.1:9/host/lab-q0/progress' }),
    );
    writeFileSync(join(d, 'etc/osstest/modules'), o.modules.map((m) => `${m}.ko\n`).join(''));
    const stubs = `
LOG=${d}/log
log() { echo "$*" >> "$LOG"; }
insmod() {
  log insmod "\${1##*/}"
  if [ "\${1##*/}" = "${o.nicFrom ?? ''}.ko" ]; then
    command mkdir -p ${net}
    echo ${MAC} > ${net}/address
    echo 0 > ${net}/carrier
  fi
}
ip() {
  log ip "$*"
  if [ "$*" = "link set eth0 up" ] && [ -n "${o.carrierAfterS ?? ''}" ]; then
    (command sleep ${o.carrierAfterS ?? 0}; echo 1 > ${net}/carrier) > /dev/null 2>&1 &
  fi
}
${o.carrierAfterS === undefined ? 'sleep() { :; }' : ''}
head() { log head "$*"; }
hostname() { log hostname "$*"; }
mkdir() { log mkdir "$*"; }
mount() { log mount "$*"; }
udhcpc() { log "udhcpc carrier=$(cat ${net}/carrier) $*"; return 1; }
`;
    // (The console is a file here: appended to, where the device is written.)
    const script = RCS.replaceAll('/etc/osstest/', `${d}/etc/osstest/`)
      .replaceAll('/sys/class/net', `${d}/sys/class/net`)
      .replaceAll('> /dev/console', `>> ${d}/console`)
      .replace('\n', `\n${stubs}\n`);
    writeFileSync(join(d, 'rcS'), script);
    const r = spawnSync(BUSYBOX, ['sh', join(d, 'rcS')], { encoding: 'utf8', timeout: 30_000 });
    const read = (f: string) => {
      try {
        return readFileSync(join(d, f), 'utf8');
      } catch {
        return '';
      }
    };
    return { status: r.status, log: read('log').trim().split('\n'), console: read('console') };
  }

  it('brings the NIC up as soon as its driver made it, loads the rest meanwhile, waits for carrier', () => {
    const r = runRcs({
      modules: ['virtio_ring', 'virtio', 'virtio_net', 'virtio_pci', 'virtio_blk', 'ext4'],
      nicFrom: 'virtio_pci',
      carrierAfterS: 0.3,
    });
    const at = (line: string) => r.log.findIndex((l) => l.startsWith(line));
    // Up right after the module that made the interface, before the disk and filesystem modules, with
    // the link-local address the kernel would give it (fe80::, the MAC's EUI-64) given beforehand.
    const pci = at('insmod virtio_pci.ko');
    expect(r.log.slice(pci + 1, pci + 4)).toEqual([
      'ip -6 addr add fe80::5054:ff:fed7:a/64 dev eth0',
      'ip link set eth0 up',
      'insmod virtio_blk.ko',
    ]);
    // The kernel's entropy gathering is started (a blocking read) before DHCP.
    expect(at('head -c 1 /dev/random')).toBeGreaterThan(-1);
    expect(at('head -c 1 /dev/random')).toBeLessThan(at('udhcpc'));
    // DHCP only with a carrier: a request sent before it would be lost.
    expect(r.log[at('udhcpc')]).toMatch(/^udhcpc carrier=1 -i eth0 /);
    expect(r.console).toContain('osstest-ramdisk: link up on eth0\n');
    expect(r.console).toContain('osstest-ramdisk: no DHCP lease on eth0\n');
    expect(r.status).toBe(1);
  });

  it('tries DHCP anyway when no carrier comes, and says so', () => {
    const r = runRcs({ modules: ['e1000'], nicFrom: 'e1000' });
    expect(r.console).toContain('no carrier on eth0 after 10 s, trying DHCP anyway');
    expect(r.log.find((l) => l.startsWith('udhcpc'))).toMatch(/^udhcpc carrier=0 -i eth0 /);
  });

  it('stops when no interface has its MAC', () => {
    const r = runRcs({ modules: ['e1000'] });
    expect(r.console).toContain(`no interface with MAC ${MAC} (have: lo )`);
    expect(r.log.some((l) => l.startsWith('udhcpc'))).toBe(false);
    expect(r.status).toBe(1);
  });
});
