// timeit: the process-start timer behind bench/micro.ts. Runs two or more
// commands alternately (A B A B …) for RUNS rounds, each as make would run a
// recipe line (posix_spawn, wait), and prints one line per run:
// "<command index> <nanoseconds>". A native timer keeps the measurement from
// including Node's own (much larger) cost of starting a process.
//
//   timeit RUNS -- CMD1 ARGS… -- CMD2 ARGS… [-- CMD3 …]
//
// stdin comes from /dev/null and stdout/stderr go to /dev/null. Exits 1 when a
// command fails (the failing run is named on stderr).
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 4 || strcmp(argv[2], "--") != 0) {
    fprintf(stderr, "usage: timeit RUNS -- CMD ARGS... [-- CMD ARGS...]\n");
    return 2;
  }
  long runs = strtol(argv[1], NULL, 10);
  char **cmds[64];
  int ncmd = 0;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) {
      argv[i] = NULL; // terminates the previous command's argv
      if (i + 1 < argc && ncmd < 64) cmds[ncmd++] = &argv[i + 1];
    }
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  for (long r = 0; r < runs; r++) {
    for (int c = 0; c < ncmd; c++) {
      pid_t pid;
      int status;
      long long t0 = now_ns();
      if (posix_spawnp(&pid, cmds[c][0], &fa, NULL, cmds[c], environ) != 0) {
        fprintf(stderr, "timeit: cannot start %s\n", cmds[c][0]);
        return 1;
      }
      waitpid(pid, &status, 0);
      long long t1 = now_ns();
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "timeit: run %ld of %s failed (status %d)\n", r, cmds[c][0], status);
        return 1;
      }
      printf("%d %lld\n", c, t1 - t0);
    }
  }
  return 0;
}
