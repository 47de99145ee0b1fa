/**
 * A small C project in a real git repository, for the demo and the tests: it builds with make,
 * installs into $DESTDIR, and ships a `run-tests` script that prints TAP. Later commits can break
 * the build or a test, so flights can be shown passing, failing and blocked on real revisions.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';

const HELLO_C = `#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int add(int a, int b) { return a + b; }

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--add") == 0) {
    printf("%d\\n", add(atoi(argv[2]), atoi(argv[3])));
    return 0;
  }
  printf("hello, world\\n");
  return 0;
}
`;

const MAKEFILE = `CFLAGS ?= -O2 -Wall
all: hello
hello: hello.c
\t$(CC) $(CFLAGS) -o $@ hello.c
install: hello
\tmkdir -p $(DESTDIR)/bin
\tcp hello $(DESTDIR)/bin/hello
\tcp run-tests $(DESTDIR)/run-tests
check: hello
\tOSSTEST_INSTALL=. PATH=.:$$PATH ./run-tests
clean:
\trm -f hello
.PHONY: all install check clean
`;

const RUN_TESTS = `#!/bin/sh
# The demo project's tests, in TAP.
echo "1..3"
if [ "$(hello)" = "hello, world" ]; then echo "ok 1 - greeting"; else echo "not ok 1 - greeting"; fi
if [ "$(hello --add 2 3)" = "5" ]; then echo "ok 2 - add"; else echo "not ok 2 - add"; fi
if [ -x "$OSSTEST_INSTALL/bin/hello" ]; then echo "ok 3 - installed"; else echo "not ok 3 - installed"; fi
`;

export interface SampleProject {
  path: string;
  /** The first commit: builds and passes its tests. */
  good: string;
  /** Commits added on top by the helpers below, newest last. */
  head: string;
}

async function git(dir: string, ...args: string[]): Promise<string> {
  const r = await execa('git', args, {
    cwd: dir,
    env: {
      GIT_AUTHOR_NAME: 'Demo Developer',
      GIT_AUTHOR_EMAIL: 'dev@example.invalid',
      GIT_COMMITTER_NAME: 'Demo Developer',
      GIT_COMMITTER_EMAIL: 'dev@example.invalid',
    },
  });
  return r.stdout.trim();
}

async function commitAll(dir: string, message: string): Promise<string> {
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-q', '-m', message);
  return git(dir, 'rev-parse', 'HEAD');
}

export async function createSampleProject(path: string): Promise<SampleProject> {
  mkdirSync(path, { recursive: true });
  await git(path, 'init', '-q', '-b', 'master');
  writeFileSync(join(path, 'hello.c'), HELLO_C);
  writeFileSync(join(path, 'Makefile'), MAKEFILE);
  writeFileSync(join(path, 'run-tests'), RUN_TESTS);
  chmodSync(join(path, 'run-tests'), 0o755);
  const good = await commitAll(path, 'hello: a greeting and an adder');
  return { path, good, head: good };
}

/** A commit on top that no longer compiles. */
export async function commitBrokenBuild(p: SampleProject): Promise<string> {
  writeFileSync(join(p.path, 'hello.c'), `${HELLO_C}\nthis is not C;\n`);
  p.head = await commitAll(p.path, 'hello: a change that does not compile');
  return p.head;
}

/** A commit on top whose adder is wrong, so test 2 fails. */
export async function commitFailingTest(p: SampleProject): Promise<string> {
  writeFileSync(join(p.path, 'hello.c'), HELLO_C.replace('return a + b;', 'return a - b;'));
  p.head = await commitAll(p.path, 'add: an off-by-sign bug');
  return p.head;
}

/** A commit on top whose test suite hangs for `seconds`. */
export async function commitHangingTest(p: SampleProject, seconds: number): Promise<string> {
  writeFileSync(join(p.path, 'hello.c'), HELLO_C);
  writeFileSync(join(p.path, 'run-tests'), RUN_TESTS.replace('echo "1..3"', `echo "1..3"\nsleep ${seconds}`));
  p.head = await commitAll(p.path, 'tests: a test that hangs');
  return p.head;
}

/** Puts the tree back to the good state as a new commit. */
export async function commitFixed(p: SampleProject): Promise<string> {
  writeFileSync(join(p.path, 'hello.c'), HELLO_C);
  writeFileSync(join(p.path, 'run-tests'), RUN_TESTS);
  p.head = await commitAll(p.path, 'hello: back to working');
  return p.head;
}

/*
 * Two trees for the push-gate demo: `hello`, a program, and `libadd`, the small library it is built
 * with (hello's Makefile compiles ../libadd/add.c, so a build checks both out side by side, as the
 * build job does). Each has a history of a few commits. The demo's branch tests libadd: staging
 * commits to it are tested with hello at its master and pushed when hello's tests still pass.
 */

const HELLO2_C = `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "add.h"

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--add") == 0) {
    printf("%d\\n", add(atoi(argv[2]), atoi(argv[3])));
    return 0;
  }
  printf("hello, world\\n");
  return 0;
}
`;

