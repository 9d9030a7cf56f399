// kbx-shim: the $(SHELL) that `kbx make` gives make. make runs it as
// `kbx-shim -c '<recipe line>'` for every recipe line and $(shell) call.
// Contract: docs/PROTOCOL.md sections 1 (environment), 2 (frames), 4 (counters).
//
// Per line, in this order:
//   1. no KBX_SOCKET: exec the real shell;
//   2. trivial lines (`:`, `set -e;`, plain echos): done here, no shell;
//   3. pass-through (KBX_PASSTHROUGH=1, recursive make, shell flags, anything
//      we do not understand): run in a child, count its end for the daemon;
//   4. cacheable: LOOKUP to the daemon → HIT (replay), PASS (as 3) or MISS
//      (run traced, send DONE, wait for ACK);
//   5. any daemon trouble before the line ran: as 3 (fallback).
//
// Hot path: steps 1-2 run for about half of all lines of a kernel build and
// must cost no more than `dash -c :`, so they use no stdio, read the
// environment once and touch the counters file only to count.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum {
  SLOT_TRIVIAL = 0, SLOT_RECURSIVE = 1, SLOT_PASS_DAEMON = 2, SLOT_FALLBACK = 3,
  SLOT_HIT = 4, SLOT_MISS = 5, SLOT_PASS_CONFIG = 6,
  SLOT_PASS_FLAGS = 7, // proposed addition to PROTOCOL.md section 4
  SLOT_UNSEEN_ENDED = 8, SLOT_UNSEEN_UNKNOWN = 9, SLOT_WARNED = 15,
};
enum { MSG_LOOKUP = 1, MSG_HIT = 2, MSG_MISS = 3, MSG_PASS = 4, MSG_DONE = 5, MSG_ACK = 6 };
#define MAX_FRAME (64u << 20)
#define MAX_CAPTURE (16u << 20)

// The variables we need, collected in one pass over environ (getenv would scan
// it once per name).
static struct {
  const char *socket, *real_shell, *counters, *build_id, *timeout_ms, *make_name,
      *passthrough, *tracer, *makeflags, *ld_preload, *events, *trace_log, *make_log;
} env;

static char **g_argv;     // our argv; g_argv[0] is replaced by the real shell
static const char *g_cmd; // the command text after -c
static int g_extra_flags; // flags other than `c` (e.g. `-e` from .POSIX)

// ---------------------------------------------------------------- utilities

static void read_env(void) {
  for (char **e = environ; *e; e++) {
    const char *s = *e;
#define MATCH(prefix, field) \
  if (!strncmp(s, prefix "=", sizeof(prefix))) { env.field = s + sizeof(prefix); continue; }
    if (s[0] == 'K' && s[1] == 'B' && s[2] == 'X' && s[3] == '_') {
      MATCH("KBX_SOCKET", socket) MATCH("KBX_REAL_SHELL", real_shell)
      MATCH("KBX_COUNTERS", counters) MATCH("KBX_BUILD_ID", build_id)
      MATCH("KBX_TIMEOUT_MS", timeout_ms) MATCH("KBX_MAKE", make_name)
      MATCH("KBX_PASSTHROUGH", passthrough) MATCH("KBX_TRACER", tracer)
      MATCH("KBX_EVENTS", events) MATCH("KBX_TRACE_LOG", trace_log)
      MATCH("KBX_MAKE_LOG", make_log)
    } else {
      MATCH("MAKEFLAGS", makeflags) MATCH("LD_PRELOAD", ld_preload)
    }
#undef MATCH
  }
  if (!env.real_shell || !*env.real_shell) env.real_shell = "/bin/sh";
  if (env.socket && !*env.socket) env.socket = NULL; // empty means unset
  if (!env.make_name || !*env.make_name) env.make_name = "make";
  if (!env.build_id) env.build_id = "";
  if (env.events && !*env.events) env.events = NULL;
}

// Writes everything; -1 with errno on failure. On the daemon socket, send()
// with MSG_NOSIGNAL: a closed connection must not kill the shim by SIGPIPE.
static int put_all(int fd, const void *buf, size_t n, int is_socket) {
  const char *p = buf;
  while (n > 0) {
    ssize_t w = is_socket ? send(fd, p, n, MSG_NOSIGNAL) : write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w, n -= (size_t)w;
  }
  return 0;
}
#define write_full(fd, buf, n) put_all(fd, buf, n, 0)
#define send_full(fd, buf, n) put_all(fd, buf, n, 1)

// A message on stderr, formatted without stdio buffering.
static void say(const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n > 0) write_full(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
}

// Returns 0, or -1 with errno set (0 at end of file).
static int read_full(int fd, void *buf, size_t n) {
  char *p = buf;
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) errno = 0;
    if (r <= 0) return -1;
    p += r, n -= (size_t)r;
  }
  return 0;
}

// Runs the line as if kbx were not there: same process, same fds, original
// flags. argv[0] becomes the real shell so its messages read "/bin/sh: 1: ..."
// exactly as under plain make.
static _Noreturn void exec_real_shell(void) {
  g_argv[0] = (char *)env.real_shell;
  execv(env.real_shell, g_argv);
  say("kbx: cannot run %s: %s\n", env.real_shell, strerror(errno));
  _exit(127);
}

