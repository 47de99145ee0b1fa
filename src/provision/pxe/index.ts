/**
 * Boot configuration for network-booting hosts, rendered from the templates in config/pxe/:
 * - pxelinux (BIOS firmware, or iPXE told to run pxelinux.0): `<TftpPath>/<TftpPxeDir>/<file>`, the file
 *   named by the first of `TftpPxeTemplates` whose `%var%`s are all known for the host
 *   (`%etherhyph%` = MAC as 52-54-00-…, `%ipaddrhex%` = address as 0AD70010, `%ether%`, `%name%`);
 *   kernel and initrds over TFTP;
 * - iPXE: `<WebspaceDir>/<host>/boot.ipxe`, fetched over HTTP (the DHCP server hands iPXE clients its
 *   URL); kernel and initrds over HTTP, much faster than pxelinux's lock-step TFTP.
 * Both are written for every host, each atomically (write, then rename), so a host booting at that
 * moment sees the old file or the new one, never half of one. `writeLocalBoot` replaces both with
 * "boot from the local disk", for install methods that write a disk once the install has begun.
 *
 * Templates use `{{name}}`; an unknown name, or a value with a line break (which could add directives),
 * is an error naming the template. Values named `*_lines` are made here and may span lines.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative } from 'node:path';
import type { Config } from '../../config/config.js';
import { harnessRoot } from '../../executor/paths.js';
import { writeAtomic } from '../../remote/keys.js';

/**
 * How a host network-boots (its `BootLoader` property): `ipxe` (default; its firmware is iPXE or
 * chain-loads it) or `pxelinux` (everything over TFTP, for firmware that cannot do HTTP).
 */
export function bootLoaderOf(prop: (name: string) => string | undefined, host: string): 'ipxe' | 'pxelinux' {
  const v = prop('BootLoader') ?? 'ipxe';
  if (v !== 'ipxe' && v !== 'pxelinux') {
    throw new Error(`host ${host}: BootLoader must be ipxe or pxelinux, not ${JSON.stringify(v)}`);
  }
  return v;
}

export interface PxeSettings {
  tftpRoot: string;
  /** Relative to tftpRoot, e.g. `pxelinux.cfg`. */
  pxeDir: string;
  /** File name templates, first usable wins. */
  fileTemplates: string[];
  templatesDir: string;
  webspaceDir: string;
}

export function pxeSettings(config: Config): PxeSettings {
  const pxeDir = config.string('TftpPxeDir');
  if (isAbsolute(pxeDir) || pxeDir.split('/').includes('..')) {
    throw new Error(`TftpPxeDir ${pxeDir} must be a path inside TftpPath`);
  }
  return {
    tftpRoot: config.path('TftpPath'),
    pxeDir,
    fileTemplates: config.list('TftpPxeTemplates'),
    templatesDir: config.optString('PxeTemplates')
      ? config.path('PxeTemplates')
      : join(harnessRoot, 'config', 'pxe'),
    webspaceDir: config.path('WebspaceDir'),
  };
}

export interface BootHost {
  name: string;
  mac: string | null;
  ip: string | null;
}

/** The `%var%`s of a host that are known; MAC and address in the forms pxelinux looks for. */
export function pxeVars(host: BootHost): Record<string, string> {
  const v: Record<string, string> = { name: host.name };
  if (host.mac) {
    const mac = host.mac.toLowerCase();
    if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac))
      throw new Error(`host ${host.name}: bad MAC ${host.mac}`);
    v.ether = mac;
    v.etherhyph = mac.replace(/:/g, '-');
  }
  if (host.ip) {
    const parts = host.ip.split('.').map(Number);
    if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
      throw new Error(`host ${host.name}: bad IPv4 address ${host.ip}`);
    }
    v.ipaddrhex = parts.map((p) => p.toString(16).padStart(2, '0').toUpperCase()).join('');
  }
  return v;
}

/** The pxelinux config file name for the host: the first template whose variables are all known. */
export function pxeFileName(templates: readonly string[], host: BootHost): string {
  const vars = pxeVars(host);
  for (const t of templates) {
    const names = [...t.matchAll(/%([a-z]+)%/g)].map((m) => m[1]!);
    if (names.every((n) => vars[n] !== undefined)) {
      const name = t.replace(/%([a-z]+)%/g, (_m, n: string) => vars[n]!);
      if (name.includes('/') || name.startsWith('.'))
        throw new Error(`TftpPxeTemplates entry ${t} gives a bad name ${name}`);
      return name;
    }
  }
  throw new Error(
    `host ${host.name}: none of TftpPxeTemplates (${templates.join(' ')}) can be named (MAC ${host.mac ?? 'unknown'}, address ${host.ip ?? 'unknown'})`,
  );
}

