/** A small server-sent-events client for tests: collects events and waits for the one wanted. */
import { type ClientRequest, get, type IncomingMessage } from 'node:http';

export interface SseEvent {
  type: string;
  data: unknown;
}

export class SseClient {
  readonly events: SseEvent[] = [];
  ended = false;
  private buf = '';
  private waiters: (() => void)[] = [];
  private constructor(
    private readonly req: ClientRequest,
    readonly res: IncomingMessage,
  ) {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      this.buf += chunk;
      let at = this.buf.indexOf('\n\n');
      while (at >= 0) {
        const block = this.buf.slice(0, at);
        this.buf = this.buf.slice(at + 2);
        let type = 'message';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event: ')) type = line.slice(7);
          else if (line.startsWith('data: ')) data.push(line.slice(6));
        }
        if (data.length > 0) this.events.push({ type, data: JSON.parse(data.join('\n')) });
        at = this.buf.indexOf('\n\n');
      }
      this.wake();
    });
    res.on('end', () => {
      this.ended = true;
      this.wake();
    });
    res.on('error', () => {
      this.ended = true;
      this.wake();
    });
  }

  static open(url: string): Promise<SseClient> {
    return new Promise((resolve, reject) => {
      const req = get(url, { headers: { Accept: 'text/event-stream' } }, (res) =>
        resolve(new SseClient(req, res)),
      );
      req.on('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** The first event (from `from` on) that `pred` accepts; throws after `timeoutMs` saying what came. */
  async waitFor(pred: (e: SseEvent) => boolean, timeoutMs = 5000, from = 0): Promise<SseEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = this.events.slice(from).find(pred);
      if (e !== undefined) return e;
      if (this.ended)
        throw new Error(`stream ended; events: ${JSON.stringify(this.events.map((x) => x.type))}`);
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out; events so far: ${JSON.stringify(this.events).slice(-2000)}`);
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  close(): void {
    this.req.destroy();
  }
}