// ------------------------------------------------------------------ counters

static volatile uint64_t *g_counters; // NULL until mapped
static int g_counters_tried;

// Maps KBX_COUNTERS on first use. A missing or short file disables counting
// (and the fallback warning, which is guarded by slot 15) without failing.
// A file of COUNTERS_SIZE bytes also has the current-line area (slot 16 on).
#define COUNTERS_SIZE 512
static size_t g_counters_size;
static volatile uint64_t *counters(void) {
  if (g_counters_tried) return g_counters;
  g_counters_tried = 1;
  if (!env.counters) return NULL;
  int fd = open(env.counters, O_RDWR | O_CLOEXEC);
  if (fd < 0) return NULL;
  struct stat st;
  // Mapping past the end of a short file would SIGBUS on access.
  if (fstat(fd, &st) == 0 && st.st_size >= 16 * 8) {
    g_counters_size = st.st_size >= COUNTERS_SIZE ? COUNTERS_SIZE : 16 * 8;
    void *m = mmap(NULL, g_counters_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m != MAP_FAILED) g_counters = m;
  }
  close(fd);
  return g_counters;
}

// The slots are little-endian u64; x86_64 and arm64 Linux are little-endian.
static void count(int slot) {
  volatile uint64_t *c = counters();
  if (c) __atomic_fetch_add(&c[slot], 1, __ATOMIC_RELAXED);
}

// ------------------------------------------------- running a child

static volatile sig_atomic_t g_child;
static int g_chld_pipe[2] = {-1, -1};

// make (or the terminal) signalling the shim means the line: pass it on.
static void on_forward(int sig) {
  if (g_child > 0) kill(g_child, sig);
}

static _Noreturn void exit_like(int status) {
  if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
  int sig = WTERMSIG(status);
  // Die of the same signal so make reports it as it would for /bin/sh, but
  // without leaving a core file of the shim.
  struct rlimit nocore = {0, 0};
  setrlimit(RLIMIT_CORE, &nocore);
  signal(sig, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  sigprocmask(SIG_UNBLOCK, &set, NULL);
  raise(sig);
  _exit(128 + sig);
}

// ------------------------------------------------------------------ events
//
// With KBX_EVENTS set (kbx make records every build), the lines the daemon
// does not run itself (trivial, pass-through, fallback) each append one
// record to that file (docs/PROTOCOL.md section 5), and pass-through lines
// run in a child so that their end and exit status are known.

#define EVENT_HEADER 40
#define EVENT_MAX_TEXT 65536

static uint64_t g_start_us;

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void put_u32(char *p, uint32_t v);

static void put_u64(char *p, uint64_t v) {
  put_u32(p, (uint32_t)v);
  put_u32(p + 4, (uint32_t)(v >> 32));
}

// end_us 0: unknown (the line was exec'd). One write() of the whole record to
// an O_APPEND file: records from parallel lines never interleave.
static void record_event(int slot, int status, uint64_t end_us, const char *reason) {
  if (!env.events || !g_cmd) return;
  char *cwd = getcwd(NULL, 0);
  size_t cwd_len = cwd ? strlen(cwd) : 0, cmd_len = strlen(g_cmd), why_len = reason ? strlen(reason) : 0;
  if (cmd_len > EVENT_MAX_TEXT) cmd_len = EVENT_MAX_TEXT;
  if (why_len > 256) why_len = 256;
  size_t total = EVENT_HEADER + cwd_len + cmd_len + why_len;
  char *rec = malloc(total);
  if (!rec) return;
  put_u32(rec, (uint32_t)total);
  put_u32(rec + 4, (uint32_t)slot);
  put_u32(rec + 8, (uint32_t)status);
  put_u64(rec + 12, g_start_us);
  put_u64(rec + 20, end_us);
  put_u32(rec + 28, (uint32_t)cwd_len);
  put_u32(rec + 32, (uint32_t)cmd_len);
  put_u32(rec + 36, (uint32_t)why_len);
  if (cwd_len) memcpy(rec + EVENT_HEADER, cwd, cwd_len);
  memcpy(rec + EVENT_HEADER + cwd_len, g_cmd, cmd_len);
  if (why_len) memcpy(rec + EVENT_HEADER + cwd_len + cmd_len, reason, why_len);
  int fd = open(env.events, O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd >= 0) {
    if (write(fd, rec, total) < 0) { /* a lost record only thins the report */ }
    close(fd);
  }
  free(rec);
  free(cwd);
}

// The line about to run, for kbx make's progress display: a sequence number
// (odd while writing) at byte 128, the text from byte 136. Several shims may
// write at once; the reader retries or skips a torn text.
static void show_current_line(void) {
  volatile uint64_t *c = counters();
  if (!c || g_counters_size < COUNTERS_SIZE) return;
  volatile char *text = (volatile char *)(c + 17);
  size_t cap = COUNTERS_SIZE - 17 * 8 - 1, n = strlen(g_cmd);
  if (n > cap) n = cap;
  __atomic_fetch_add(&c[16], 1, __ATOMIC_ACQ_REL);
  for (size_t i = 0; i < n; i++) text[i] = g_cmd[i];
  text[n] = 0;
  __atomic_fetch_add(&c[16], 1, __ATOMIC_ACQ_REL);
}

// A line the daemon does not see may write files whose stat the daemon trusts
// for a moment (src/fingerprint/file-state.ts). Counting the line's end in
// slot 8, before the shim exits and so before make starts any line that
// depends on it, lets the daemon see it at the next LOOKUP and check every
// file again (PROTOCOL.md section 4). A line whose end cannot be known sets
// slot 9: the daemon then trusts no earlier check for the rest of the build.
static void unseen_line_ended(void) { count(SLOT_UNSEEN_ENDED); }

static void unseen_line_end_unknown(void) {
  volatile uint64_t *c = counters();
  if (c) __atomic_store_n(&c[SLOT_UNSEEN_UNKNOWN], 1, __ATOMIC_SEQ_CST);
}

// Runs a line the daemon does not see in a child, forwarding make's signals,
// then counts its end and records it (with KBX_EVENTS). posix_spawn (a vfork
// underneath) rather than fork: no page tables to copy, which was a third of
// a millisecond per line. Signals are blocked while the handlers go in; the
// shell starts with the mask we inherited, and exec resets our handlers to
// the default while ignored signals stay ignored. The jobserver's descriptors
// are inherited as by exec.
static _Noreturn void run_unseen(int slot, const char *reason) {
  static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
  sigset_t block, old;
  sigemptyset(&block);
  for (int i = 0; i < 3; i++) sigaddset(&block, sigs[i]);
  sigprocmask(SIG_BLOCK, &block, &old);
  for (int i = 0; i < 3; i++) {
    struct sigaction sa = {.sa_handler = on_forward}, inherited;
    sigaction(sigs[i], NULL, &inherited);
    if (inherited.sa_handler != SIG_IGN) sigaction(sigs[i], &sa, NULL);
  }
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setsigmask(&attr, &old);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  g_argv[0] = (char *)env.real_shell;
  pid_t pid;
  int err = posix_spawn(&pid, env.real_shell, NULL, &attr, g_argv, environ);
  if (err) {
    sigprocmask(SIG_SETMASK, &old, NULL);
    unseen_line_end_unknown();
    record_event(slot, -1, 0, reason);
    exec_real_shell(); // says why, as it would have
  }
  g_child = pid;
  sigprocmask(SIG_SETMASK, &old, NULL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      status = 127 << 8;
      break;
    }
  }
  unseen_line_ended();
  record_event(slot, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), now_us(), reason);
  exit_like(status);
}

