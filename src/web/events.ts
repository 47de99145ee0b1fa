/**
 * Live status of a flight, as events: a snapshot first, then every change of the flight, a job's
 * status, a step (started, finished), the hosts it holds (with their install progress), and the new
 * lines of the log of its newest running step.
 *
 * Two parts, so either can be replaced:
 *  - a ChangeSignal says when to look again: a timer now (`intervalSignal`); with PostgreSQL, a
 *    LISTEN/NOTIFY channel can wake the watcher instead (log lines still want a timer: files do not
 *    notify);
 *  - PollingFlightEvents looks at the store through the Store interface and sends what differs from
 *    the last look. One watcher per flight, shared by everyone watching it, running only while
 *    someone is.
 */
import type { FileHandle } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import type { Store } from '../db/store.js';
import type { Allocation, Flight, Job, Step } from '../db/types.js';
import { stepLogPath } from '../executor/run-job.js';
import { Links } from '../report/html/links.js';
import { ConfinementError, openConfined, relativeComponents } from './confine.js';

export interface FlightInfo {
  flight: string;
  branch: string;
  blessing: string;
  intended: string;
  started: number | null;
}

export interface JobState {
  job: string;
  recipe: string;
  status: string;
  href: string;
}

export interface StepState {
  job: string;
  stepno: number;
  testid: string;
  testcase: string;
  status: string;
  started: number | null;
  finished: number | null;
  /** Link to the step's log, relative to the live page. */
  logHref: string;
}

export interface HostState {
  host: string;
  job: string;
  ident: string;
  allocated: number;
  /** How far installing the host has got: its newest `progress` host event since it was allocated. */
  progress?: string;
  /** The newest thing the host did since (`dhcp …`, `fetch …`, `progress …`), and when. */
  activity?: string;
  activityAt?: number;
}

export interface LogChunk {
  job: string;
  stepno: number;
  testid: string;
  logHref: string;
  /** Complete lines, oldest first. */
  lines: string[];
  /** The lines are from a different log than the previous chunk: start afresh. */
  reset: boolean;
  /** Bytes not sent because the log grew faster than a look reads. */
  skipped: number;
}

export interface Snapshot {
  flight: FlightInfo;
  jobs: JobState[];
  steps: StepState[];
  hosts: HostState[];
  /** The newest lines of the log being followed. */
  log: LogChunk | null;
}

export type LiveEvent =
  | { type: 'snapshot'; data: Snapshot }
  | { type: 'flight'; data: FlightInfo }
  | { type: 'job'; data: JobState }
  | { type: 'step'; data: StepState }
  | { type: 'hosts'; data: HostState[] }
  | { type: 'log'; data: LogChunk }
  | { type: 'gone'; data: { flight: string } }
  | { type: 'problem'; data: { message: string } };

export type LiveListener = (e: LiveEvent) => void;

export interface FlightEventSource {
  /**
   * Sends `listener` a snapshot of the flight, then each change, until the returned function is
   * called. Resolves to undefined when there is no such flight.
   */
  subscribe(flight: string, listener: LiveListener): Promise<(() => void) | undefined>;
  /** The flights being watched now (someone is subscribed to each). */
  watching(): string[];
  close(): void;
}

/**
 * When to look again. `wake` may be called at any time and as often as wanted; it resolves when the
 * look it asked for is done (and never rejects: a failed look is reported as a `problem` event).
 */
export interface ChangeSignal {
  watch(flight: string, wake: () => Promise<void>): () => void;
}

export function intervalSignal(ms: number): ChangeSignal {
  if (!Number.isFinite(ms) || ms < 10)
    throw new RangeError(`poll interval must be at least 10 ms, not ${ms}`);
  return {
    watch: (_flight, wake) => {
      const t = setInterval(() => void wake(), ms);
      t.unref();
      return () => clearInterval(t);
    },
  };
}

/**
 * Where a host has got in its installation. By default the store's host events (recorded by the
 * DHCP, TFTP and webspace servers) since the host was allocated are read; another source can be
 * given instead.
 */
export interface InstallProgressSource {
  progress(
    host: string,
    since: number,
  ):
    | Promise<Pick<HostState, 'progress' | 'activity' | 'activityAt'>>
    | Pick<HostState, 'progress' | 'activity' | 'activityAt'>;
}

