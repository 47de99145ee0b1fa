/**
 * Where the pages link to. Every page links relatively, so the same pages work when written under the
 * Results directory (viewed as files, or served at `/results/`) and when rendered on request by
 * `osstest serve` (at `/flights/`). The site the links assume:
 *
 *   flights/<flight>/              flight grid       (written: <Results>/<flight>/index.html)
 *   flights/<flight>/<job>/        job page          (written: <Results>/<flight>/<job>/index.html)
 *   flights/<flight>/live          live view         (served only)
 *   logs/<path>                    the Logs directory (written pages: Logs next to Results, as by default)
 *   stash/<path>                   the Stash directory
 *   history/jobs/<job>/            job history       (served only)
 *   history/hosts/<host>/          host history      (served only)
 *   branches/<branch>/             branch page       (served only)
 *   plan/                          resource plan     (served only, lab mode)
 *
 * Flight pages link to other flights as siblings (`../<ref>/`), so a reference flight is found both
 * among written pages and among served ones. Names become path segments through `pathSegment`, and
 * every segment is percent-encoded in a link: a name can never make a link leave its place or turn it
 * into another scheme (`javascript:`).
 */
const PLAIN_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;

/**
 * The directory name a flight or job name is written under. The store only accepts names that are
 * already safe (src/db/names.ts), and those are kept as they are; anything else (hand-built report
 * data) is percent-encoded completely, so it holds no `/`, does not start with `.`, and cannot equal a
 * plain name (plain names never hold `%` and never start with `_` or `-`).
 */
export function pathSegment(name: string): string {
  if (name === '') throw new Error('an empty name cannot be a path segment');
  if (PLAIN_NAME.test(name) && name.length <= 200) return name;
  return encodeURIComponent(name).replace(
    /[!'()*~.]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** A link to the directory `pathSegment(name)`: the segment itself percent-encoded for the URL. */
function seg(name: string): string {
  return encodeURIComponent(pathSegment(name));
}

/**
 * A relative path under Logs or Stash as a URL path, each component percent-encoded. A component
 * `.` or `..` (a bad path in the store) is encoded too: the link then names a file that the server
 * refuses, rather than leading elsewhere.
 */
function filePath(rel: string): string {
  return rel
    .split(/[/\\]/)
    .filter((p) => p !== '')
    .map((p) => (/^\.+$/.test(p) ? p.replace(/\./g, '%2E') : encodeURIComponent(p)))
    .join('/');
}

export type PageKind = 'flight' | 'job' | 'flights' | 'history' | 'branch' | 'live' | 'plan';

export class Links {
  /** Path from the page to the site root, e.g. `../../`. */
  private readonly up: string;
  /** Path from the page to the directory holding the flights. */
  private readonly flights: string;

  constructor(kind: PageKind) {
    switch (kind) {
      case 'flights':
        this.up = '../';
        this.flights = './';
        break;
      case 'flight':
      case 'live':
        this.up = '../../';
        this.flights = '../';
        break;
      case 'job':
        this.up = '../../../';
        this.flights = '../../';
        break;
      case 'history':
        this.up = '../../../';
        this.flights = '../../../flights/';
        break;
      case 'branch':
        this.up = '../../';
        this.flights = '../../flights/';
        break;
      case 'plan':
        this.up = '../';
        this.flights = '../flights/';
        break;
    }
  }

  flight(flight: string): string {
    return `${this.flights}${seg(flight)}/`;
  }

  job(flight: string, job: string): string {
    return `${this.flights}${seg(flight)}/${seg(job)}/`;
  }

  live(flight: string): string {
    return `${this.up}flights/${seg(flight)}/live`;
  }

  /** A file under the Logs directory, by its path relative to it (a step's `logPath`). */
  log(rel: string): string {
    return `${this.up}logs/${filePath(rel)}`;
  }

  stash(rel: string): string {
    return `${this.up}stash/${filePath(rel)}`;
  }

  jobHistory(job: string, branch?: string): string {
    const q = branch === undefined ? '' : `?branch=${encodeURIComponent(branch)}`;
    return `${this.up}history/jobs/${seg(job)}/${q}`;
  }

  hostHistory(host: string): string {
    return `${this.up}history/hosts/${seg(host)}/`;
  }

  branch(branch: string): string {
    return `${this.up}branches/${seg(branch)}/`;
  }

  allFlights(): string {
    return `${this.up}flights/`;
  }
}
