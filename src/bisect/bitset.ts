/**
 * Fixed-width bit sets over the bisection's candidate changes. Plain Uint32Array words: the engine
 * intersects and counts these sets for every node at every decision, so they must be cheap.
 */

export type Bits = Uint32Array;

export function wordsFor(size: number): number {
  return Math.max(1, Math.ceil(size / 32));
}

export function emptyBits(words: number): Bits {
  return new Uint32Array(words);
}

export function setBit(b: Bits, i: number): void {
  b[i >>> 5]! |= 1 << (i & 31);
}

export function hasBit(b: Bits, i: number): boolean {
  return (b[i >>> 5]! & (1 << (i & 31))) !== 0;
}

function pop32(x: number): number {
  let v = x - ((x >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

export function popcount(b: Bits): number {
  let n = 0;
  for (let i = 0; i < b.length; i++) n += pop32(b[i]!);
  return n;
}

/** |a ∩ b| without allocating. */
export function andCount(a: Bits, b: Bits): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) n += pop32(a[i]! & b[i]!);
  return n;
}

export function orInto(dst: Bits, src: Bits): void {
  for (let i = 0; i < dst.length; i++) dst[i]! |= src[i]!;
}

export function andInto(dst: Bits, src: Bits): void {
  for (let i = 0; i < dst.length; i++) dst[i]! &= src[i]!;
}

export function andNotInto(dst: Bits, src: Bits): void {
  for (let i = 0; i < dst.length; i++) dst[i]! &= ~src[i]!;
}

export function isEmpty(b: Bits): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

export function bitsToIndices(b: Bits): number[] {
  const out: number[] = [];
  for (let w = 0; w < b.length; w++) {
    let x = b[w]!;
    while (x !== 0) {
      const low = x & -x;
      out.push(w * 32 + (31 - Math.clz32(low)));
      x ^= low;
    }
  }
  return out;
}
