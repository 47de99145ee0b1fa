/**
 * The Debian installer for the `debian-installer` install method: Debian's netboot images package
 * (`debian-installer-12-netboot-amd64`), fetched with apt like the kernel (src/provision/images/kernel.ts),
 * checked against the SHA256 of apt's signed index, of which only the installer's kernel and initrd
 * are kept: `<Images>/installer-<arch>/{linux,initrd.gz,manifest.json}`.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { writeAtomic } from '../../remote/keys.js';
import { aptShow, sha256File, type UpdateProgress } from './kernel.js';

export const DEFAULT_INSTALLER_PACKAGE = 'debian-installer-12-netboot-amd64';

export interface InstallerImage {
  dir: string;
  arch: string;
  package: string;
  version: string;
  debSha256: string;
  linux: string;
  initrd: string;
  linuxSha256: string;
  initrdSha256: string;
  fetchedAt: string;
}

type Manifest = Omit<InstallerImage, 'dir' | 'linux' | 'initrd'>;

export function installerDir(imagesDir: string, arch: string): string {
  return join(imagesDir, `installer-${arch}`);
}

export function findInstallerImage(imagesDir: string, arch = 'amd64'): InstallerImage {
  const dir = installerDir(imagesDir, arch);
  const mf = join(dir, 'manifest.json');
  if (!existsSync(mf)) {
    throw new Error(
      `no Debian installer for ${arch} in ${imagesDir} (run \`osstest images update --installer\`)`,
    );
  }
  const m = JSON.parse(readFileSync(mf, 'utf8')) as Manifest;
  return { ...m, dir, linux: join(dir, 'linux'), initrd: join(dir, 'initrd.gz') };
}

export async function updateInstallerImage(opts: {
  imagesDir: string;
  arch?: string;
  package?: string;
  force?: boolean;
  progress?: UpdateProgress;
}): Promise<InstallerImage & { updated: boolean }> {
  const arch = opts.arch ?? 'amd64';
  const say = opts.progress ?? (() => {});
  const pkgName = opts.package ?? DEFAULT_INSTALLER_PACKAGE.replace(/amd64$/, arch);
  const rec = await aptShow(pkgName);
  const version = rec.get('Version');
  const expected = rec.get('SHA256');
  if (!version || !expected) throw new Error(`apt-cache show ${pkgName}: no Version/SHA256`);
  say(`${pkgName} ${version} (${((Number(rec.get('Size')) || 0) / 1e6).toFixed(1)} MB)`);
  const dir = installerDir(opts.imagesDir, arch);
  if (!opts.force && existsSync(join(dir, 'manifest.json'))) {
    const have = findInstallerImage(opts.imagesDir, arch);
    if (have.package === pkgName && have.version === version && existsSync(have.initrd)) {
      say(`already have ${pkgName} ${version} (sha256 ${have.debSha256.slice(0, 16)}…)`);
      return { ...have, updated: false };
    }
  }
  mkdirSync(opts.imagesDir, { recursive: true });
  const work = join(opts.imagesDir, `.installer-${arch}.tmp-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, 'x'), { recursive: true });
  try {
    say(`downloading ${pkgName}=${version} with apt-get download`);
    const dl = await execa('apt-get', ['download', `${pkgName}=${version}`], {
      cwd: work,
      reject: false,
      all: true,
    });
    if (dl.exitCode !== 0)
      throw new Error(`apt-get download ${pkgName}=${version} failed:\n${dl.all?.trim()}`);
    const deb = readdirSync(work).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download ${pkgName} left no .deb`);
    const got = await sha256File(join(work, deb));
    if (got !== expected) throw new Error(`${deb}: sha256 ${got}, but apt's index says ${expected}`);
    say(`sha256 ${got} matches apt's index`);
    const inner = `./usr/lib/debian-installer/images/*/${arch}/text/debian-installer/${arch}/`;
    const ex = await execa(
      'sh',
      [
        '-c',
        'dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" --wildcards "$3linux" "$3initrd.gz"',
        'sh',
        join(work, deb),
        join(work, 'x'),
        inner,
      ],
      { reject: false },
    );
    if (ex.exitCode !== 0) throw new Error(`extracting the installer from ${deb}: ${ex.stderr.trim()}`);
    const found = await execa('find', [join(work, 'x'), '-name', 'initrd.gz'], { reject: false });
    const initrd = found.stdout.split('\n')[0]?.trim();
    if (!initrd) throw new Error(`${deb} has no ${inner}initrd.gz`);
    const out = join(work, 'image');
    mkdirSync(out);
    renameSync(initrd, join(out, 'initrd.gz'));
    renameSync(join(initrd, '..', 'linux'), join(out, 'linux'));
    const manifest: Manifest = {
      arch,
      package: pkgName,
      version,
      debSha256: got,
      linuxSha256: await sha256File(join(out, 'linux')),
      initrdSha256: await sha256File(join(out, 'initrd.gz')),
      fetchedAt: new Date().toISOString(),
    };
    writeAtomic(join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`, 0o644);
    const old = `${dir}.old-${process.pid}`;
    if (existsSync(dir)) renameSync(dir, old);
    renameSync(out, dir);
    rmSync(old, { recursive: true, force: true });
    say(`installer ${pkgName} ${version} ready in ${dir}`);
    return { ...findInstallerImage(opts.imagesDir, arch), updated: true };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
