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