static _Noreturn void pass_through_because(int slot, const char *reason) {
  count(slot);
  show_current_line();
  run_unseen(slot, reason);
}

static _Noreturn void pass_through(int slot) { pass_through_because(slot, NULL); }

// Daemon trouble before anything ran: warn once per build, then run the line.
// The first shim to flip slot 15 from 0 to 1 warns; without a counters file
// there is no way to tell, so no shim warns (rather than every line).
static _Noreturn void __attribute__((format(printf, 1, 2))) fallback(const char *fmt, ...) {
  count(SLOT_FALLBACK);
  volatile uint64_t *c = counters();
  uint64_t zero = 0;
  if (c && __atomic_compare_exchange_n(&c[SLOT_WARNED], &zero, 1, 0, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST)) {
    char what[800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    say("kbx: %s; running recipe lines without the cache (see kbx daemon status)\n", what);
  }
  run_unseen(SLOT_FALLBACK, NULL);
}

// ------------------------------------------------------------- command line

// Accepts what make passes: option words made of `c` and `e` (once `c`),
// then exactly the command. Anything else (interactive, $0 arguments, -x, +e,
// --) is left to the real shell. Returns the command or NULL.
static const char *parse_args(int argc, char **argv) {
  int i, seen_c = 0;
  for (i = 1; i < argc && argv[i][0] == '-'; i++) {
    const char *p = argv[i] + 1;
    if (!*p) return NULL;
    for (; *p; p++) {
      if (*p == 'c') seen_c++;
      else if (*p == 'e') g_extra_flags = 1;
      else return NULL;
    }
  }
  if (seen_c != 1 || i != argc - 1) return NULL;
  return argv[i];
}

// ------------------------------------------------------------ trivial lines
//
// Grammar accepted (everything else goes to a shell):
//   line := ws* [ cmd ws* ( ';' ws* cmd ws* )* [ ';' ws* ] ]
//   cmd  := ':' word* | 'true' | 'set -e' | 'echo' word* | 'printf' 'fmt'
//         | 'trap' word sig+       sig := HUP | INT | QUIT | TERM | PIPE
//   word := ( plain char | '...' )+
// where plain chars are letters, digits and -_.,/:+=@%^] (no expansion, glob,
// tilde, redirection or operator), quoted text has no newline, and no
// backslash appears except `\n` in a printf format. `;;` and a leading `;` are
// syntax errors in sh, so they are rejected rather than imitated.
//
// `trap` matters because kbuild's `cmd` macro sets five traps (delete the
// target on a signal) before the command, and an empty command (no genksyms,
// no objtool in the config) leaves a line of traps alone: about half the
// lines of a kernel build. A trap on these signals does nothing unless the
// signal arrives during the line; the shim then dies of it, and make deletes
// the target as the trap would have. EXIT traps run at exit: not trivial.

#define TRIVIAL_MAX_CMD 4096
#define TRIVIAL_MAX_WORDS 64

struct word {
  const char *text; // quote-removed, in the scratch buffer
  size_t len;
  int plain;     // no quotes at all
  int quoted;    // exactly one '...' and nothing else
  int backslash; // contains a backslash (only allowed in printf's format)
};

static int is_plain_char(unsigned char ch) {
  if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) return 1;
  return ch && strchr("-_.,/:+=@%^]", ch) != NULL;
}

