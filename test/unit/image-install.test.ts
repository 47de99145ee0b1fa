/**
 * The pure parts of the `image` install method: the script the ramdisk runs, the root filesystem cache
 * key and the mirror taken from apt's sources. The method itself runs in test/e2e/image-install.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { aptMirror, rootfsPath } from '../../src/provision/images/rootfs.js';
import { imageInstallScript } from '../../src/provision/install/image.js';

const inputs = {
  host: 'img-q0',
  mac: '52:54:00:D7:00:0A',
  disk: '/dev/vda',
  progressUrl: 'http://10.217.0.1:80/host/img-q0/progress',
  rootfsUrl: 'http://10.217.0.1:80/host/img-q0/rootfs.tar.gz',
  authorizedKeys: 'ssh-ed25519 AAAAC3Nza… osstest\n',
  hostKey: {
    privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn'Nz\n-----END OPENSSH PRIVATE KEY-----\n",
    publicKey: 'ssh-ed25519 AAAAhostkey',
  },
};

describe('imageInstallScript', () => {
  it('is valid sh for busybox, with the host, disk, URLs and keys in it', () => {
    const s = imageInstallScript(inputs);
    execFileSync('/bin/busybox', ['sh', '-n'], { input: s });
    execFileSync('sh', ['-n'], { input: s });
    expect(s).toContain("DISK='/dev/vda'");
    expect(s).toContain("PART='/dev/vda1'");
    expect(s).toContain("OSSTEST_MAC='52:54:00:d7:00:0a'");
    expect(s).toContain("OSSTEST_PROGRESS_PATH='/host/img-q0/progress'");
    expect(s).toContain("wget -q -O - 'http://10.217.0.1:80/host/img-q0/rootfs.tar.gz' | gunzip -c | tar -x");
    // A quote inside the key survives the shell's quoting.
    expect(s).toContain(
      `'-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn'\\''Nz\n-----END OPENSSH PRIVATE KEY-----'`,
    );
    expect(s).toMatch(/report installed\n/);
    expect(s).toMatch(/report install-failed/);
  });

  it('the private key and other values come out of the shell exactly as given', () => {
    // Run the part of the script that writes files, against a scratch directory instead of /mnt.
    const dir = mkdtempSync(join(tmpdir(), 'osstest-image-'));
    try {
      const s = imageInstallScript(inputs);
      const part = s.slice(
        s.indexOf("echo 'img-q0' > /mnt/etc/hostname"),
        s.indexOf('say "installing extlinux'),
      );
      mkdirSync(join(dir, 'mnt', 'etc', 'ssh'), { recursive: true });
      execFileSync('sh', ['-c', part.replaceAll('/mnt/', `${dir}/mnt/`)]);
      const read = (p: string) => execFileSync('cat', [join(dir, 'mnt', p)]).toString();
      expect(read('etc/hostname')).toBe('img-q0\n');
      expect(read('etc/ssh/ssh_host_ed25519_key')).toBe(inputs.hostKey.privateKey);
      expect(read('etc/ssh/ssh_host_ed25519_key.pub')).toBe('ssh-ed25519 AAAAhostkey\n');
      expect(read('root/.ssh/authorized_keys')).toBe(inputs.authorizedKeys);
      expect(read('etc/osstest/host.conf')).toContain("OSSTEST_HOST='img-q0'");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names partitions of nvme-like disks with p1, and refuses a disk that is not a device name', () => {
    expect(imageInstallScript({ ...inputs, disk: '/dev/nvme0n1' })).toContain("PART='/dev/nvme0n1p1'");
    expect(() => imageInstallScript({ ...inputs, disk: '/dev/vda; rm -rf /' })).toThrow(
      /must be like \/dev\/vda/,
    );
    expect(() => imageInstallScript({ ...inputs, progressUrl: 'http://controller/x' })).toThrow(/IPv4/);
  });
});

describe('root filesystem cache key and mirror', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('is keyed by suite and package set (not their order), and refuses a list without a kernel', () => {
    const a = rootfsPath('/i', { packages: ['linux-image-cloud-amd64', 'openssh-server'] });
    expect(a).toMatch(/^\/i\/rootfs\/bookworm-amd64-[0-9a-f]{16}\.tar\.gz$/);
    expect(rootfsPath('/i', { packages: ['openssh-server', 'linux-image-cloud-amd64'] })).toBe(a);
    expect(rootfsPath('/i', { packages: ['linux-image-cloud-amd64'] })).not.toBe(a);
    expect(
      rootfsPath('/i', { suite: 'trixie', packages: ['linux-image-cloud-amd64', 'openssh-server'] }),
    ).toMatch(/trixie-amd64-/);
    expect(() => rootfsPath('/i', { packages: ['openssh-server'] })).toThrow(/must include a kernel/);
    expect(() => rootfsPath('/i', { packages: ['linux-image-amd64', 'x;y'] })).toThrow(/not a package name/);
  });

  it("takes the first Debian mirror from apt's sources, in either format", () => {
    const d = mkdtempSync(join(tmpdir(), 'osstest-apt-'));
    dirs.push(d);
    mkdirSync(join(d, 'sources.list.d'));
    writeFileSync(
      join(d, 'sources.list.d', 'a.list'),
      'deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n',
    );
    writeFileSync(
      join(d, 'sources.list.d', 'debian.sources'),
      'Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n',
    );
    expect(aptMirror(d)).toBe('http://mirror.example/debian');
    writeFileSync(join(d, 'sources.list'), 'deb [arch=amd64] http://other.example/debian bookworm main\n');
    expect(aptMirror(d)).toBe('http://other.example/debian');
    rmSync(join(d, 'sources.list'));
    rmSync(join(d, 'sources.list.d', 'debian.sources'));
    expect(() => aptMirror(d)).toThrow(/no Debian mirror/);
  });
});
