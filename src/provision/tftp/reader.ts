/**
 * Reads a file for a transfer in large chunks (whole multiples of the block size) with one chunk of
 * read-ahead, so the per-block path is a synchronous slice and the disk is read while the network
 * waits for ACKs.
 */
import type { promises as fsp } from 'node:fs';

const CHUNK_TARGET = 512 * 1024;

export class BlockReader {
  readonly chunkBytes: number;
  private readonly chunks = new Map<number, Buffer>();
  private readonly loading = new Map<number, Promise<void>>();
  /** Index of the first chunk that came back short: nothing after it is read. */
  private eofChunk = Number.POSITIVE_INFINITY;
  private failure: Error | undefined;

  constructor(
    private readonly handle: fsp.FileHandle,
    private readonly blksize: number,
  ) {
    this.chunkBytes = Math.max(1, Math.floor(CHUNK_TARGET / blksize)) * blksize;
  }

  get error(): Error | undefined {
    return this.failure;
  }

  /**
   * The payload of block `n` (1-based, not wrapped), or undefined if its chunk is not in memory yet
   * (then `whenReady(n)` says when). Starts reading ahead and forgets chunks before this one.
   */
  block(n: number): Buffer | undefined {
    const offset = (n - 1) * this.blksize;
    const idx = Math.floor(offset / this.chunkBytes);
    const chunk = this.chunks.get(idx);
    if (chunk === undefined) {
      this.load(idx);
      return undefined;
    }
    for (const k of this.chunks.keys()) if (k < idx) this.chunks.delete(k);
    if (idx + 1 <= this.eofChunk) this.load(idx + 1);
    const within = offset - idx * this.chunkBytes;
    return chunk.subarray(Math.min(within, chunk.length), Math.min(within + this.blksize, chunk.length));
  }

  whenReady(n: number): Promise<void> {
    const idx = Math.floor(((n - 1) * this.blksize) / this.chunkBytes);
    this.load(idx);
    return this.loading.get(idx) ?? Promise.resolve();
  }

  private load(idx: number): void {
    if (this.chunks.has(idx) || this.loading.has(idx) || this.failure) return;
    if (idx > this.eofChunk) {
      this.chunks.set(idx, Buffer.alloc(0));
      return;
    }
    const p = this.readChunk(idx).then(
      (buf) => {
        this.loading.delete(idx);
        if (buf.length < this.chunkBytes) this.eofChunk = Math.min(this.eofChunk, idx);
        this.chunks.set(idx, buf);
      },
      (e: unknown) => {
        this.loading.delete(idx);
        this.failure = e instanceof Error ? e : new Error(String(e));
      },
    );
    this.loading.set(idx, p);
  }

  private async readChunk(idx: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(this.chunkBytes);
    let filled = 0;
    const base = idx * this.chunkBytes;
    while (filled < buf.length) {
      const { bytesRead } = await this.handle.read(buf, filled, buf.length - filled, base + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return buf.subarray(0, filled);
  }

  release(): void {
    this.chunks.clear();
  }
}