// Reads one word at *pp into *scratch; returns 0, or -1 if not trivial.
static int lex_word(const char **pp, char **scratch, struct word *w) {
  const char *p = *pp;
  char *out = *scratch;
  int parts = 0;
  w->text = out, w->plain = 1, w->backslash = 0;
  for (; *p && *p != ' ' && *p != '\t' && *p != ';'; parts++) {
    if (*p == '\'') {
      w->plain = 0;
      for (p++; *p != '\''; p++) {
        if (!*p || *p == '\n') return -1;
        if (*p == '\\') w->backslash = 1;
        *out++ = *p;
      }
      p++;
    } else if (is_plain_char((unsigned char)*p)) {
      *out++ = *p++;
    } else {
      return -1;
    }
  }
  w->quoted = parts == 1 && !w->plain;
  w->len = (size_t)(out - w->text);
  *scratch = out;
  *pp = p;
  return 0;
}

static int word_is(const struct word *w, const char *s) {
  return w->plain && w->len == strlen(s) && !memcmp(w->text, s, w->len);
}

// Appends what dash's echo/printf would print for one command to *outp.
// Returns -1 if the command is not one we do in-process.
static int run_trivial_cmd(struct word *w, int n, char **outp) {
  char *out = *outp;
  if (word_is(&w[0], ":")) return 0; // arguments are plain text: nothing expands
  if (word_is(&w[0], "true")) return n == 1 ? 0 : -1;
  if (word_is(&w[0], "set")) return n == 2 && word_is(&w[1], "-e") ? 0 : -1;
  if (word_is(&w[0], "trap")) {
    if (n < 3) return -1; // `trap` alone lists the traps
    for (int i = 2; i < n; i++)
      if (!word_is(&w[i], "HUP") && !word_is(&w[i], "INT") && !word_is(&w[i], "QUIT") && !word_is(&w[i], "TERM") &&
          !word_is(&w[i], "PIPE"))
        return -1;
    return 0;
  }
  if (word_is(&w[0], "echo")) {
    // dash's echo: only an exact first "-n" is an option; it always expands
    // escapes, hence no backslash may appear at all. Other leading dashes
    // (-e, -E, --) are left to the shell: bash as KBX_REAL_SHELL reads them
    // as options where dash prints them.
    int i = 1, newline = 1;
    if (n > 1 && w[1].len == 2 && !memcmp(w[1].text, "-n", 2)) i = 2, newline = 0;
    if (i < n && w[i].len > 1 && w[i].text[0] == '-') return -1;
    for (int first = i; i < n; i++) {
      if (w[i].backslash) return -1;
      if (i > first) *out++ = ' ';
      memcpy(out, w[i].text, w[i].len);
      out += w[i].len;
    }
    if (newline) *out++ = '\n';
    *outp = out;
    return 0;
  }
  if (word_is(&w[0], "printf")) {
    // One fully single-quoted format with literal text and `\n` only.
    if (n != 2 || !w[1].quoted) return -1;
    for (size_t i = 0; i < w[1].len; i++) {
      char ch = w[1].text[i];
      if (ch == '%') return -1;
      if (ch == '\\') {
        if (i + 1 >= w[1].len || w[1].text[i + 1] != 'n') return -1;
        ch = '\n', i++;
      }
      *out++ = ch;
    }
    *outp = out;
    return 0;
  }
  return -1;
}

// Does the whole line if it is trivial (and exits); returns if it is not.
static void try_trivial(const char *cmd) {
  size_t len = strlen(cmd);
  if (len > TRIVIAL_MAX_CMD) return; // trivial lines are short; be conservative
  char scratch[TRIVIAL_MAX_CMD + 1];
  // Each command prints at most its own source length plus a newline.
  char outbuf[2 * TRIVIAL_MAX_CMD + 2];
  char *sp = scratch, *out = outbuf;
  struct word w[TRIVIAL_MAX_WORDS];
  const char *p = cmd;
#define SKIP_WS() while (*p == ' ' || *p == '\t') p++
  SKIP_WS();
  while (*p) {
    int n = 0;
    while (*p && *p != ';') {
      if (n == TRIVIAL_MAX_WORDS || lex_word(&p, &sp, &w[n++]) < 0) return;
      SKIP_WS();
    }
    if (n == 0 || run_trivial_cmd(w, n, &out) < 0) return; // n == 0: `;;` or leading `;`
    if (*p == ';') p++;
    SKIP_WS();
  }
#undef SKIP_WS
  // One write for the whole line: nothing else writes in between, and if it
  // fails before any byte went out the real shell can redo the line exactly
  // (with its own error message and status), since trivial lines have no
  // other effects.
  size_t done = 0, total = (size_t)(out - outbuf);
  while (done < total) {
    ssize_t wr = write(1, outbuf + done, total - done);
    if (wr < 0 && errno == EINTR) continue;
    if (wr <= 0) {
      if (done == 0) exec_real_shell();
      _exit(1);
    }
    done += (size_t)wr;
  }
  count(SLOT_TRIVIAL);
  record_event(SLOT_TRIVIAL, 0, now_us(), NULL);
  _exit(0);
}