/** The host events the controller's boot services record (Store.recordHostEvent). */
export function hostEventProgress(store: Store): InstallProgressSource {
  return {
    progress: async (host, since) => {
      const evs = await store.listHostEvents(host, { since });
      const out: Pick<HostState, 'progress' | 'activity' | 'activityAt'> = {};
      const last = evs[evs.length - 1];
      if (last !== undefined) {
        out.activity = `${last.kind} ${last.detail}`;
        out.activityAt = last.at;
      }
      const p = evs.filter((e) => e.kind === 'progress').pop();
      if (p !== undefined) out.progress = p.detail;
      return out;
    },
  };
}

export interface PollingOptions {
  /** The Logs directory: step logs are read from it, confined to it. */
  logsDir: string;
  signal?: ChangeSignal;
  progress?: InstallProgressSource;
  /** Lines of the followed log kept for a new watcher's snapshot (default 200). */
  keepLines?: number;
  /** Most bytes read from a log per look (default 256 KiB); more is skipped, and said so. */
  maxReadBytes?: number;
}

const links = new Links('live');

function flightInfo(f: Flight): FlightInfo {
  return {
    flight: f.flight,
    branch: f.branch,
    blessing: f.blessing,
    intended: f.intended,
    started: f.started,
  };
}

function jobState(j: Job): JobState {
  return { job: j.job, recipe: j.recipe, status: j.status, href: links.job(j.flight, j.job) };
}

/** Where a step's log is: as recorded once it finished, else where the executor writes it. */
function logPathOf(s: Step): string {
  return s.logPath ?? stepLogPath(s.flight, s.job, s.stepno, s.testcase);
}

