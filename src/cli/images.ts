/** `osstest images update|show`: what installs need in the Images directory. */
import type { Command } from 'commander';
import { Config } from '../config/config.js';
import { updateInstallerImage } from '../provision/images/installer.js';
import { findKernelImage, updateKernelImage } from '../provision/images/kernel.js';
import { ensureRootfs } from '../provision/images/rootfs.js';
import { rootfsSpecOf } from '../provision/install/image.js';
import { printJson } from './output.js';

export function register(program: Command): void {
  const images = program
    .command('images')
    .description('Installer kernels and images kept in the Images directory');

  images
    .command('update')
    .description(
      "Fetch what installs need: Debian's kernel package (apt-get download, checked against apt's SHA256), its vmlinuz and network driver modules",
    )
    .option('--arch <arch>', 'architecture', 'amd64')
    .option('--package <pkg>', 'kernel package (default linux-image-ARCH)')
    .option('--force', 'fetch and extract again even if this version is there')
    .option(
      '--rootfs',
      'also make the root filesystem the image install method writes (debootstrap, as root; cached by suite and packages)',
    )
    .option(
      '--installer',
      "also fetch Debian's netboot installer (debian-installer-12-netboot-ARCH) for the debian-installer install method",
    )
    .option('--json', 'print the result as JSON')
    .action(
      async (o: {
        arch: string;
        package?: string;
        force?: boolean;
        rootfs?: boolean;
        installer?: boolean;
        json?: boolean;
      }) => {
        const config = Config.load({ env: process.env });
        const t0 = Date.now();
        const k = await updateKernelImage({
          imagesDir: config.path('Images'),
          arch: o.arch,
          package: o.package ?? config.optString('ImagesKernelPackage'),
          force: o.force,
          progress: (line) =>
            (o.json ? process.stderr : process.stdout).write(
              `[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${line}\n`,
            ),
        });
        const rootfs = o.rootfs
          ? await ensureRootfs({
              imagesDir: config.path('Images'),
              spec: { ...rootfsSpecOf(config), arch: o.arch },
              force: o.force,
              progress: (line) =>
                (o.json ? process.stderr : process.stdout).write(
                  `[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s] rootfs: ${line}\n`,
                ),
            })
          : undefined;
        const installer = o.installer
          ? await updateInstallerImage({
              imagesDir: config.path('Images'),
              arch: o.arch,
              force: o.force,
              progress: (line) =>
                (o.json ? process.stderr : process.stdout).write(
                  `[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s] installer: ${line}\n`,
                ),
            })
          : undefined;
        if (o.json) printJson({ ...k, ...(rootfs ? { rootfs } : {}), ...(installer ? { installer } : {}) });
      },
    );

  images
    .command('show')
    .description('Show the kernel installs use: package, version, checksums')
    .option('--arch <arch>', 'architecture', 'amd64')
    .option('--json', 'print as JSON')
    .action(async (o: { arch: string; json?: boolean }) => {
      const config = Config.load({ env: process.env });
      const k = findKernelImage(config.path('Images'), o.arch);
      if (o.json) return printJson(k);
      process.stdout.write(
        `${k.package} ${k.version} (kernel ${k.release})\n  deb sha256 ${k.debSha256}\n  vmlinuz ${k.vmlinuz}\n  vmlinuz sha256 ${k.vmlinuzSha256}\n  fetched ${k.fetchedAt}\n`,
      );
    });
}
