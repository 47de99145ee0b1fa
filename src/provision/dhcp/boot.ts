/**
 * Which boot file and next-server a client gets, from what it says about itself:
 * its architecture (option 93, RFC 4578) and whether it is already iPXE (user class "iPXE", option 77,
 * or iPXE's encapsulated options, option 175). Firmware gets a loader over TFTP; iPXE gets the URL of
 * a script, which avoids both a chain-loading loop and slow lock-step TFTP for the kernel.
 */
import { type DhcpPacket, Opt, optString, optU16 } from './codec.js';

/** Boot files per kind of client; any field may be overridden per reservation. */
export interface BootFiles {
  /** Next server (siaddr) and option 66; defaults to the server's own address. */
  nextServer?: string;
  /** Option 66 text when it should differ from nextServer (e.g. a host name). */
  tftpServerName?: string;
  /** BIOS PXE firmware (arch 0, or no option 93 at all). Default `pxelinux.0`. */
  bios?: string;
  /** UEFI PXE firmware (arch 6, 7, 9). Default `ipxe.efi`. */
  uefi?: string;
  /** A client that is already iPXE, any arch: usually `http://SERVER/…/boot.ipxe`. No default. */
  ipxeScript?: string;
  /** Per-arch file for firmware of other architectures (e.g. 11 = arm64 UEFI), overriding bios/uefi. */
  byArch?: Readonly<Record<number, string>>;
}

export type ClientKind = 'bios' | 'uefi' | 'ipxe' | 'other';

export interface BootChoice {
  kind: ClientKind;
  /** The arch code from option 93, or undefined when the client sent none. */
  arch: number | undefined;
  /** Undefined when no file is configured for this kind of client. */
  file: string | undefined;
  nextServer: string;
  tftpServerName: string;
  /** The client announced itself as a PXE client (option 60 starting with `PXEClient`). */
  pxeClient: boolean;
}

const UEFI_ARCHES = new Set([6, 7, 9]);

export function isIpxe(p: DhcpPacket): boolean {
  if (p.options.has(Opt.IPXE_ENCAP)) return true;
  const uc = p.options.get(Opt.USER_CLASS);
  // iPXE sends the bare string "iPXE" rather than RFC 3004's length-prefixed form; accept both.
  return uc?.toString('latin1').includes('iPXE') ?? false;
}

export function isPxeClient(p: DhcpPacket): boolean {
  return (optString(p, Opt.VENDOR_CLASS) ?? '').startsWith('PXEClient');
}

/** Merges the reservation's override over the server's policy, field by field. */
export function mergeBoot(base: BootFiles, override: BootFiles | undefined): BootFiles {
  if (!override) return base;
  const merged: BootFiles = { ...base };
  for (const [k, v] of Object.entries(override))
    if (v !== undefined) (merged as Record<string, unknown>)[k] = v;
  if (base.byArch || override.byArch) merged.byArch = { ...base.byArch, ...override.byArch };
  return merged;
}

export function chooseBoot(p: DhcpPacket, files: BootFiles, serverIp: string): BootChoice {
  // Option 93 is a list of 16-bit codes; the first is the one the firmware is running as.
  const arch = optU16(p, Opt.CLIENT_ARCH);
  const nextServer = files.nextServer ?? serverIp;
  const common = {
    arch,
    nextServer,
    tftpServerName: files.tftpServerName ?? nextServer,
    pxeClient: isPxeClient(p),
  };
  if (isIpxe(p) && files.ipxeScript !== undefined) return { ...common, kind: 'ipxe', file: files.ipxeScript };
  const specific = arch === undefined ? undefined : files.byArch?.[arch];
  const kind: ClientKind =
    arch === undefined || arch === 0 ? 'bios' : UEFI_ARCHES.has(arch) ? 'uefi' : 'other';
  const file =
    specific ??
    (kind === 'bios'
      ? (files.bios ?? 'pxelinux.0')
      : kind === 'uefi'
        ? (files.uefi ?? 'ipxe.efi')
        : undefined);
  return { ...common, kind, file };
}