// `cat FILE` and `cat FILE 2> /dev/null` of a small regular file, done here:
// kbuild's `$(shell cat include/config/kernel.release 2> /dev/null)` runs for
// every line the top make runs (KERNELRELEASE is exported), ~70 times in a
// kernel no-op, and each was a round trip to the daemon. Reading a file writes
// nothing, so the daemon need not look at the tree again. Only the case where
// everything works is done here (the file read whole before the first byte
// goes out); anything else (absent, a directory, too big, a `cat` on PATH
// that is not /usr/bin/cat or /bin/cat) goes on as before. Not while kbx logs
// what make reads for replay: replay checks such a line's output (PROTOCOL.md
// section 3, "Make log"), which a line done here does not record.
#define CAT_MAX_BYTES 65536

static int coreutils_cat_on_path(void) {
  const char *path = getenv("PATH");
  if (!path) path = "/bin:/usr/bin"; // dash's default
  for (const char *p = path;; p++) {
    const char *end = strchr(p, ':');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    char cand[4200];
    if (n == 0) return 0; // an empty entry is the working directory
    if (n < sizeof cand - 5) {
      memcpy(cand, p, n);
      memcpy(cand + n, "/cat", 5);
      if (access(cand, X_OK) == 0) return !strcmp(cand, "/usr/bin/cat") || !strcmp(cand, "/bin/cat");
    }
    if (!end) return 0;
    p = end;
  }
}

static void try_cat(const char *cmd) {
  if (strncmp(cmd, "cat ", 4) || (env.make_log && *env.make_log)) return;
  const char *p = cmd + 4;
  while (*p == ' ' || *p == '\t') p++;
  char name[TRIVIAL_MAX_CMD + 1], *sp = name;
  struct word w;
  if (strlen(cmd) > TRIVIAL_MAX_CMD || lex_word(&p, &sp, &w) < 0 || w.len == 0 || w.backslash || w.text[0] == '-') return;
  name[w.len] = '\0'; // w.text is name: the first word lexed into it
  while (*p == ' ' || *p == '\t') p++;
  if (*p) {
    if (strncmp(p, "2>", 2)) return;
    p += 2;
    while (*p == ' ' || *p == '\t') p++;
    if (strncmp(p, "/dev/null", 9)) return;
    p += 9;
    while (*p == ' ' || *p == '\t') p++;
    if (*p) return;
  }
  if (!coreutils_cat_on_path()) return;
  int fd = open(w.text, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return;
  struct stat st;
  char buf[CAT_MAX_BYTES + 1];
  size_t total = 0;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= CAT_MAX_BYTES) {
    for (;;) {
      ssize_t r = read(fd, buf + total, sizeof buf - total);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) total = sizeof buf; // an error: not done here
      if (r <= 0 || (total += (size_t)r) >= sizeof buf) break;
    }
  } else {
    total = sizeof buf;
  }
  close(fd);
  if (total > CAT_MAX_BYTES) return; // grew while read, or failed: the real cat says what happened
  for (size_t done = 0; done < total;) {
    ssize_t wr = write(1, buf + done, total - done);
    if (wr < 0 && errno == EINTR) continue;
    if (wr <= 0) {
      if (done == 0) return;
      _exit(1);
    }
    done += (size_t)wr;
  }
  count(SLOT_TRIVIAL);
  record_event(SLOT_TRIVIAL, 0, now_us(), NULL);
  _exit(0);
}

// --------------------------------------------------------- recursive make

// make hands the jobserver (4.3: its pipe's descriptors, left open; 4.4: a
// `fifo:` path) to every line it considers recursive: $(MAKE) in the text, or
// a `+` prefix. kbuild puts `+` on lines that run no make (a module's final
// link, its BTF), so an open jobserver alone does not make a line recursive:
// only the text does. A line sent to the daemon inherits the descriptors on a
// miss as it would from sh, and a traced run that turns out to start make
// anyway (a script running $MAKE) is never stored (runs-make, the daemon).

static int is_name_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         (ch && strchr("_.-+", ch));
}

// The make program's name as a word of its own, or as the last component of
// a path (/usr/bin/make). `echo make` also matches: a false positive only
// costs the cache one line, a false negative breaks the jobserver.
static int mentions_make(const char *cmd) {
  size_t n = strlen(env.make_name);
  for (const char *s = cmd; (s = strstr(s, env.make_name)) != NULL; s++) {
    if (s > cmd && is_name_char(s[-1])) continue; // cmake, remake
    if (is_name_char(s[n]) || s[n] == '/') continue; // makefile, make.sh, make/
    return 1;
  }
  return 0;
}

// ------------------------------------------------------------------ frames

struct buf {
  char *p;
  size_t len, cap;
  int failed; // out of memory: the content is incomplete
};