export function renderTemplate(text: string, vars: Readonly<Record<string, string>>, where: string): string {
  return text.replace(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g, (_m, name: string, offset: number) => {
    const line = text.slice(0, offset).split('\n').length;
    const v = vars[name];
    if (v === undefined) throw new Error(`${where}:${line}: unknown template variable {{${name}}}`);
    if (!name.endsWith('_lines') && /[\r\n\0]/.test(v)) {
      throw new Error(`${where}:${line}: value of {{${name}}} contains a line break: ${JSON.stringify(v)}`);
    }
    return v;
  });
}

function template(settings: PxeSettings, name: string): { text: string; where: string } {
  const where = join(settings.templatesDir, name);
  if (!existsSync(where)) throw new Error(`boot template ${where} is missing`);
  return { text: readFileSync(where, 'utf8'), where };
}

/** A file a booting host fetches: its path under the TFTP root and its URL in the webspace. */
export interface BootFile {
  tftpPath: string;
  url: string;
}

export interface NetbootSpec {
  /** Says what this boot is for, in the files' comments and iPXE's message. */
  purpose: string;
  kernel: BootFile;
  initrds: BootFile[];
  cmdline: string;
}

export interface WrittenBootConfig {
  pxelinux: string;
  ipxe: string;
}

export function ipxeScriptPath(settings: PxeSettings, host: string): string {
  return join(settings.webspaceDir, host, 'boot.ipxe');
}

export function pxelinuxConfigPath(settings: PxeSettings, host: BootHost): string {
  return join(settings.tftpRoot, settings.pxeDir, pxeFileName(settings.fileTemplates, host));
}

function write(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeAtomic(path, text, 0o644);
}

function commonVars(host: BootHost): Record<string, string> {
  return { host: host.name, mac: host.mac ?? 'unknown' };
}

/** Points both boot paths of the host at a kernel and initrds. */
export function writeNetboot(settings: PxeSettings, host: BootHost, spec: NetbootSpec): WrittenBootConfig {
  for (const f of [spec.kernel, ...spec.initrds]) {
    if (/[\s,]/.test(f.tftpPath) || isAbsolute(f.tftpPath) || relative('.', f.tftpPath).startsWith('..')) {
      throw new Error(`boot file ${f.tftpPath} must be a relative path without blanks or commas`);
    }
  }
  const vars = {
    ...commonVars(host),
    purpose: spec.purpose,
    cmdline: spec.cmdline,
    kernel: spec.kernel.tftpPath,
    initrds: spec.initrds.map((i) => i.tftpPath).join(','),
    kernel_url: spec.kernel.url,
    initrd_lines: spec.initrds.map((i) => `initrd ${i.url}`).join('\n'),
  };
  const px = template(settings, 'pxelinux.tmpl');
  const ip = template(settings, 'ipxe.tmpl');
  const out = { pxelinux: pxelinuxConfigPath(settings, host), ipxe: ipxeScriptPath(settings, host.name) };
  // Render both before writing either, so a template error leaves the old files in place.
  const pxText = renderTemplate(px.text, vars, px.where);
  const ipText = renderTemplate(ip.text, vars, ip.where);
  write(out.pxelinux, pxText);
  write(out.ipxe, ipText);
  return out;
}

/** Switches both boot paths of the host to its local disk. */
export function writeLocalBoot(settings: PxeSettings, host: BootHost): WrittenBootConfig {
  const px = template(settings, 'pxelinux-local.tmpl');
  const ip = template(settings, 'ipxe-local.tmpl');
  const vars = commonVars(host);
  const out = { pxelinux: pxelinuxConfigPath(settings, host), ipxe: ipxeScriptPath(settings, host.name) };
  const pxText = renderTemplate(px.text, vars, px.where);
  const ipText = renderTemplate(ip.text, vars, ip.where);
  write(out.pxelinux, pxText);
  write(out.ipxe, ipText);
  return out;
}