function stepState(s: Step): StepState {
  return {
    job: s.job,
    stepno: s.stepno,
    testid: s.testid,
    testcase: s.testcase,
    status: s.status,
    started: s.started,
    finished: s.finished,
    logHref: links.log(logPathOf(s)),
  };
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

interface Tail {
  key: string;
  job: string;
  stepno: number;
  testid: string;
  rel: string;
  offset: number;
  decoder: StringDecoder;
  partial: string;
  /** The next line read is the tail of one whose start was skipped: it is dropped. */
  dropFirst: boolean;
  /** Whether the reader has found the file yet (the first read starts near its end). */
  opened: boolean;
  /** The newest lines, for a new watcher's snapshot. */
  kept: string[];
  /** Bytes skipped so far because the log grew faster than it was read. */
  skipped: number;
  /** The log was truncated since the last chunk: the next one starts afresh. */
  restarted: boolean;
}

class FlightWatch {
  readonly listeners = new Set<LiveListener>();
  private flight: FlightInfo | undefined;
  private jobs = new Map<string, JobState>();
  private steps = new Map<string, StepState>();
  private hosts: HostState[] = [];
  private tail: Tail | undefined;
  private looking: Promise<void> | undefined;
  private again = false;
  private stopSignal: (() => void) | undefined;
  private lastProblem = '';
  gone = false;

  constructor(
    readonly name: string,
    private readonly store: Store,
    private readonly o: Required<PollingOptions>,
  ) {}

  start(): void {
    this.stopSignal = this.o.signal.watch(this.name, () => this.look());
  }

  stop(): void {
    this.stopSignal?.();
    this.stopSignal = undefined;
  }

  /** Looks now, or once more right after the look under way; resolves when the state is current. */
  look(): Promise<void> {
    if (this.looking !== undefined) {
      this.again = true;
      return this.looking;
    }
    this.looking = (async () => {
      try {
        do {
          this.again = false;
          await this.lookOnce();
        } while (this.again);
      } finally {
        this.looking = undefined;
      }
    })();
    return this.looking;
  }

  private emit(e: LiveEvent): void {
    for (const l of this.listeners) l(e);
  }

  snapshot(): Snapshot | undefined {
    if (this.flight === undefined) return undefined;
    const t = this.tail;
    return {
      flight: this.flight,
      jobs: [...this.jobs.values()],
      steps: [...this.steps.values()],
      hosts: this.hosts,
      log:
        t === undefined
          ? null
          : {
              job: t.job,
              stepno: t.stepno,
              testid: t.testid,
              logHref: links.log(t.rel),
              lines: [...t.kept],
              reset: true,
              skipped: 0,
            },
    };
  }

  private async lookOnce(): Promise<void> {
    try {
      await this.compare();
      this.lastProblem = '';
    } catch (err) {
      // A store that is restarting, a log that vanished: said once, and tried again next time.
      const message = `live status of flight ${this.name}: ${(err as Error).message}`;
      if (message !== this.lastProblem) this.emit({ type: 'problem', data: { message } });
      this.lastProblem = message;
    }
  }

  private async compare(): Promise<void> {
    const f = await this.store.getFlight(this.name);
    if (f === undefined) {
      if (this.flight !== undefined && !this.gone) this.emit({ type: 'gone', data: { flight: this.name } });
      this.gone = true;
      return;
    }
    this.gone = false;
    const [jobs, steps, allocations] = await Promise.all([
      this.store.listJobs(this.name),
      this.store.listSteps(this.name),
      this.store.listAllocations(),
    ]);
    const fi = flightInfo(f);
    if (this.flight !== undefined && !same(fi, this.flight)) this.emit({ type: 'flight', data: fi });
    this.flight = fi;

    for (const j of jobs) {
      const js = jobState(j);
      if (!same(js, this.jobs.get(j.job))) this.emit({ type: 'job', data: js });
      this.jobs.set(j.job, js);
    }
    for (const s of steps) {
      const key = `${s.job}\u0000${s.stepno}`;
      const ss = stepState(s);
      if (!same(ss, this.steps.get(key))) this.emit({ type: 'step', data: ss });
      this.steps.set(key, ss);
    }
    // Jobs or steps removed (a job reset for a rerun) are rare: a fresh snapshot says it simply.
    const stepKeys = new Set(steps.map((s) => `${s.job}\u0000${s.stepno}`));
    const jobNames = new Set(jobs.map((j) => j.job));
    if (
      [...this.steps.keys()].some((k) => !stepKeys.has(k)) ||
      [...this.jobs.keys()].some((k) => !jobNames.has(k))
    ) {
      this.jobs = new Map(jobs.map((j) => [j.job, jobState(j)]));
      this.steps = new Map(steps.map((s) => [`${s.job}\u0000${s.stepno}`, stepState(s)]));
      const snap = this.snapshot();
      if (snap !== undefined) this.emit({ type: 'snapshot', data: snap });
    }

    const hosts = await this.hostStates(allocations.filter((a) => a.flight === this.name));
    if (!same(hosts, this.hosts)) this.emit({ type: 'hosts', data: hosts });
    this.hosts = hosts;

    await this.followLog(steps);
  }

  private async hostStates(allocs: Allocation[]): Promise<HostState[]> {
    const out: HostState[] = [];
    for (const a of allocs.sort((x, y) => x.host.localeCompare(y.host))) {
      const p = await this.o.progress.progress(a.host, a.allocated);
      out.push({ host: a.host, job: a.job, ident: a.ident, allocated: a.allocated, ...p });
    }
    return out;
  }

  /**
   * Follows the newest running step's log; when none runs, goes on reading the one followed last,
   * or (a new watcher of a flight with nothing running) the newest step's.
   */
  private async followLog(steps: Step[]): Promise<void> {
    const byStart = [...steps].sort((a, b) => (a.started ?? 0) - (b.started ?? 0) || a.stepno - b.stepno);
    const running = byStart.filter((s) => s.status === 'running');
    const newest =
      running[running.length - 1] ?? (this.tail === undefined ? byStart[byStart.length - 1] : undefined);
    if (newest !== undefined && this.tail?.key !== `${newest.job}\u0000${newest.stepno}`) {
      const rel = logPathOf(newest);
      relativeComponents(rel);
      this.tail = {
        key: `${newest.job}\u0000${newest.stepno}`,
        job: newest.job,
        stepno: newest.stepno,
        testid: newest.testid,
        rel,
        offset: 0,
        decoder: new StringDecoder('utf8'),
        partial: '',
        dropFirst: false,
        opened: false,
        kept: [],
        skipped: 0,
        restarted: false,
      };
      const lines = await this.read(this.tail);
      this.emit({ type: 'log', data: chunk(this.tail, lines, true, 0) });
      return;
    }
    const t = this.tail;
    if (t === undefined) return;
    const skippedBefore = t.skipped;
    const lines = await this.read(t);
    const reset = t.restarted;
    t.restarted = false;
    if (lines.length > 0 || reset || t.skipped !== skippedBefore) {
      this.emit({ type: 'log', data: chunk(t, lines, reset, t.skipped - skippedBefore) });
    }
  }

  /** Reads what the log has gained since the last look: complete lines only. */
  private async read(t: Tail): Promise<string[]> {
    let f: { handle: FileHandle; size: number };
    try {
      f = await openConfined(this.o.logsDir, t.rel);
    } catch (err) {
      // The step has only just started and its log is not there yet.
      if (err instanceof ConfinementError && err.status === 404) return [];
      throw err;
    }
    const max = this.o.maxReadBytes;
    try {
      if (!t.opened) {
        t.opened = true;
        // A new watcher of a long log gets its end, not all of it.
        t.offset = Math.max(0, f.size - max);
        t.dropFirst = t.offset > 0;
      }
      if (f.size < t.offset) {
        // Truncated (a rerun): read it again from the start; what was kept is another run's.
        t.offset = 0;
        t.partial = '';
        t.kept = [];
        t.restarted = true;
        t.dropFirst = false;
        t.decoder = new StringDecoder('utf8');
      }
      if (f.size - t.offset > max) {
        t.skipped += f.size - max - t.offset;
        t.offset = f.size - max;
        t.partial = '';
        t.dropFirst = true;
        t.decoder = new StringDecoder('utf8');
      }
      const want = f.size - t.offset;
      if (want <= 0) return [];
      const buf = Buffer.alloc(want);
      const { bytesRead } = await f.handle.read(buf, 0, want, t.offset);
      t.offset += bytesRead;
      const parts = (t.partial + t.decoder.write(buf.subarray(0, bytesRead))).split('\n');
      t.partial = parts.pop() ?? '';
      // After a skip, the first piece is the end of a line whose start was not read.
      if (t.dropFirst && parts.length > 0) {
        parts.shift();
        t.dropFirst = false;
      }
      // A log that never ends its line is still shown, in pieces.
      if (t.partial.length > max) {
        parts.push(t.partial);
        t.partial = '';
      }
      const lines = parts.map((l) => l.replace(/\r$/, ''));
      t.kept.push(...lines);
      if (t.kept.length > this.o.keepLines) t.kept.splice(0, t.kept.length - this.o.keepLines);
      return lines;
    } finally {
      await f.handle.close();
    }
  }
}

function chunk(t: Tail, lines: string[], reset: boolean, skipped: number): LogChunk {
  return { job: t.job, stepno: t.stepno, testid: t.testid, logHref: links.log(t.rel), lines, reset, skipped };
}

export class PollingFlightEvents implements FlightEventSource {
  private readonly watches = new Map<string, FlightWatch>();
  private readonly o: Required<PollingOptions>;
  private closed = false;

  constructor(
    private readonly store: Store,
    opts: PollingOptions,
  ) {
    this.o = {
      logsDir: opts.logsDir,
      signal: opts.signal ?? intervalSignal(500),
      keepLines: opts.keepLines ?? 200,
      maxReadBytes: opts.maxReadBytes ?? 256 * 1024,
      progress: opts.progress ?? hostEventProgress(store),
    };
  }

  async subscribe(flight: string, listener: LiveListener): Promise<(() => void) | undefined> {
    if (this.closed) throw new Error('the live event source is closed');
    let w = this.watches.get(flight);
    if (w === undefined) {
      w = new FlightWatch(flight, this.store, this.o);
      this.watches.set(flight, w);
      w.start();
    }
    const watch = w;
    await watch.look();
    const snap = watch.snapshot();
    if (snap === undefined || watch.gone) {
      if (watch.listeners.size === 0) this.drop(watch);
      return undefined;
    }
    listener({ type: 'snapshot', data: snap });
    watch.listeners.add(listener);
    return () => {
      watch.listeners.delete(listener);
      if (watch.listeners.size === 0) this.drop(watch);
    };
  }

  watching(): string[] {
    return [...this.watches.keys()];
  }

  private drop(w: FlightWatch): void {
    w.stop();
    if (this.watches.get(w.name) === w) this.watches.delete(w.name);
  }

  close(): void {
    this.closed = true;
    for (const w of this.watches.values()) {
      w.stop();
      w.listeners.clear();
    }
    this.watches.clear();
  }
}