static void buf_add(struct buf *b, const void *d, size_t n) {
  if (b->failed || n == 0) return; // n == 0: d may be NULL (an empty capture)
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->failed = 1;
      return;
    }
    b->p = p, b->cap = cap;
  }
  memcpy(b->p + b->len, d, n);
  b->len += n;
}

static void put_u32(char *p, uint32_t v) {
  p[0] = (char)v, p[1] = (char)(v >> 8), p[2] = (char)(v >> 16), p[3] = (char)(v >> 24);
}

static uint32_t get_u32(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  return u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

static void frame_begin(struct buf *b, int type) {
  char hdr[5] = {0, 0, 0, 0, (char)type};
  b->len = 0;
  buf_add(b, hdr, 5);
}

static void frame_field(struct buf *b, const void *d, size_t n) {
  char len[4];
  put_u32(len, (uint32_t)n);
  buf_add(b, len, 4);
  buf_add(b, d, n);
}

static void frame_end(struct buf *b) { put_u32(b->p, (uint32_t)(b->len - 4)); }

#define MAX_FIELDS 8
struct frame {
  int type, nfields;
  const char *f[MAX_FIELDS];
  uint32_t len[MAX_FIELDS];
};

// Reads one frame, checking every bound. Returns 0; -1 on an I/O error (errno,
// 0 at end of file); -2 if malformed.
static int recv_frame(int fd, struct frame *fr) {
  char hdr[4];
  if (read_full(fd, hdr, 4) < 0) return -1;
  uint32_t len = get_u32(hdr);
  if (len < 1 || len > MAX_FRAME) return -2;
  char *body = malloc(len);
  if (!body) return -2;
  if (read_full(fd, body, len) < 0) return -1;
  fr->type = (unsigned char)body[0];
  fr->nfields = 0;
  for (uint32_t off = 1; off < len;) {
    if (fr->nfields == MAX_FIELDS || len - off < 4) return -2;
    uint32_t flen = get_u32(body + off);
    off += 4;
    if (flen > len - off) return -2;
    fr->f[fr->nfields] = body + off;
    fr->len[fr->nfields++] = flen;
    off += flen;
  }
  return 0; // body stays allocated until exit: the fields point into it
}

// ------------------------------------------------------------ the daemon

static int g_timeout_ms = 60000;

static int connect_daemon(void) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(env.socket) >= sizeof sa.sun_path) fallback("the daemon socket path %s is too long", env.socket);
  strcpy(sa.sun_path, env.socket);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fallback("cannot create a socket");
  // SO_SNDTIMEO also bounds connect() on a Unix socket with a full backlog.
  struct timeval tv = {g_timeout_ms / 1000, (g_timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    fallback("cannot connect to the daemon at %s (%s)", env.socket, strerror(errno));
  return fd;
}

static void send_lookup(int fd, struct buf *b) {
  char *cwd = getcwd(NULL, 0);
  if (!cwd) fallback("cannot determine the working directory");
  // The tty flags, then the umask: a line's new files get their modes through
  // it, and a hit restores the modes the stored run's umask gave.
  char tty[16], *t = tty;
  if (isatty(0)) *t++ = 'i';
  if (isatty(1)) *t++ = 'o';
  if (isatty(2)) *t++ = 'e';
  mode_t mask = umask(0);
  umask(mask);
  t += snprintf(t, sizeof tty - (size_t)(t - tty), "u%03o", (unsigned)mask & 0777);
  frame_begin(b, MSG_LOOKUP);
  frame_field(b, "1", 1);
  frame_field(b, env.build_id, strlen(env.build_id));
  frame_field(b, cwd, strlen(cwd));
  frame_field(b, g_cmd, strlen(g_cmd));
  frame_field(b, tty, (size_t)(t - tty));
  // All of it: the daemon decides which variables matter (and drops KBX_*).
  for (char **e = environ; *e; e++) frame_field(b, *e, strlen(*e));
  // Last, when the build is recorded: when the line really started (the
  // daemon may be busy with other lines before it reads this one).
  if (env.events) {
    char start[48];
    int n = snprintf(start, sizeof start, "KBX_LINE_START_US=%llu", (unsigned long long)g_start_us);
    frame_field(b, start, (size_t)n);
  }
  if (b->failed) fallback("out of memory");
  frame_end(b);
  if (b->len - 4 > MAX_FRAME) fallback("the environment is too large for one frame");
  if (send_full(fd, b->p, b->len) < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      fallback("the daemon did not read a request within %d ms", g_timeout_ms);
    fallback("lost the connection to the daemon (%s)", strerror(errno));
  }
}

static void receive_reply(int fd, struct frame *fr) {
  int rc = recv_frame(fd, fr);
  if (rc == -2) fallback("the daemon sent a malformed reply");
  if (rc == 0) return;
  if (errno == EAGAIN || errno == EWOULDBLOCK) fallback("the daemon did not answer within %d ms", g_timeout_ms);
  if (errno == 0) fallback("the daemon closed the connection without answering");
  fallback("lost the connection to the daemon (%s)", strerror(errno));
}

// "0".."255", nothing else.
static int parse_exit_status(const char *s, uint32_t n) {
  if (n < 1 || n > 3) return -1;
  int v = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v <= 255 ? v : -1;
}

static _Noreturn void replay_hit(const struct frame *fr) {
  int status = fr->nfields == 3 ? parse_exit_status(fr->f[0], fr->len[0]) : -1;
  if (status < 0) fallback("the daemon sent a malformed HIT");
  count(SLOT_HIT);
  write_full(1, fr->f[1], fr->len[1]);
  write_full(2, fr->f[2], fr->len[2]);
  _exit(status);
}

// ------------------------------------------------------- running a MISS

// Self-pipe: wakes poll() when the shell exits, even if a background process
// it started keeps the output pipes open.
static void on_chld(int sig) {
  (void)sig;
  int saved = errno;
  char c = 0;
  if (write(g_chld_pipe[1], &c, 1) < 0) { /* pipe full: a wake-up is already pending */ }
  errno = saved;
}

struct stream {
  int fd, dest; // our read end of the child's pipe; our own fd 1 or 2
  struct buf kept;
};
static size_t g_kept_total;
static int g_big, g_broken;

// Copies one read of the child's output to our fd and keeps a copy.
// Returns 1 if data moved, 0 if nothing is available now, -1 when closed.
static int pump(struct stream *s) {
  char tmp[65536];
  ssize_t r;
  do r = read(s->fd, tmp, sizeof tmp);
  while (r < 0 && errno == EINTR);
  if (r < 0 && errno == EAGAIN) return 0;
  if (r > 0 && write_full(s->dest, tmp, (size_t)r) < 0) {
    // Our reader went away: close the pipe so the line sees EPIPE/SIGPIPE as
    // it would without kbx. Its captured output is incomplete: no DONE.
    g_broken = 1;
    r = 0;
  }
  if (r <= 0) {
    close(s->fd);
    s->fd = -1;
    return -1;
  }
  if (!g_big && g_kept_total + (size_t)r > MAX_CAPTURE) g_big = 1;
  if (!g_big) {
    buf_add(&s->kept, tmp, (size_t)r);
    g_kept_total += (size_t)r;
    g_big = s->kept.failed; // out of memory: not cacheable either
  }
  return 1;
}

static void start_child(const char *trace_log, int out_w, int err_w) {
  dup2(out_w, 1);
  dup2(err_w, 2);
  // The tracer goes first; whatever the user preloads stays.
  size_t n = strlen(env.tracer) + (env.ld_preload ? strlen(env.ld_preload) + 1 : 0) + 1;
  char *preload = malloc(n);
  if (!preload) _exit(127);
  strcpy(preload, env.tracer);
  if (env.ld_preload && *env.ld_preload) strcat(strcat(preload, " "), env.ld_preload);
  setenv("LD_PRELOAD", preload, 1);
  setenv("KBX_TRACE_LOG", trace_log, 1);
  // ccache answering a hit from stats alone (its inode cache, compiler_check
  // mtime, sloppiness file_stat_matches) would show kbx existence where the
  // key needs content: make it read the headers and the compiler. Only for
  // the traced run; the key holds the environment sent in LOOKUP.
  unsetenv("CCACHE_INODECACHE");
  setenv("CCACHE_NOINODECACHE", "1", 1);
  setenv("CCACHE_COMPILERCHECK", "content", 1);
  setenv("CCACHE_SLOPPINESS", "", 1);
  exec_real_shell();
}

static _Noreturn void run_miss(int sock, const struct frame *fr, struct buf *b) {
  if (fr->nfields != 2 || memchr(fr->f[1], 0, fr->len[1]) || !fr->len[1])
    fallback("the daemon sent a malformed MISS");
  // Without a tracer nothing can be cached: run the line untraced and send no
  // DONE, so the daemon drops the action when the connection closes.
  if (!env.tracer || !*env.tracer) fallback("KBX_TRACER is not set");
  char *trace_log = strndup(fr->f[1], fr->len[1]);
  int out[2], err[2];
  if (!trace_log || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
      pipe2(g_chld_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
    fallback("cannot create pipes to run the line");

  // Handlers are installed while the signals are blocked; the child puts
  // back what we inherited before unblocking, so a signal can never run a
  // handler in it and an ignored signal (nohup, a background make) stays
  // ignored for the line, as it would under plain make.
  static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGCHLD};
  struct sigaction inherited[4];
  sigset_t block, old;
  sigemptyset(&block);
  for (int i = 0; i < 4; i++) sigaddset(&block, sigs[i]);
  sigprocmask(SIG_BLOCK, &block, &old);
  for (int i = 0; i < 4; i++) {
    struct sigaction sa = {.sa_handler = sigs[i] == SIGCHLD ? on_chld : on_forward,
                           .sa_flags = sigs[i] == SIGCHLD ? SA_NOCLDSTOP : 0};
    sigaction(sigs[i], NULL, &inherited[i]);
    if (sigs[i] == SIGCHLD || inherited[i].sa_handler != SIG_IGN) sigaction(sigs[i], &sa, NULL);
  }

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid_t pid = fork();
  if (pid == 0) {
    for (int i = 0; i < 4; i++) sigaction(sigs[i], &inherited[i], NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    start_child(trace_log, out[1], err[1]);
  }
  if (pid < 0) {
    sigprocmask(SIG_SETMASK, &old, NULL); // the shell must not inherit the block
    fallback("cannot fork to run the line");
  }
  g_child = pid;
  count(SLOT_MISS);
  // A write to a closed stdout must reach us as EPIPE, not kill us.
  signal(SIGPIPE, SIG_IGN);
  sigprocmask(SIG_SETMASK, &old, NULL);
  close(out[1]);
  close(err[1]);

  struct stream s[2] = {{.fd = out[0], .dest = 1}, {.fd = err[0], .dest = 2}};
  int status = 0, reaped = 0;
  while (!reaped) {
    struct pollfd pf[3] = {{g_chld_pipe[0], POLLIN, 0}, {s[0].fd, POLLIN, 0}, {s[1].fd, POLLIN, 0}};
    if (poll(pf, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break; // cannot happen with valid fds; wait below
    }
    for (int i = 0; i < 2; i++)
      if (pf[i + 1].revents && s[i].fd >= 0) pump(&s[i]);
    if (pf[0].revents) {
      char drain[64];
      while (read(g_chld_pipe[0], drain, sizeof drain) > 0) {}
      reaped = waitpid(pid, &status, WNOHANG) == pid;
    }
  }
  while (!reaped) reaped = waitpid(pid, &status, 0) == pid || errno != EINTR;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  // The shell has exited: take what it left in the pipes, but do not wait for
  // background processes that inherited them.
  for (int i = 0; i < 2; i++) {
    if (s[i].fd < 0) continue;
    fcntl(s[i].fd, F_SETFL, O_NONBLOCK);
    while (s[i].fd >= 0 && pump(&s[i]) > 0) {}
  }

  if (!g_broken) {
    char st[16], us[24];
    if (g_big) snprintf(st, sizeof st, "big");
    else if (WIFSIGNALED(status)) snprintf(st, sizeof st, "sig:%d", WTERMSIG(status));
    else snprintf(st, sizeof st, "%d", WEXITSTATUS(status));
    long long elapsed = (long long)(t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
    snprintf(us, sizeof us, "%lld", elapsed);
    frame_begin(b, MSG_DONE);
    frame_field(b, fr->f[0], fr->len[0]);
    frame_field(b, st, strlen(st));
    frame_field(b, g_big ? "" : s[0].kept.p, g_big ? 0 : s[0].kept.len);
    frame_field(b, g_big ? "" : s[1].kept.p, g_big ? 0 : s[1].kept.len);
    frame_field(b, us, strlen(us));
    if (!b->failed) frame_end(b);
    // The line has run: from here on, daemon trouble changes nothing.
    struct frame ack;
    if (!b->failed && send_full(sock, b->p, b->len) == 0) recv_frame(sock, &ack);
  }
  close(sock);
  exit_like(status);
}

static _Noreturn void run_cacheable(void) {
  if (env.timeout_ms) {
    long t = strtol(env.timeout_ms, NULL, 10);
    if (t > 0 && t < 86400000) g_timeout_ms = (int)t;
  }
  show_current_line();
  int fd = connect_daemon();
  struct buf b = {0};
  send_lookup(fd, &b);
  struct frame fr;
  receive_reply(fd, &fr);
  switch (fr.type) {
  case MSG_HIT: replay_hit(&fr);
  case MSG_MISS: run_miss(fd, &fr, &b);
  case MSG_PASS: {
    if (fr.nfields != 1) fallback("the daemon sent a malformed PASS");
    close(fd);
    char *reason = strndup(fr.f[0], fr.len[0]);
    pass_through_because(SLOT_PASS_DAEMON, reason);
  }
  default:
    fallback("the daemon sent an unknown message type %d", fr.type);
  }
}

int main(int argc, char **argv) {
  g_argv = argv;
  read_env();
  if (env.events) g_start_us = now_us();
  g_cmd = parse_args(argc, argv);
  // Run as `$(SHELL) script` or `$(SHELL) -c …` by a line kbx is tracing: the
  // line is being recorded whole, so this is only its shell, traced with it
  // (the tracer lets this static program pass, PROTOCOL.md section 3). A
  // lookup here would answer part of the line from the cache, unseen.
  if (env.trace_log || !env.socket) exec_real_shell();
  if (!g_cmd) run_unseen(SLOT_PASS_FLAGS, NULL); // left to the shell, but the daemon must learn its end
  try_trivial(g_cmd); // exits if it was
  try_cat(g_cmd);     // likewise
  if (g_extra_flags) pass_through(SLOT_PASS_FLAGS);
  if (env.passthrough && !strcmp(env.passthrough, "1")) pass_through(SLOT_PASS_CONFIG);
  if (mentions_make(g_cmd)) {
    // kbx make logs what every make reads (PROTOCOL.md section 3, "Make log"):
    // the tracer took itself out of make's children, so put it back for this one.
    if (env.make_log && *env.make_log && env.tracer && *env.tracer) {
      size_t n = strlen(env.tracer) + (env.ld_preload ? strlen(env.ld_preload) + 1 : 0) + 1;
      char *preload = malloc(n);
      if (preload) {
        strcpy(preload, env.tracer);
        if (env.ld_preload && *env.ld_preload) strcat(strcat(preload, " "), env.ld_preload);
        setenv("LD_PRELOAD", preload, 1);
      }
    }
    pass_through(SLOT_RECURSIVE);
  }
  run_cacheable();
}
