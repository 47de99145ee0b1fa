/**
 * Kernel modules of an extracted Debian kernel package, without kmod's tools (the controller need not
 * have them, and depmod's output is not in the package): a module's dependencies are read from the
 * `depends=` entry of its ELF `.modinfo` section, and the load order is the dependency closure,
 * dependencies first.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';

/** The NUL-separated `key=value` strings of a module's `.modinfo` section. */
export function readModinfo(ko: Buffer, where: string): Array<[string, string]> {
  const bad = (why: string) => new Error(`${where}: not a kernel module (${why})`);
  if (ko.length < 64 || ko.readUInt32BE(0) !== 0x7f454c46) throw bad('no ELF header');
  if (ko[4] !== 2 || ko[5] !== 1) throw bad('not 64-bit little-endian ELF');
  const shoff = Number(ko.readBigUInt64LE(0x28));
  const shentsize = ko.readUInt16LE(0x3a);
  const shnum = ko.readUInt16LE(0x3c);
  const shstrndx = ko.readUInt16LE(0x3e);
  if (shentsize < 64 || shoff + shnum * shentsize > ko.length || shstrndx >= shnum) {
    throw bad('section header table out of bounds');
  }
  const section = (i: number) => {
    const at = shoff + i * shentsize;
    const offset = Number(ko.readBigUInt64LE(at + 24));
    const size = Number(ko.readBigUInt64LE(at + 32));
    if (offset + size > ko.length) throw bad(`section ${i} out of bounds`);
    return { name: ko.readUInt32LE(at), offset, size };
  };
  const strtab = section(shstrndx);
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    const nameAt = strtab.offset + s.name;
    const end = ko.indexOf(0, nameAt);
    if (ko.toString('latin1', nameAt, end) !== '.modinfo') continue;
    return ko
      .subarray(s.offset, s.offset + s.size)
      .toString('utf8')
      .split('\0')
      .filter((x) => x.includes('='))
      .map((x) => [x.slice(0, x.indexOf('=')), x.slice(x.indexOf('=') + 1)]);
  }
  throw bad('no .modinfo section');
}

/** Module names use `_` and `-` interchangeably; the kernel's own form is `_`. */
export function moduleName(name: string): string {
  return name.replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
}

export interface KernelModule {
  name: string;
  path: string;
  depends: string[];
}

/** Every `.ko` under `dir` (a kernel's `lib/modules/<release>`), by module name. */
export function indexModules(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ko')) out.set(moduleName(basename(p)), p);
      else if (/\.ko\.(xz|zst|gz)$/.test(e.name)) {
        throw new Error(`${p}: compressed modules are not supported (busybox insmod loads plain .ko files)`);
      }
    }
  };
  walk(dir);
  return out;
}

/** The modules to load for `wanted`, dependencies before the modules that need them. */
export function moduleClosure(index: ReadonlyMap<string, string>, wanted: readonly string[]): KernelModule[] {
  const order: KernelModule[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (raw: string, via: string) => {
    const name = moduleName(raw);
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') throw new Error(`kernel modules: dependency cycle through ${name}`);
    const path = index.get(name);
    if (!path)
      throw new Error(`kernel modules: no module ${name} (needed by ${via}) in the kernel's modules`);
    state.set(name, 'visiting');
    const info = readModinfo(readFileSync(path), path);
    const depends = info
      .filter(([k]) => k === 'depends')
      .flatMap(([, v]) => v.split(','))
      .filter((d) => d !== '')
      .map(moduleName);
    for (const d of depends) visit(d, name);
    state.set(name, 'done');
    order.push({ name, path, depends });
  };
  for (const w of wanted) visit(w, 'the ramdisk');
  return order;
}