const HELLO2_MAKEFILE = `CFLAGS ?= -O2 -Wall
LIBADD ?= ../libadd
all: hello
hello: hello.c $(LIBADD)/add.c $(LIBADD)/add.h
\t$(CC) $(CFLAGS) -I$(LIBADD) -o $@ hello.c $(LIBADD)/add.c
install: hello
\tmkdir -p $(DESTDIR)/bin
\tcp hello $(DESTDIR)/bin/hello
\tcp run-tests $(DESTDIR)/run-tests
check: hello
\tOSSTEST_INSTALL=. PATH=.:$$PATH ./run-tests
clean:
\trm -f hello
.PHONY: all install check clean
`;

const HELLO2_TESTS = `#!/bin/sh
# hello's tests, in TAP: the greeting, the adder (libadd) on a few sums, the installation.
echo "1..4"
if [ "$(hello)" = "hello, world" ]; then echo "ok 1 - greeting"; else echo "not ok 1 - greeting"; fi
if [ "$(hello --add 2 3)" = "5" ]; then echo "ok 2 - add"; else echo "not ok 2 - add"; fi
if [ "$(hello --add -4 4)" = "0" ]; then echo "ok 3 - add-negative"; else echo "not ok 3 - add-negative"; fi
if [ -x "$OSSTEST_INSTALL/bin/hello" ]; then echo "ok 4 - installed"; else echo "not ok 4 - installed"; fi
`;

const ADD_H = `#ifndef ADD_H
#define ADD_H
int add(int a, int b);
#endif
`;

/** libadd's add.c: add() (correct unless `broken`) and the extra functions later commits bring. */
function addC(extra: readonly string[], broken: boolean): string {
  const body = broken ? 'return a | b; /* the same as a + b, as long as no bits carry */' : 'return a + b;';
  return [
    `#include "add.h"`,
    '',
    `int add(int a, int b) { ${body} }`,
    ...extra.map((e) => `\n${e}`),
    '',
  ].join('\n');
}

export interface SampleTrees {
  hello: string;
  libadd: string;
  /** The commits made so far on each, oldest first. */
  history: { hello: string[]; libadd: string[] };
}

/** libadd's working state, so that later commits build on what is there. */
interface LibState {
  extra: string[];
  broken: boolean;
  notes: string[];
}
const libState = new Map<string, LibState>();

function writeLib(path: string, s: LibState): void {
  writeFileSync(join(path, 'add.c'), addC(s.extra, s.broken));
  writeFileSync(join(path, 'NOTES'), `${s.notes.join('\n')}\n`);
}

/** The two trees, each a git repository with a short history, in `dir`/hello and `dir`/libadd. */
export async function createSampleTrees(dir: string): Promise<SampleTrees> {
  const hello = join(dir, 'hello');
  const libadd = join(dir, 'libadd');
  const history: SampleTrees['history'] = { hello: [], libadd: [] };
  for (const p of [hello, libadd]) {
    mkdirSync(p, { recursive: true });
    await git(p, 'init', '-q', '-b', 'master');
  }
  const s: LibState = { extra: [], broken: false, notes: ['libadd: integer arithmetic for hello'] };
  libState.set(libadd, s);
  writeFileSync(join(libadd, 'add.h'), ADD_H);
  writeLib(libadd, s);
  history.libadd.push(await commitAll(libadd, 'libadd: add()'));
  s.notes.push('add() takes two ints and returns their sum.');
  writeLib(libadd, s);
  history.libadd.push(await commitAll(libadd, 'libadd: document add()'));

  writeFileSync(join(hello, 'hello.c'), HELLO_C);
  writeFileSync(join(hello, 'Makefile'), MAKEFILE);
  writeFileSync(join(hello, 'run-tests'), RUN_TESTS);
  chmodSync(join(hello, 'run-tests'), 0o755);
  history.hello.push(await commitAll(hello, 'hello: a greeting'));
  writeFileSync(join(hello, 'hello.c'), HELLO2_C);
  writeFileSync(join(hello, 'Makefile'), HELLO2_MAKEFILE);
  history.hello.push(await commitAll(hello, 'hello: add with libadd'));
  writeFileSync(join(hello, 'run-tests'), HELLO2_TESTS);
  history.hello.push(await commitAll(hello, 'hello: test adding negative numbers'));
  return { hello, libadd, history };
}

/**
 * Commits `count` changes to libadd (in its working repository), each of which builds; with `breakAt`
 * (1-based) that one commit makes add() wrong so hello's add tests fail from it on. Returns the commits,
 * oldest first.
 */
export async function commitLibaddChanges(
  trees: SampleTrees,
  count: number,
  opts: { breakAt?: number; label?: string } = {},
): Promise<string[]> {
  const s = libState.get(trees.libadd);
  if (!s) throw new Error(`${trees.libadd} was not made by createSampleTrees`);
  const out: string[] = [];
  for (let i = 1; i <= count; i++) {
    const n = s.extra.length + s.notes.length;
    let message: string;
    if (i === opts.breakAt) {
      s.broken = true;
      message = 'libadd: add() with a bitwise or, it is faster';
    } else if (i % 2 === 1) {
      s.extra.push(`int twice_${n}(int a) { return add(a, a); }`);
      message = `libadd: twice_${n}()`;
    } else {
      s.notes.push(`note ${n}${opts.label ? ` (${opts.label})` : ''}: nothing changes in add().`);
      message = `libadd: note ${n}`;
    }
    writeLib(trees.libadd, s);
    out.push(await commitAll(trees.libadd, message));
    trees.history.libadd.push(out.at(-1)!);
  }
  return out;
}
