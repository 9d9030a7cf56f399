// kbx-trace: the LD_PRELOAD file-access tracer.
//
// Loaded into every process of a recipe line that kbx records (a cache miss).
// It wraps libc's path-taking calls and appends one event per call to the file
// named by KBX_TRACE_LOG, in the format of docs/PROTOCOL.md section 3. The
// daemon turns the events into the line's inputs (its cache key) and outputs.
//
// Rules every wrapper follows:
//   - without KBX_TRACE_LOG the library only forwards (log_fd stays -1);
//   - the real call's result and errno reach the caller unchanged;
//   - no malloc and no global state changes: wrappers may run in a vfork child
//     (gcc runs its passes with vfork + execvp), which shares our memory with
//     its suspended parent (system and popen, never called there, may setenv);
//   - one write(2) per event line, so with O_APPEND the lines of concurrent
//     processes never interleave.
// This is a hot path (every open of every compiler process comes through
// here), so lines are built by hand in a stack buffer.
//
// The first traced process also exports KBX_TRACE_STDIN (its fd 0's identity)
// so that descendants can tell the line's own pipes from outside input.
//
// Calls glibc makes internally (fopen's and mkstemp's own open, execvp's own
// execve, ...) never reach these wrappers, which is why the stdio, mk*temp*
// and exec* forms are wrapped one by one. Likewise the directory walkers (fts,
// nftw/ftw, scandir, glob) list directories with libc's internal opendir: they
// are wrapped to log the listings they read (`r` of the directory).
//
// A line must be seen whole or not stored: children get the tracer back in
// whatever environment they are given, programs that cannot load it (static,
// 32-bit, set-id) are logged `!` before they run, and each change is logged
// under the path it really landed on, too, when a symlink leads elsewhere.

#undef _FORTIFY_SOURCE
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <ftw.h>
#include <glob.h>
#include <limits.h>
#include <link.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

// libc entry points that current headers no longer declare (fortify helpers,
// the pre-2.33 stat ABI used by old binaries, the getc/getc_unlocked slow path).
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);
int __xstat(int ver, const char *path, struct stat *st);
int __xstat64(int ver, const char *path, struct stat64 *st);
int __lxstat(int ver, const char *path, struct stat *st);
int __lxstat64(int ver, const char *path, struct stat64 *st);
int __fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags);
int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *st, int flags);
int _IO_getc(FILE *stream);
int __uflow(FILE *stream);

// ---------------------------------------------------------------------------
// The real functions. REAL(name) is the next definition of `name` (libc's),
// looked up on first use; the constructor looks all of them up at once so
// that a vfork child never has to run dlsym.

#define WRAPPED(X)                                                             \
    X(open) X(open64) X(openat) X(openat64) X(__open_2) X(__open64_2)          \
    X(__openat_2) X(__openat64_2) X(creat) X(creat64)                          \
    X(fopen) X(fopen64) X(freopen) X(freopen64) X(opendir)                     \
    X(stat) X(stat64) X(lstat) X(lstat64) X(fstatat) X(fstatat64) X(statx)     \
    X(access) X(faccessat) X(euidaccess) X(eaccess) X(__xstat) X(__xstat64) X(__lxstat) X(__lxstat64)   \
    X(__fxstatat) X(__fxstatat64)                                              \
    X(execve) X(execv) X(execvp) X(execvpe) X(posix_spawn) X(posix_spawnp)     \
    X(system) X(popen)                                                         \
    X(rename) X(renameat) X(renameat2) X(link) X(linkat) X(unlink)             \
    X(unlinkat) X(remove) X(rmdir) X(mkdir) X(mkdirat) X(symlink)              \
    X(symlinkat) X(truncate) X(truncate64) X(chmod) X(fchmodat)                \
    X(read) X(fread) X(fread_unlocked) X(fgets) X(fgets_unlocked) X(getline)   \
    X(getdelim) X(__getdelim) X(fgetc) X(fgetc_unlocked) X(getc)               \
    X(getc_unlocked) X(_IO_getc) X(__uflow) X(getchar) X(getchar_unlocked)    \
    X(mkstemp) X(mkstemp64) X(mkostemp) X(mkostemp64) X(mkstemps)              \
    X(mkstemps64) X(mkostemps) X(mkostemps64) X(mkdtemp)                       \
    X(fdopendir) X(scandir) X(scandir64) X(scandirat) X(scandirat64)           \
    X(fts_read) X(fts64_read) X(nftw) X(nftw64) X(ftw) X(ftw64)               \
    X(glob) X(glob64)                                                          \
    X(fork) X(wait) X(waitpid) X(wait3) X(wait4) X(waitid)                    \
    X(uname) X(gethostname) X(connect) X(sendto) X(sendmsg)

#define DECLARE_REAL(fn)                                                       \
    static __typeof__(&fn) real_##fn;                                          \
    static inline __typeof__(&fn) next_##fn(void)                              \
    {                                                                          \
        if (!real_##fn) real_##fn = (__typeof__(&fn))dlsym(RTLD_NEXT, #fn);    \
        return real_##fn;                                                      \
    }
WRAPPED(DECLARE_REAL)
#define REAL(fn) (next_##fn())

// ---------------------------------------------------------------------------
// The log: opened once by the constructor and kept at a high descriptor.

// libc declares most path arguments nonnull, so after inlining gcc would drop
// our NULL checks; a buggy program's NULL must still get EFAULT, not a crash.
#define FORGET_NONNULL(p) __asm__("" : "+r"(p))

#define LOG_FD_MIN 800
#define LINE_CAP (PATH_MAX + 64)
#define LOG_FLAGS (O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC)

static int log_fd = -1;             // -1: not tracing, every wrapper forwards
// Make mode (KBX_MAKE_LOG, PROTOCOL.md section 3, "Make log"): this process is
// make itself, not a recipe line; only the files it reads (r), opens that fail
// (a) and its $(wildcard) patterns (g) are logged, and children are left alone.
static int make_only;
static char log_path[PATH_MAX];

// Standard input of the first traced process, "<dev>:<ino>", inherited by
// the others through KBX_TRACE_STDIN: reading that is reading from outside
// the line (event `i`); reading a pipe the line made itself is not.
static dev_t outer_stdin_dev;
static ino_t outer_stdin_ino;
static int outer_stdin_known;
static dev_t last_stdin_dev;        // what fd 0 was at the last reported read
static ino_t last_stdin_ino;
static int stdin_reported;

static void write_line(const char *buf, size_t len)
{
    ssize_t n;
    while ((n = write(log_fd, buf, len)) < 0 && errno == EINTR) {}
    if (n >= 0 || errno != EBADF) return;
    // The program closed our descriptor: reopen the log under the same number,
    // so that log_fd (shared with a vfork parent) stays right.
    int fd = REAL(open)(log_path, LOG_FLAGS, 0666);
    if (fd < 0) return;
    if (fd != log_fd) {
        dup3(fd, log_fd, O_CLOEXEC);
        close(fd);
    }
    while (write(log_fd, buf, len) < 0 && errno == EINTR) {}
}

// ---------------------------------------------------------------------------
// Building one event line: "<op> [<ino> <size> <mtime_ns> ]<absolute path>\n".

// Appends the absolute form of `path` (relative to `dirfd`) at buf[*n]; returns
// NULL or why it could not.
static const char *append_path(char *buf, size_t *n, size_t cap, int dirfd, const char *path)
{
    size_t start = *n;
    if (path[0] != '/') {
        if (dirfd == AT_FDCWD) {
            if (!getcwd(buf + *n, cap - *n)) return "working directory unknown";
            *n += strlen(buf + *n);
        } else {
            char link[40];
            snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
            ssize_t k = readlink(link, buf + *n, cap - *n);
            if (k <= 0 || (size_t)k >= cap - *n) return "directory of dirfd unknown";
            *n += (size_t)k;
        }
        if (buf[*n - 1] != '/') buf[(*n)++] = '/';
    }
    size_t len = strlen(path);
    if (len >= cap - *n) return "path too long";
    memcpy(buf + *n, path, len);
    *n += len;
    if (memchr(buf + start, '\n', *n - start)) return "path contains a newline";
    return NULL;
}

// The events that change a path carry its stat from before the change, so that
// the daemon knows which version of the file the line started from.
static int has_stat(char op)
{
    return op == 'm' || op == 'n' || op == 'N' || op == 'w' || op == 'd';
}

// Ops that change the tree: also logged under the path they really changed.
static int is_change(char op)
{
    return op == 'w' || op == 'm' || op == 'n' || op == 'N' || op == 'd' || op == 'k' || op == 'l';
}

// How the path a change really named is found (log_real_path): through the
// descriptor the call returned (a value >= 0), through the path's parent
// directory (the call acted on the last component itself), or by following
// the whole path. REAL_NONE: the event is no change, or nothing to find.
#define REAL_NONE (-1)
#define REAL_PARENT (-2)
#define REAL_FOLLOW (-3)

static void log_real_path(char op, const struct stat *st, int dirfd, const char *path,
                          char *abs, size_t len, int real);
static void save_for_children(const char *self, const void *base);

// Logs one event for a path; `st` is used by has_stat ops only (NULL: the
// path did not exist, logged as "0 0 0"). For a change, `real` says how to
// find the path with symlinks resolved, logged too when it differs.
// Perl opens /dev/urandom as it starts, before anything else is traced: for
// its hash seed (unless PERL_HASH_SEED is set) and for the seed of rand().
// Hash order is random in every plain run too, and one run's rand() is one a
// plain build could make; those reads alone would make every perl line
// uncacheable. Only they are skipped: any other event first closes the
// window, so a script that reads /dev/urandom itself is still seen.
static int perl_seed_reads;

static void log_event_real(char op, const struct stat *st, int dirfd, const char *path, int real)
{
    FORGET_NONNULL(path);
    if (log_fd < 0 || !path || !path[0]) return;    // "" is AT_EMPTY_PATH: an fd
    // make's stats of prerequisites are no parse input; an absent file make
    // tried to read is (log_outcome), an absent program or rename is not.
    if (make_only && op != 'r' && op != 'a') return;
    if (perl_seed_reads) {
        if (op == 'r' && strcmp(path, "/dev/urandom") == 0) { perl_seed_reads--; return; }
        perl_seed_reads = 0;
    }
    int saved = errno;
    char buf[LINE_CAP];
    size_t n = 0;
    buf[n++] = op;
    buf[n++] = ' ';
    if (has_stat(op)) {
        long long mtime = 0;
        if (st) mtime = (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
        n += (size_t)snprintf(buf + n, 80, "%llu %lld %lld ",
                              st ? (unsigned long long)st->st_ino : 0ULL,
                              st ? (long long)st->st_size : 0LL, mtime);
    }
    size_t start = n;
    const char *why = append_path(buf, &n, sizeof buf - 1, dirfd, path);
    if (why) n = (size_t)snprintf(buf, sizeof buf, "! %s (event %c)", why, op);
    buf[n++] = '\n';
    write_line(buf, n);
    if (!why && real != REAL_NONE) log_real_path(op, st, dirfd, path, buf + start, n - 1 - start, real);
    errno = saved;
}

static void log_event(char op, const struct stat *st, int dirfd, const char *path)
{
    log_event_real(op, st, dirfd, path, REAL_NONE);
}

// ---------------------------------------------------------------------------
// Where a change really lands. The daemon checks written paths against the
// build tree as they are spelt, so `ln -s /elsewhere d; echo > d/f` would pass
// as a write inside it: each change is logged a second time, same op and
// stat, under the path the kernel resolved, when that differs from the path
// as given (lexically normalised, so `./x` and `a/../x` add nothing).
// Syscalls and the stack only: these run in vfork children too.

// "/proc/self/fd/<fd>" into buf (at least 32 bytes).
static const char *fd_link(char *buf, int fd)
{
    char digits[16];
    int k = 0;
    unsigned v = (unsigned)fd;
    do digits[k++] = (char)('0' + v % 10); while ((v /= 10) && k < 16);
    memcpy(buf, "/proc/self/fd/", 14);
    size_t n = 14;
    while (k) buf[n++] = digits[--k];
    buf[n] = '\0';
    return buf;
}

// The path open as `fd`, or 0 if unknown; -1 if it is no file (a pipe, a socket).
static ssize_t fd_path(int fd, char *out, size_t cap)
{
    char link[32];
    ssize_t k = readlink(fd_link(link, fd), out, cap);
    if (k <= 0 || (size_t)k >= cap) return 0;
    return out[0] == '/' ? k : -1;
}

// Lexical normal form of the absolute path p[0..len): no empty or "."
// components, ".." removes the one before. Returns the new length.
static size_t normalise(char *p, size_t len)
{
    size_t out = 0, i = 0;
    while (i < len) {
        while (i < len && p[i] == '/') i++;
        size_t from = i;
        while (i < len && p[i] != '/') i++;
        size_t clen = i - from;
        if (clen == 0 || (clen == 1 && p[from] == '.')) continue;
        if (clen == 2 && p[from] == '.' && p[from + 1] == '.') {
            while (out > 0 && p[out - 1] != '/') out--;
            if (out > 0) out--;
            continue;
        }
        p[out++] = '/';
        memmove(p + out, p + from, clen);
        out += clen;
    }
    if (out == 0) p[out++] = '/';
    return out;
}

// The resolved path of `path` (see REAL_*) into out; its length, 0 if unknown,
// -1 if there is nothing to log (no file; or a last component in the working
// directory or dirfd, whose paths are physical already).
static ssize_t resolve_real(int dirfd, const char *path, int real, char *out, size_t cap)
{
    if (real >= 0) return fd_path(real, out, cap);
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    size_t slash = len;
    while (slash > 0 && path[slash - 1] != '/') slash--;
    if (real == REAL_PARENT && slash == 0) return -1;
    char dir[PATH_MAX];
    const char *name = "";
    size_t nlen = 0;
    if (real == REAL_PARENT) {
        name = path + slash;
        nlen = len - slash;
        size_t dlen = slash > 1 ? slash - 1 : 1;    // "/x": the parent is "/"
        if (dlen >= sizeof dir) return 0;
        memcpy(dir, path, dlen);
        dir[dlen] = '\0';
        path = dir;
    }
    int fd = REAL(openat)(dirfd, path, O_PATH | O_CLOEXEC | (real == REAL_PARENT ? O_DIRECTORY : 0));
    if (fd < 0) return 0;
    ssize_t k = fd_path(fd, out, cap);
    close(fd);
    if (k <= 0 || !nlen) return k;
    if (out[k - 1] != '/') out[k++] = '/';
    if ((size_t)k + nlen >= cap) return 0;
    memcpy(out + k, name, nlen);
    return k + (ssize_t)nlen;
}

static void log_real_path(char op, const struct stat *st, int dirfd, const char *path,
                          char *abs, size_t len, int real)
{
    // Devices and /proc (/dev/stdout, /dev/fd/N) stay as they are spelt: what
    // they lead to was opened by a traced process already, or is no file.
    if (!strncmp(abs, "/dev/", 5) || !strncmp(abs, "/proc/", 6)) return;
    char out[PATH_MAX];
    ssize_t k = resolve_real(dirfd, path, real, out, sizeof out);
    if (k < 0) return;
    if (k == 0) {
        char why[] = "! real path unknown (event ?)\n";
        why[sizeof why - 4] = op;
        write_line(why, sizeof why - 1);
        return;
    }
    len = normalise(abs, len);
    if ((size_t)k == len && !memcmp(out, abs, len)) return;
    out[k] = '\0';
    log_event(op, st, AT_FDCWD, out);
}

// ---------------------------------------------------------------------------
// Event helpers shared by the wrappers.

static int absent(int err) { return err == ENOENT || err == ENOTDIR; }

// The state of a path before a call that changes it (the has_stat events).
struct before { int exists; struct stat st; };

// Stats `path` for event `op` before the real call runs. Opens (m, w) follow a
// final symlink as the open will; renames, links and removals (n, N, d) act on
// the link itself. Other ops take nothing. errno is left as it was.
static void take_before(struct before *b, char op, int dirfd, const char *path)
{
    b->exists = 0;
    FORGET_NONNULL(path);
    if (log_fd < 0 || !path || !path[0] || !has_stat(op)) return;
    int saved = errno;
    int flags = op == 'm' || op == 'w' ? 0 : AT_SYMLINK_NOFOLLOW;
    b->exists = REAL(fstatat)(dirfd, path, &b->st, flags) == 0;
    errno = saved;
}

static const struct stat *before_stat(const struct before *b)
{
    return b->exists ? &b->st : NULL;
}

// After a call on a path: `op` if it succeeded (0: log nothing), `a` if it failed
// because the path (or a directory on it) is absent, `s` if it failed because
// the path exists (O_EXCL, mkdir, link, symlink), nothing for other failures.
// `real` as for log_event_real.
static void log_failure(const char *fmt, int a, const char *path);

static void log_outcome(char op, const struct before *b, int dirfd, const char *path, int ok, int real)
{
    if (log_fd < 0) return;
    int err = errno;
    if (ok && op) log_event_real(op, b ? before_stat(b) : NULL, dirfd, path, real);
    else if (!ok && absent(err) && (!make_only || op == 'r')) log_event('a', NULL, dirfd, path);
    else if (!ok && err == EEXIST) log_event('s', NULL, dirfd, path);
    else if (!ok) log_failure("errno %d", err, path);
    errno = err;
}

// Runs `call` between take_before and log_outcome and returns its result;
// `failed` is the value it returns on failure. `real`: see REAL_*.
#define TRACE_REAL(type, failed, op, real, dirfd, path, call)                  \
    do {                                                                       \
        char op_ = (op);                                                       \
        struct before b_;                                                      \
        take_before(&b_, op_, (dirfd), (path));                                \
        type r_ = (call);                                                      \
        log_outcome(op_, &b_, (dirfd), (path), r_ != (failed), (real));        \
        return r_;                                                             \
    } while (0)
#define TRACE_AS(type, failed, op, dirfd, path, call)                          \
    TRACE_REAL(type, failed, op, REAL_NONE, dirfd, path, call)
#define TRACE(op, dirfd, path, call) TRACE_AS(int, -1, op, dirfd, path, call)
// A change to the path itself (rmdir, mkdir, symlink, ...) or what it leads to.
#define TRACE_CHANGE(op, dirfd, path, call) TRACE_REAL(int, -1, op, REAL_PARENT, dirfd, path, call)
#define TRACE_CHANGE_FOLLOW(op, dirfd, path, call) TRACE_REAL(int, -1, op, REAL_FOLLOW, dirfd, path, call)

// What an open with these flags does to its path. A directory opened without
// O_DIRECTORY is logged `s` too, by TRACE_OPEN: a listing is read only through
// opendir, fdopendir and the walkers below, which log their own `r`.
static char open_op(int flags)
{
    if (flags & O_PATH) return 's';                 // no data read: a probe
    if ((flags & O_TMPFILE) == O_TMPFILE) return 0;  // an unnamed file in a dir
    int acc = flags & O_ACCMODE;
    if (acc == O_RDONLY && !(flags & (O_CREAT | O_TRUNC)))
        return flags & O_DIRECTORY ? 's' : 'r';     // a dirfd or a saved cwd: s
    if ((flags & O_TRUNC) || (flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) return 'w';
    return 'm';
}

// fopen's mode string as open flags ("r" r, "w"/"w+"/"wx" w, "a"/"a+"/"r+" m).
static int fopen_flags(const char *mode)
{
    int plus = 0, excl = 0;
    for (const char *c = mode + 1; *c && *c != ','; c++) {
        if (*c == '+') plus = 1;
        if (*c == 'x') excl = O_EXCL;
    }
    int acc = plus ? O_RDWR : O_WRONLY;
    switch (mode[0]) {
    case 'w': return acc | O_CREAT | O_TRUNC | excl;
    case 'a': return acc | O_CREAT | O_APPEND | excl;
    default: return plus ? O_RDWR : O_RDONLY;       // 'r' (others fail EINVAL)
    }
}

// execvp/posix_spawnp: logs what glibc's PATH search for `file` will try: `a`
// for each absent candidate, `X` for one that exists but cannot be run, and
// `e` for the one that will be executed, which is copied to `found` (PATH_MAX
// bytes; "" if none).
static void log_path_search(const char *file, char *found)
{
    found[0] = '\0';
    if (log_fd < 0 || !file || !file[0]) return;
    if (strchr(file, '/')) {
        if (strlen(file) < PATH_MAX) strcpy(found, file);
        log_event('e', NULL, AT_FDCWD, file);
        return;
    }
    int saved = errno;
    const char *dirs = getenv("PATH");
    if (!dirs) dirs = "/bin:/usr/bin";
    size_t flen = strlen(file);
    for (const char *p = dirs;; p++) {
        const char *end = strchrnul(p, ':');
        size_t dlen = (size_t)(end - p);
        char cand[PATH_MAX];
        if (dlen + flen + 2 <= sizeof cand) {
            memcpy(cand, p, dlen);                  // "" means the working directory
            size_t n = dlen;
            if (n) cand[n++] = '/';
            memcpy(cand + n, file, flen + 1);
            struct stat st;
            if (REAL(stat)(cand, &st) == 0) {
                if (S_ISREG(st.st_mode) && REAL(faccessat)(AT_FDCWD, cand, X_OK, AT_EACCESS) == 0) {
                    strcpy(found, cand);
                    log_event('e', NULL, AT_FDCWD, cand);
                    break;
                }
                log_event('X', NULL, AT_FDCWD, cand);  // a chmod +x would run it
            } else if (absent(errno)) {
                if (!make_only) log_event('a', NULL, AT_FDCWD, cand);
            }
        }
        if (!*end) break;
        p = end;
    }
    errno = saved;
}

// A read from fd 0 is about to happen. A regular file there is an ordinary
// input (`r` of its path), /dev/null is nothing, a pipe made inside the line is
// nothing; anything else is the outside world's standard input (`i`, once).
static void stdin_read(void)
{
    if (log_fd < 0) return;
    int saved = errno;
    struct stat st;
    if (fstat(0, &st) == 0 && (st.st_dev != last_stdin_dev || st.st_ino != last_stdin_ino)) {
        last_stdin_dev = st.st_dev;
        last_stdin_ino = st.st_ino;
        int outer = !outer_stdin_known ||
                    (st.st_dev == outer_stdin_dev && st.st_ino == outer_stdin_ino);
        if (S_ISREG(st.st_mode)) {
            char path[PATH_MAX];
            ssize_t k = readlink("/proc/self/fd/0", path, sizeof path - 1);
            if (k > 0 && path[0] == '/') {
                path[k] = '\0';
                log_event('r', NULL, AT_FDCWD, path);
            } else if (!stdin_reported) {
                stdin_reported = 1;
                write_line("i\n", 2);
            }
        } else if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3)) {
            // /dev/null: reads nothing, always
        } else if (outer && !stdin_reported) {
            stdin_reported = 1;
            write_line("i\n", 2);
        }
    }
    errno = saved;
}

static int is_stdin(FILE *stream)
{
    return log_fd >= 0 && stream && fileno_unlocked(stream) == 0;
}

// ---------------------------------------------------------------------------
// Constructor: open the log, record the program and its shared objects (`x`).

static int log_object(struct dl_phdr_info *info, size_t size, void *self)
{
    (void)size;
    const char *name = info->dlpi_name;
    // The main program has an empty name, the vdso a bare one; skip ourselves.
    if (name && name[0] == '/' && strcmp(name, (const char *)self) != 0)
        log_event('x', NULL, AT_FDCWD, name);
    return 0;
}

static void note_outer_stdin(void)
{
    const char *v = getenv("KBX_TRACE_STDIN");
    if (v) {                    // "none": the line started without a stdin
        unsigned long long dev, ino;
        if (sscanf(v, "%llu:%llu", &dev, &ino) == 2) {
            outer_stdin_dev = (dev_t)dev;
            outer_stdin_ino = (ino_t)ino;
        }
        outer_stdin_known = 1;
        return;
    }
    // First traced process: what it has as fd 0 is the line's standard input.
    struct stat st;
    char val[48] = "none";
    if (fstat(0, &st) == 0) {
        outer_stdin_dev = st.st_dev;
        outer_stdin_ino = st.st_ino;
        snprintf(val, sizeof val, "%llu:%llu",
                 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
    }
    outer_stdin_known = 1;
    setenv("KBX_TRACE_STDIN", val, 1);
}

static int make_preload(char *out, const char *old, int drop);
#define PRELOAD_MAX_ENV 8192

// Whether this process is make (its program's file name is KBX_MAKE, default
// "make") and kbx make asked for its reads (KBX_MAKE_LOG).
static int is_make_process(void)
{
    const char *want = getenv("KBX_MAKE");
    if (!getenv("KBX_MAKE_LOG")) return 0;
    if (!want || !want[0]) want = "make";
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0) return 0;
    exe[k] = '\0';
    const char *base = strrchr(exe, '/');
    return !strcmp(base ? base + 1 : exe, want);
}

// perl, perl5.36.0: Debian's interpreter under either of its names.
static int is_perl(const char *exe)
{
    const char *base = strrchr(exe, '/');
    base = base ? base + 1 : exe;
    if (strncmp(base, "perl", 4) != 0) return 0;
    return strspn(base + 4, "0123456789.") == strlen(base + 4);
}

__attribute__((constructor)) static void kbx_trace_init(void)
{
    int saved = errno;
#define RESOLVE(fn) (void)REAL(fn);
    WRAPPED(RESOLVE)
    const char *path = getenv("KBX_TRACE_LOG");
    if ((!path || !path[0]) && is_make_process()) {
        path = getenv("KBX_MAKE_LOG");
        make_only = 1;
    }
    if (!path || !path[0] || strlen(path) >= sizeof log_path) { make_only = 0; errno = saved; return; }
    strcpy(log_path, path);
    int fd = REAL(open)(log_path, LOG_FLAGS, 0666);
    if (fd < 0) { errno = saved; return; }
    int high = fcntl(fd, F_DUPFD_CLOEXEC, LOG_FD_MIN);
    if (high >= 0) {
        close(fd);
        fd = high;
    }
    log_fd = fd;
    if (make_only) {
        // make's children are recipe lines: they run without the tracer (the
        // shim puts it back for a line that runs make again).
        Dl_info me = {0};
        dladdr((void *)kbx_trace_init, &me);
        save_for_children(me.dli_fname, me.dli_fbase);
        const char *old = getenv("LD_PRELOAD");
        char pre[PRELOAD_MAX_ENV];
        if (old && strlen(old) + 12 < sizeof pre) {
            if (make_preload(pre, old, 1)) setenv("LD_PRELOAD", pre + 11, 1);
            else unsetenv("LD_PRELOAD");
        }
        errno = saved;
        return;
    }
    note_outer_stdin();

    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = '\0';
        log_event('x', NULL, AT_FDCWD, exe);
    }
    Dl_info self = {0};
    dladdr((void *)kbx_trace_init, &self);
    save_for_children(self.dli_fname, self.dli_fbase);
    dl_iterate_phdr(log_object, (void *)(self.dli_fname ? self.dli_fname : ""));
    if (k > 0 && is_perl(exe)) perl_seed_reads = getenv("PERL_HASH_SEED") ? 1 : 2;
    errno = saved;
}

// ---------------------------------------------------------------------------
// open and friends: r; w and m (with the stat before); s for O_PATH,
// O_DIRECTORY and any directory; a if absent.
// The mode argument exists only with O_CREAT or O_TMPFILE.

#define OPEN_MODE(flags, last)                                                 \
    mode_t mode = 0;                                                           \
    if (__OPEN_NEEDS_MODE(flags)) {                                            \
        va_list ap;                                                            \
        va_start(ap, last);                                                    \
        mode = (mode_t)va_arg(ap, int);                                        \
        va_end(ap);                                                            \
    }

static int is_dir_fd(int fd)
{
    struct stat st;
    int saved = errno;
    int dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
    errno = saved;
    return dir;
}

// A read-only open that turns out to be of a directory is an existence probe
// (`s`): find and mkdir -p open "." or a parent only to come back to it.
// A write is logged under the path it landed on too (log_real_path).
#define TRACE_OPEN(dirfd, path, flags, call)                                   \
    do {                                                                       \
        char op_ = open_op(flags);                                             \
        struct before b_;                                                      \
        take_before(&b_, op_, (dirfd), (path));                                \
        int fd_ = (call);                                                      \
        if (op_ == 'r' && fd_ >= 0 && log_fd >= 0 && is_dir_fd(fd_)) op_ = 's'; \
        log_outcome(op_, &b_, (dirfd), (path), fd_ >= 0, is_change(op_) ? fd_ : REAL_NONE); \
        return fd_;                                                            \
    } while (0)

int open(const char *path, int flags, ...)
{ OPEN_MODE(flags, flags); TRACE_OPEN(AT_FDCWD, path, flags, REAL(open)(path, flags, mode)); }
int open64(const char *path, int flags, ...)
{ OPEN_MODE(flags, flags); TRACE_OPEN(AT_FDCWD, path, flags, REAL(open64)(path, flags, mode)); }
int openat(int dirfd, const char *path, int flags, ...)
{ OPEN_MODE(flags, flags); TRACE_OPEN(dirfd, path, flags, REAL(openat)(dirfd, path, flags, mode)); }
int openat64(int dirfd, const char *path, int flags, ...)
{ OPEN_MODE(flags, flags); TRACE_OPEN(dirfd, path, flags, REAL(openat64)(dirfd, path, flags, mode)); }
int __open_2(const char *path, int flags)
{ TRACE_OPEN(AT_FDCWD, path, flags, REAL(__open_2)(path, flags)); }
int __open64_2(const char *path, int flags)
{ TRACE_OPEN(AT_FDCWD, path, flags, REAL(__open64_2)(path, flags)); }
int __openat_2(int dirfd, const char *path, int flags)
{ TRACE_OPEN(dirfd, path, flags, REAL(__openat_2)(dirfd, path, flags)); }
int __openat64_2(int dirfd, const char *path, int flags)
{ TRACE_OPEN(dirfd, path, flags, REAL(__openat64_2)(dirfd, path, flags)); }
int creat(const char *path, mode_t mode)
{ TRACE_OPEN(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, REAL(creat)(path, mode)); }
int creat64(const char *path, mode_t mode)
{ TRACE_OPEN(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, REAL(creat64)(path, mode)); }

// ---------------------------------------------------------------------------
// stdio opens and opendir: classified like open.

static char fopen_op(const char *path, const char *mode)
{
    return path && mode ? open_op(fopen_flags(mode)) : 0;  // freopen(NULL,...): same file
}

#define TRACE_FOPEN(path, mode, call)                                          \
    do {                                                                       \
        char op_ = fopen_op(path, mode);                                       \
        struct before b_;                                                      \
        take_before(&b_, op_, AT_FDCWD, (path));                               \
        FILE *f_ = (call);                                                     \
        log_outcome(op_, &b_, AT_FDCWD, (path), f_ != NULL,                    \
                    f_ && is_change(op_) ? fileno(f_) : REAL_NONE);            \
        return f_;                                                             \
    } while (0)

FILE *fopen(const char *path, const char *mode)
{ TRACE_FOPEN(path, mode, REAL(fopen)(path, mode)); }
FILE *fopen64(const char *path, const char *mode)
{ TRACE_FOPEN(path, mode, REAL(fopen64)(path, mode)); }
FILE *freopen(const char *path, const char *mode, FILE *f)
{ TRACE_FOPEN(path, mode, REAL(freopen)(path, mode, f)); }
FILE *freopen64(const char *path, const char *mode, FILE *f)
{ TRACE_FOPEN(path, mode, REAL(freopen64)(path, mode, f)); }
DIR *opendir(const char *path)
{
    if (make_only) return REAL(opendir)(path);   // make's directory cache: existence checks
    TRACE_AS(DIR *, NULL, 'r', AT_FDCWD, path, REAL(opendir)(path));
}

// ---------------------------------------------------------------------------
// Directory listings. A listing is an input (r of the directory) only when it
// is read: through opendir above, fdopendir, or libc's walkers (fts, nftw/ftw,
// scandir, glob), which list directories with libc's internal opendir and so
// are wrapped here one by one. Opening a directory otherwise is a probe (s).

// fdopendir: the directory open as `fd`. gnulib's fts (find, rm -r, chmod -R)
// opens each directory with O_DIRECTORY (an s) and reads it this way.
DIR *fdopendir(int fd)
{
    DIR *dir = REAL(fdopendir)(fd);
    if (dir && log_fd >= 0) {
        int saved = errno;
        char link[40], path[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t k = readlink(link, path, sizeof path - 1);
        if (k > 0 && path[0] == '/') {
            path[k] = '\0';
            log_event('r', NULL, AT_FDCWD, path);
        } else {
            static const char why[] = "! directory of fdopendir unknown (event r)\n";
            write_line(why, sizeof why - 1);
        }
        errno = saved;
    }
    return dir;
}

int scandir(const char *dir, struct dirent ***list, int (*sel)(const struct dirent *),
            int (*cmp)(const struct dirent **, const struct dirent **))
{ TRACE('r', AT_FDCWD, dir, REAL(scandir)(dir, list, sel, cmp)); }
int scandir64(const char *dir, struct dirent64 ***list, int (*sel)(const struct dirent64 *),
              int (*cmp)(const struct dirent64 **, const struct dirent64 **))
{ TRACE('r', AT_FDCWD, dir, REAL(scandir64)(dir, list, sel, cmp)); }
int scandirat(int dirfd, const char *dir, struct dirent ***list, int (*sel)(const struct dirent *),
              int (*cmp)(const struct dirent **, const struct dirent **))
{ TRACE('r', dirfd, dir, REAL(scandirat)(dirfd, dir, list, sel, cmp)); }
int scandirat64(int dirfd, const char *dir, struct dirent64 ***list, int (*sel)(const struct dirent64 *),
                int (*cmp)(const struct dirent64 **, const struct dirent64 **))
{ TRACE('r', dirfd, dir, REAL(scandirat64)(dirfd, dir, list, sel, cmp)); }

// fts_read: an entry returned as FTS_D is a directory whose listing fts reads
// next. (fts_children lists only such an entry, so it needs no wrapper.) Its
// fts_path is relative to the working directory fts_open saw: still the
// process's own with FTS_NOCHDIR, else the one fts keeps open as fts_rfd.
#define TRACE_FTS_READ(fts, call)                                              \
    do {                                                                       \
        __typeof__(call) ent_ = (call);                                        \
        if (ent_ && ent_->fts_info == FTS_D && log_fd >= 0)                    \
            log_event('r', NULL, (fts)->fts_options & FTS_NOCHDIR ? AT_FDCWD : (fts)->fts_rfd, \
                      ent_->fts_path);                                         \
        return ent_;                                                           \
    } while (0)

FTSENT *fts_read(FTS *fts) { TRACE_FTS_READ(fts, REAL(fts_read)(fts)); }
FTSENT64 *fts64_read(FTS64 *fts) { TRACE_FTS_READ(fts, REAL(fts64_read)(fts)); }

// nftw/ftw: the caller's callback is called through a trampoline that logs r
// for each directory reported (FTW_D, FTW_DP, FTW_DNR: an unreadable one's
// listing is keyed as unreadable). Its paths start with the caller's `dir`,
// relative to the working directory at the call (FTW_CHDIR moves it during the
// walk), noted first. The walk in progress is thread-local state, the one
// exception to "no state": a walk never runs in a vfork child.
struct walk {
    struct walk *outer;     // the walk whose callback started this one
    const char *cwd;        // NULL: unknown
    union { __ftw_func_t ftw; __ftw64_func_t ftw64; __nftw_func_t nftw; __nftw64_func_t nftw64; } fn;
};
static __thread struct walk *walk_now;

static void walk_entry(const char *path, int type)
{
    if (type != FTW_D && type != FTW_DP && type != FTW_DNR) return;
    char full[PATH_MAX];
    if (path[0] != '/') {
        const char *cwd = walk_now->cwd;
        int n = cwd ? snprintf(full, sizeof full, "%s/%s", cwd, path) : -1;
        if (n < 0 || (size_t)n >= sizeof full) {
            static const char why[] = "! directory of a walk unknown (event r)\n";
            write_line(why, sizeof why - 1);
            return;
        }
        path = full;
    }
    log_event('r', NULL, AT_FDCWD, path);
}

static int ftw_hop(const char *path, const struct stat *st, int type)
{ walk_entry(path, type); return walk_now->fn.ftw(path, st, type); }
static int ftw64_hop(const char *path, const struct stat64 *st, int type)
{ walk_entry(path, type); return walk_now->fn.ftw64(path, st, type); }
static int nftw_hop(const char *path, const struct stat *st, int type, struct FTW *ftw)
{ walk_entry(path, type); return walk_now->fn.nftw(path, st, type, ftw); }
static int nftw64_hop(const char *path, const struct stat64 *st, int type, struct FTW *ftw)
{ walk_entry(path, type); return walk_now->fn.nftw64(path, st, type, ftw); }

#define TRACE_WALK(kind, dir, fn, ...)                                         \
    do {                                                                       \
        FORGET_NONNULL(fn);                                                    \
        if (log_fd < 0 || !fn) return REAL(kind)(dir, fn, __VA_ARGS__);       \
        int saved_ = errno;                                                    \
        char cwd_[PATH_MAX];                                                   \
        struct walk w_ = {walk_now, getcwd(cwd_, sizeof cwd_), {.kind = fn}};  \
        errno = saved_;                                                        \
        walk_now = &w_;                                                        \
        int r_ = REAL(kind)(dir, kind##_hop, __VA_ARGS__);                     \
        walk_now = w_.outer;                                                   \
        log_outcome(0, NULL, AT_FDCWD, dir, r_ != -1, REAL_NONE);   /* a: no such dir */  \
        return r_;                                                             \
    } while (0)

int ftw(const char *dir, __ftw_func_t fn, int fds)
{ TRACE_WALK(ftw, dir, fn, fds); }
int ftw64(const char *dir, __ftw64_func_t fn, int fds)
{ TRACE_WALK(ftw64, dir, fn, fds); }
int nftw(const char *dir, __nftw_func_t fn, int fds, int flags)
{ TRACE_WALK(nftw, dir, fn, fds, flags); }
int nftw64(const char *dir, __nftw64_func_t fn, int fds, int flags)
{ TRACE_WALK(nftw64, dir, fn, fds, flags); }

// glob: glibc lists directories with its internal opendir unless the caller
// passes GLOB_ALTDIRFUNC, so the wrapper passes it with libc's own functions,
// opendir (the wrapper above, logging r) and stat/lstat (the wrappers: glob's
// existence checks become s and a). A caller's own GLOB_ALTDIRFUNC functions
// are left alone: they reach libc through the public, wrapped, calls.
static void *glob_opendir(const char *dir) { return opendir(dir); }
static void glob_closedir(void *dir) { closedir(dir); }
static struct dirent *glob_readdir(void *dir) { return readdir(dir); }
static struct dirent64 *glob_readdir64(void *dir) { return readdir64(dir); }
static int glob_stat(const char *path, struct stat *st) { return stat(path, st); }
static int glob_lstat(const char *path, struct stat *st) { return lstat(path, st); }
static int glob_stat64(const char *path, struct stat64 *st) { return stat64(path, st); }
static int glob_lstat64(const char *path, struct stat64 *st) { return lstat64(path, st); }

// make's $(wildcard) and include patterns: `g <matches> <pattern>`.
static void log_glob(const char *pattern, int ret, size_t matches)
{
    char count[32];
    snprintf(count, sizeof count, "%zu", ret == 0 ? matches : (size_t)0);
    char buf[LINE_CAP];
    size_t n = (size_t)snprintf(buf, sizeof buf, "g %s ", count);
    const char *why = append_path(buf, &n, sizeof buf - 1, AT_FDCWD, pattern);
    if (why) n = (size_t)snprintf(buf, sizeof buf, "! %s (event g)", why);
    buf[n++] = '\n';
    write_line(buf, n);
}

#define TRACE_GLOB(kind, sfx, pattern, flags, errfn, g)                        \
    do {                                                                       \
        if (make_only && log_fd >= 0 && (g) && pattern) {                     \
            int r_ = REAL(kind)(pattern, flags, errfn, g);                     \
            int saved_ = errno;                                                \
            log_glob(pattern, r_, (g)->gl_pathc);                              \
            errno = saved_;                                                    \
            return r_;                                                         \
        }                                                                      \
        if (log_fd < 0 || !(g) || ((flags) & GLOB_ALTDIRFUNC))                 \
            return REAL(kind)(pattern, flags, errfn, g);                       \
        (g)->gl_opendir = glob_opendir;                                        \
        (g)->gl_closedir = glob_closedir;                                      \
        (g)->gl_readdir = glob_readdir##sfx;                                   \
        (g)->gl_stat = glob_stat##sfx;                                         \
        (g)->gl_lstat = glob_lstat##sfx;                                       \
        int r_ = REAL(kind)(pattern, (flags) | GLOB_ALTDIRFUNC, errfn, g);     \
        (g)->gl_flags &= ~GLOB_ALTDIRFUNC;                                     \
        return r_;                                                             \
    } while (0)

int glob(const char *pattern, int flags, int (*errfn)(const char *, int), glob_t *g)
{ TRACE_GLOB(glob, , pattern, flags, errfn, g); }
int glob64(const char *pattern, int flags, int (*errfn)(const char *, int), glob64_t *g)
{ TRACE_GLOB(glob64, 64, pattern, flags, errfn, g); }

// ---------------------------------------------------------------------------
// Existence probes: s if the call succeeded, a if the path is absent.

int stat(const char *path, struct stat *st)
{ TRACE('s', AT_FDCWD, path, REAL(stat)(path, st)); }
int stat64(const char *path, struct stat64 *st)
{ TRACE('s', AT_FDCWD, path, REAL(stat64)(path, st)); }
int lstat(const char *path, struct stat *st)
{ TRACE('s', AT_FDCWD, path, REAL(lstat)(path, st)); }
int lstat64(const char *path, struct stat64 *st)
{ TRACE('s', AT_FDCWD, path, REAL(lstat64)(path, st)); }
int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{ TRACE('s', dirfd, path, REAL(fstatat)(dirfd, path, st, flags)); }
int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags)
{ TRACE('s', dirfd, path, REAL(fstatat64)(dirfd, path, st, flags)); }
int statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *st)
{ TRACE('s', dirfd, path, REAL(statx)(dirfd, path, flags, mask, st)); }
// The access family: a probe. One asking for X_OK learns the execute
// permission (`X`, keyed with the execute bits: `[ -x gen.sh ]`); any other
// is existence. EACCES means the path is there without that permission: still
// a probe of it (`[ -x ]` of a 0644 file must key that file).
static int traced_access(char op_if_x, int dirfd, const char *path, int how, int r)
{
    int err = errno;
    char op = (how & X_OK) ? op_if_x : 's';
    if (r == 0 || err == EACCES) log_event(op, NULL, dirfd, path);
    else if (absent(err) && !make_only) log_event('a', NULL, dirfd, path);
    else if (r != 0) log_failure("errno %d", err, path);
    errno = err;
    return r;
}
int access(const char *path, int how)
{ return traced_access('X', AT_FDCWD, path, how, REAL(access)(path, how)); }
int faccessat(int dirfd, const char *path, int how, int flags)
{ return traced_access('X', dirfd, path, how, REAL(faccessat)(dirfd, path, how, flags)); }
int euidaccess(const char *path, int how)
{ return traced_access('X', AT_FDCWD, path, how, REAL(euidaccess)(path, how)); }
int eaccess(const char *path, int how)
{ return traced_access('X', AT_FDCWD, path, how, REAL(eaccess)(path, how)); }
int __xstat(int ver, const char *path, struct stat *st)
{ TRACE('s', AT_FDCWD, path, REAL(__xstat)(ver, path, st)); }
int __xstat64(int ver, const char *path, struct stat64 *st)
{ TRACE('s', AT_FDCWD, path, REAL(__xstat64)(ver, path, st)); }
int __lxstat(int ver, const char *path, struct stat *st)
{ TRACE('s', AT_FDCWD, path, REAL(__lxstat)(ver, path, st)); }
int __lxstat64(int ver, const char *path, struct stat64 *st)
{ TRACE('s', AT_FDCWD, path, REAL(__lxstat64)(ver, path, st)); }
int __fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags)
{ TRACE('s', dirfd, path, REAL(__fxstatat)(ver, dirfd, path, st, flags)); }
int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *st, int flags)
{ TRACE('s', dirfd, path, REAL(__fxstatat64)(ver, dirfd, path, st, flags)); }

// ---------------------------------------------------------------------------
// Children keep the tracer. A program may give its child an environment
// without LD_PRELOAD or KBX_TRACE_LOG (`env -i`, execve with a fresh envp,
// clearenv): that child would run unseen and the line be stored without what
// it wrote. So every exec*/posix_spawn* passes a copy of the environment with
// what the constructor saved put back. A program that cannot load the tracer
// (untraceable_program) gets a copy without it instead, so that ld.so does not
// complain into the line's stderr, and is logged `!`: the line is not stored.
// The copy lives on the caller's stack: these run in vfork children too.

static char self_lib[PATH_MAX];         // the tracer, as LD_PRELOAD names it
static char log_var[PATH_MAX + 16];     // "KBX_TRACE_LOG=<path>"
static char stdin_var[80];              // "KBX_TRACE_STDIN=<dev>:<ino>" or "=none"
static char shim_path[PATH_MAX];        // KBX_SHIM: kbx's shim, run as $(SHELL) inside a line
static unsigned char self_ident[EI_NIDENT];   // the tracer's ELF class and data
static unsigned self_machine;

// Bounds of a stack copy; an environment beyond them is logged `!`.
#define ENV_MAX_ENTRIES 8192
#define PRELOAD_MAX 8192

static void save_for_children(const char *self, const void *base)
{
    if (self && strlen(self) < sizeof self_lib) strcpy(self_lib, self);
    snprintf(log_var, sizeof log_var, "KBX_TRACE_LOG=%s", log_path);
    const char *v = getenv("KBX_TRACE_STDIN");
    if (v && strlen(v) < sizeof stdin_var - 17) snprintf(stdin_var, sizeof stdin_var, "KBX_TRACE_STDIN=%s", v);
    const char *shim = getenv("KBX_SHIM");
    if (shim && strlen(shim) < sizeof shim_path) strcpy(shim_path, shim);
    const ElfW(Ehdr) *eh = base;
    if (eh && !memcmp(eh->e_ident, ELFMAG, SELFMAG)) {
        memcpy(self_ident, eh->e_ident, EI_NIDENT);
        self_machine = eh->e_machine;
    }
}

// Calls `fn` for each entry of an LD_PRELOAD value (separated by spaces or
// colons, as ld.so reads them) until it returns nonzero.
#define FOR_EACH_PRELOAD(v, p, len, body)                                      \
    for (const char *p = (v), *e_; *p; p = e_) {                               \
        while (*p == ' ' || *p == ':') p++;                                    \
        for (e_ = p; *e_ && *e_ != ' ' && *e_ != ':'; e_++) {}                 \
        size_t len = (size_t)(e_ - p);                                         \
        if (len) body                                                          \
    }

static int names_self(const char *v)
{
    size_t self_len = strlen(self_lib);
    FOR_EACH_PRELOAD(v, p, len, { if (len == self_len && !memcmp(p, self_lib, len)) return 1; })
    return 0;
}

// "LD_PRELOAD=" and the tracer before `old`'s entries (add), or `old`'s entries
// without the tracer (drop) into out; returns 0 if no entry is left.
static int make_preload(char *out, const char *old, int drop)
{
    size_t n = 11, self_len = strlen(self_lib);
    memcpy(out, "LD_PRELOAD=", 11);
    if (!drop) {
        memcpy(out + n, self_lib, self_len);
        n += self_len;
    }
    if (old) FOR_EACH_PRELOAD(old, p, len, {
        if (!drop || len != self_len || memcmp(p, self_lib, len)) {
            if (n > 11) out[n++] = ' ';
            memcpy(out + n, p, len);
            n += len;
        }
    })
    out[n] = '\0';
    return n > 11;
}

struct env_plan {
    size_t count;           // entries in envp
    char *const *preload;   // its (first) LD_PRELOAD entry, or NULL
    int drop;               // the child cannot load the tracer: take it out
    int new_preload, add_log, add_stdin;
    size_t cap;             // bytes for the new LD_PRELOAD entry
};

// What `envp` needs for a child: 1 a changed copy, 0 nothing, -1 a copy that
// cannot be made (logged `!`, the child goes with envp as it is).
static int plan_env(char *const *envp, int drop, struct env_plan *p)
{
    memset(p, 0, sizeof *p);
    if (log_fd < 0 || make_only) return 0;
    p->drop = drop;
    int preloads = 0, has_self = 0, has_log = 0, has_stdin = 0;
    for (char *const *e = envp; e && *e; e++, p->count++) {
        if (!strncmp(*e, "LD_PRELOAD=", 11)) {
            if (!preloads++) p->preload = e;
            has_self |= names_self(*e + 11);
        } else if (!strncmp(*e, "KBX_TRACE_LOG=", 14)) {
            has_log = 1;
        } else if (!strncmp(*e, "KBX_TRACE_STDIN=", 16)) {
            has_stdin = 1;
        }
    }
    if (drop) {
        if (!has_self) return 0;
        p->new_preload = 1;
    } else {
        p->new_preload = !has_self || preloads > 1;
        p->add_log = !has_log;
        p->add_stdin = !has_stdin && stdin_var[0];
        if (!p->new_preload && !p->add_log && !p->add_stdin) return 0;
    }
    p->cap = 12 + strlen(self_lib) + (p->preload ? strlen(*p->preload) : 0);
    const char *why = NULL;
    if (!self_lib[0]) why = "! tracer library name unknown: a child would lose it\n";
    else if (p->count > ENV_MAX_ENTRIES || p->cap > PRELOAD_MAX) why = "! environment too large to pass the tracer on\n";
    if (why) {
        write_line(why, strlen(why));
        return -1;
    }
    return 1;
}

static char *const *build_env(char *const *envp, const struct env_plan *p, char **vec, char *pre)
{
    size_t n = 0;
    int keep = p->new_preload ? make_preload(pre, p->preload ? *p->preload + 11 : NULL, p->drop) : 0;
    for (char *const *e = envp; e && *e; e++) {
        if (p->new_preload && !strncmp(*e, "LD_PRELOAD=", 11)) continue;
        vec[n++] = *e;
    }
    if (keep) vec[n++] = pre;
    if (p->add_log) vec[n++] = log_var;
    if (p->add_stdin) vec[n++] = stdin_var;
    vec[n] = NULL;
    return vec;
}

// Declares `out`: `envp`, or a copy on this stack frame that carries the
// tracer (or, with `drop`, leaves it out).
#define CHILD_ENV(out, envp, drop)                                             \
    struct env_plan plan_;                                                     \
    int copy_ = plan_env((envp), (drop), &plan_);                              \
    char *vec_[copy_ > 0 ? plan_.count + 4 : 1];                               \
    char pre_[copy_ > 0 ? plan_.cap : 1];                                      \
    char *const *out = copy_ > 0 ? build_env((envp), &plan_, vec_, pre_) : (envp)

// Why an ELF file (open as fd, its first n bytes in head) cannot load the
// tracer: another class, byte order or machine than ours, or no program
// interpreter (static; ld.so itself). NULL if it can, or is no ELF at all.
static const char *elf_untraceable(int fd, const unsigned char *head, ssize_t n)
{
    if (n < (ssize_t)sizeof(ElfW(Ehdr)) || memcmp(head, ELFMAG, SELFMAG)) {
        if (n >= 20 && !memcmp(head, ELFMAG, SELFMAG) && head[EI_CLASS] != self_ident[EI_CLASS])
            return "ELF of another class";      // a 64-bit header is longer than a 32-bit file's
        return NULL;
    }
    unsigned machine = head[EI_DATA] == ELFDATA2MSB ? (unsigned)head[18] << 8 | head[19]
                                                     : (unsigned)head[19] << 8 | head[18];
    if (self_ident[EI_CLASS] && head[EI_CLASS] != self_ident[EI_CLASS])
        return head[EI_CLASS] == ELFCLASS32 ? "32-bit program" : "ELF of another class";
    if (self_ident[EI_CLASS] && (head[EI_DATA] != self_ident[EI_DATA] || machine != self_machine))
        return "program for another machine";
    ElfW(Ehdr) eh;
    memcpy(&eh, head, sizeof eh);
    if (eh.e_phentsize != sizeof(ElfW(Phdr))) return NULL;   // the kernel refuses it
    ElfW(Phdr) ph[16];
    for (size_t i = 0; i < eh.e_phnum; i += 16) {
        size_t k = eh.e_phnum - i < 16 ? eh.e_phnum - i : 16;
        if (pread(fd, ph, k * sizeof *ph, (off_t)(eh.e_phoff + i * sizeof *ph)) != (ssize_t)(k * sizeof *ph))
            return NULL;
        for (size_t j = 0; j < k; j++)
            if (ph[j].p_type == PT_INTERP) return NULL;
    }
    return "static program";
}

// Why the program at `path` cannot carry the tracer, or NULL (it can; or it
// cannot be read, and the exec fails or ld.so loads the tracer as usual).
// Set-id programs and those with file capabilities run in secure mode, which
// ignores LD_PRELOAD. A script is judged by its interpreter (up to 4 `#!`
// levels, as the kernel).
static const char *untraceable_program(const char *path)
{
    char interp[256];
    for (int depth = 0; depth < 4; depth++) {
        // kbx's shim is static, but inside a traced line it only execs the
        // real shell, which loads the tracer (`$(SHELL) script.sh`).
        if (shim_path[0] && !strcmp(path, shim_path)) return NULL;
        struct stat st;
        if (REAL(fstatat)(AT_FDCWD, path, &st, 0) != 0 || !S_ISREG(st.st_mode)) return NULL;
        if ((st.st_mode & S_ISUID) || (st.st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
            return "set-id program";
        if (getxattr(path, "security.capability", NULL, 0) > 0) return "program with file capabilities";
        int fd = REAL(open)(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return NULL;
        unsigned char head[256];
        ssize_t n = pread(fd, head, sizeof head, 0);
        if (n < 2 || head[0] != '#' || head[1] != '!') {
            const char *why = elf_untraceable(fd, head, n);
            close(fd);
            return why;
        }
        close(fd);
        size_t i = 2, k = 0;
        while (i < (size_t)n && (head[i] == ' ' || head[i] == '\t')) i++;
        while (i < (size_t)n && k < sizeof interp - 1 && !strchr(" \t\n", head[i]) && head[i]) interp[k++] = (char)head[i++];
        interp[k] = '\0';
        if (!k) return NULL;
        path = interp;
    }
    return NULL;
}

// Before `path` runs: 1 if it cannot carry the tracer, logged as
// "! <why>: <path>".
static int cannot_trace(const char *path)
{
    FORGET_NONNULL(path);
    if (log_fd < 0 || !path || !path[0]) return 0;
    int saved = errno;
    const char *why = untraceable_program(path);
    if (why) {
        char buf[LINE_CAP];
        size_t n = (size_t)snprintf(buf, 64, "! %s: ", why);
        if (append_path(buf, &n, sizeof buf - 1, AT_FDCWD, path)) n = (size_t)snprintf(buf, 64, "! %s", why);
        buf[n++] = '\n';
        write_line(buf, n);
    }
    errno = saved;
    return why != NULL;
}

// ---------------------------------------------------------------------------
// Programs run: e before the call (exec does not return), a if absent after;
// the child's environment as CHILD_ENV makes it. The forms without an envp
// pass `environ` as it is now (the program may have cleared it).
// The l-forms build an argv on the stack and go through the v-forms.

int execve(const char *path, char *const argv[], char *const envp[])
{
    log_event('e', NULL, AT_FDCWD, path);
    CHILD_ENV(env, envp, cannot_trace(path));
    TRACE(0, AT_FDCWD, path, REAL(execve)(path, argv, env));
}
int execv(const char *path, char *const argv[])
{
    log_event('e', NULL, AT_FDCWD, path);
    CHILD_ENV(env, environ, cannot_trace(path));
    TRACE(0, AT_FDCWD, path, REAL(execve)(path, argv, env));
}
int execvp(const char *file, char *const argv[])
{
    char prog[PATH_MAX];
    log_path_search(file, prog);
    CHILD_ENV(env, environ, cannot_trace(prog));
    return REAL(execvpe)(file, argv, env);
}
int execvpe(const char *file, char *const argv[], char *const envp[])
{
    char prog[PATH_MAX];
    log_path_search(file, prog);
    CHILD_ENV(env, envp, cannot_trace(prog));
    return REAL(execvpe)(file, argv, env);
}

// Declares `argv` on the stack holding `arg` and the variadic arguments up to
// and including the NULL; leaves `ap` open just after the NULL (execle's envp).
#define COLLECT_ARGS(argv, arg, ap)                                            \
    size_t argc_ = 1;                                                          \
    va_start(ap, arg);                                                         \
    while (va_arg(ap, const char *)) argc_++;                                  \
    va_end(ap);                                                                \
    char *argv[argc_ + 1];                                                     \
    argv[0] = (char *)arg;                                                     \
    va_start(ap, arg);                                                         \
    for (size_t i_ = 1; i_ <= argc_; i_++) argv[i_] = va_arg(ap, char *);

int execl(const char *path, const char *arg, ...)
{ va_list ap; COLLECT_ARGS(argv, arg, ap); va_end(ap); return execv(path, argv); }
int execlp(const char *file, const char *arg, ...)
{ va_list ap; COLLECT_ARGS(argv, arg, ap); va_end(ap); return execvp(file, argv); }
int execle(const char *path, const char *arg, ...)
{
    va_list ap;
    COLLECT_ARGS(argv, arg, ap);
    char *const *envp = va_arg(ap, char *const *);
    va_end(ap);
    return execve(path, argv, envp);
}

int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *acts,
                const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    log_event('e', NULL, AT_FDCWD, path);
    CHILD_ENV(env, envp, cannot_trace(path));
    int err = REAL(posix_spawn)(pid, path, acts, attr, argv, env);
    if (log_fd >= 0 && !make_only && absent(err)) log_event('a', NULL, AT_FDCWD, path);
    return err;
}

int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *acts,
                 const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    char prog[PATH_MAX];
    log_path_search(file, prog);
    CHILD_ENV(env, envp, cannot_trace(prog));
    return REAL(posix_spawnp)(pid, file, acts, attr, argv, env);
}

// system and popen run /bin/sh with `environ` through libc's internal spawn,
// which no wrapper sees: if the program took the tracer out of environ, put
// it back first. (Never in a vfork child, so setenv may allocate.)
static void restore_environ(void)
{
    struct env_plan p;
    if (plan_env(environ, 0, &p) <= 0) return;
    char pre[p.cap];
    if (p.new_preload && make_preload(pre, getenv("LD_PRELOAD"), 0)) setenv("LD_PRELOAD", pre + 11, 1);
    if (p.add_log) setenv("KBX_TRACE_LOG", log_path, 1);
    if (p.add_stdin) setenv("KBX_TRACE_STDIN", stdin_var + 16, 1);
}

int system(const char *cmd)
{
    if (cmd) restore_environ();
    return REAL(system)(cmd);
}

FILE *popen(const char *cmd, const char *mode)
{
    restore_environ();
    return REAL(popen)(cmd, mode);
}

// ---------------------------------------------------------------------------
// Changes to the tree: n/N for renames, N for links (the source is read),
// d for removals, k for mkdir, l for symlinks, m for truncate and chmod. Each
// n, N, d and m carries the stat its path had before the call.

static int traced_rename(int olddir, const char *old, int newdir, const char *new,
                         unsigned flags, int ret_of_call, const struct before *bo,
                         const struct before *bn)
{
    if (log_fd < 0) return ret_of_call;
    int err = errno;
    if (ret_of_call == 0) {
        log_event_real('n', before_stat(bo), olddir, old, REAL_PARENT);
        log_event_real('N', before_stat(bn), newdir, new, REAL_PARENT);  // what it replaced
        if (flags & RENAME_EXCHANGE) {
            log_event_real('n', before_stat(bn), newdir, new, REAL_PARENT);
            log_event_real('N', before_stat(bo), olddir, old, REAL_PARENT);
        }
    } else if (absent(err)) {
        // Either the source is missing or the destination's directory is.
        if (!make_only) log_event('a', NULL, bo->exists ? newdir : olddir, bo->exists ? new : old);
    } else if (err == EEXIST) {
        log_event('s', NULL, newdir, new);          // RENAME_NOREPLACE
    }
    errno = err;
    return ret_of_call;
}

#define TRACE_RENAME(olddir, old, newdir, new, flags, call)                    \
    do {                                                                       \
        struct before bo_, bn_;                                                \
        take_before(&bo_, 'n', olddir, old);                                   \
        take_before(&bn_, 'N', newdir, new);                                   \
        return traced_rename(olddir, old, newdir, new, flags, (call), &bo_, &bn_); \
    } while (0)

int rename(const char *old, const char *new)
{ TRACE_RENAME(AT_FDCWD, old, AT_FDCWD, new, 0, REAL(rename)(old, new)); }
int renameat(int olddir, const char *old, int newdir, const char *new)
{ TRACE_RENAME(olddir, old, newdir, new, 0, REAL(renameat)(olddir, old, newdir, new)); }
int renameat2(int olddir, const char *old, int newdir, const char *new, unsigned flags)
{ TRACE_RENAME(olddir, old, newdir, new, flags, REAL(renameat2)(olddir, old, newdir, new, flags)); }

static int traced_link(int olddir, const char *old, int newdir, const char *new, int ret)
{
    if (log_fd < 0) return ret;
    int err = errno;
    if (ret == 0) log_event('r', NULL, olddir, old);   // new has old's content
    log_outcome('N', NULL, newdir, new, ret == 0, REAL_PARENT);  // 0 0 0: never replaces
    errno = err;
    return ret;
}

int link(const char *old, const char *new)
{ return traced_link(AT_FDCWD, old, AT_FDCWD, new, REAL(link)(old, new)); }
int linkat(int olddir, const char *old, int newdir, const char *new, int flags)
{ return traced_link(olddir, old, newdir, new, REAL(linkat)(olddir, old, newdir, new, flags)); }

int unlink(const char *path)
{ TRACE_CHANGE('d', AT_FDCWD, path, REAL(unlink)(path)); }
int unlinkat(int dirfd, const char *path, int flags)
{ TRACE_CHANGE('d', dirfd, path, REAL(unlinkat)(dirfd, path, flags)); }
int remove(const char *path)
{ TRACE_CHANGE('d', AT_FDCWD, path, REAL(remove)(path)); }
int rmdir(const char *path)
{ TRACE_CHANGE('d', AT_FDCWD, path, REAL(rmdir)(path)); }
int mkdir(const char *path, mode_t mode)
{ TRACE_CHANGE('k', AT_FDCWD, path, REAL(mkdir)(path, mode)); }
int mkdirat(int dirfd, const char *path, mode_t mode)
{ TRACE_CHANGE('k', dirfd, path, REAL(mkdirat)(dirfd, path, mode)); }
int symlink(const char *target, const char *path)
{ TRACE_CHANGE('l', AT_FDCWD, path, REAL(symlink)(target, path)); }
int symlinkat(const char *target, int dirfd, const char *path)
{ TRACE_CHANGE('l', dirfd, path, REAL(symlinkat)(target, dirfd, path)); }
int truncate(const char *path, off_t len)
{ TRACE_CHANGE_FOLLOW('m', AT_FDCWD, path, REAL(truncate)(path, len)); }
int truncate64(const char *path, off64_t len)
{ TRACE_CHANGE_FOLLOW('m', AT_FDCWD, path, REAL(truncate64)(path, len)); }
int chmod(const char *path, mode_t mode)
{ TRACE_CHANGE_FOLLOW('m', AT_FDCWD, path, REAL(chmod)(path, mode)); }
int fchmodat(int dirfd, const char *path, mode_t mode, int flags)
{
    int real = flags & AT_SYMLINK_NOFOLLOW ? REAL_PARENT : REAL_FOLLOW;
    TRACE_REAL(int, -1, 'm', real, dirfd, path, REAL(fchmodat)(dirfd, path, mode, flags));
}

// ---------------------------------------------------------------------------
// Temporary files that libc creates with its internal open, which never comes
// through the wrappers above: on success the template holds the name made.
// The mkstemp family opens with O_CREAT|O_EXCL, so the file is new (w, 0 0 0);
// mkdtemp makes a directory (k). tmpfile names nothing and needs no wrapper.

#define TRACE_MKSTEMP(template, call)                                          \
    do {                                                                       \
        int fd_ = (call);                                                      \
        if (fd_ >= 0) log_event_real('w', NULL, AT_FDCWD, template, fd_);      \
        return fd_;                                                            \
    } while (0)

int mkstemp(char *template)
{ TRACE_MKSTEMP(template, REAL(mkstemp)(template)); }
int mkstemp64(char *template)
{ TRACE_MKSTEMP(template, REAL(mkstemp64)(template)); }
int mkostemp(char *template, int flags)
{ TRACE_MKSTEMP(template, REAL(mkostemp)(template, flags)); }
int mkostemp64(char *template, int flags)
{ TRACE_MKSTEMP(template, REAL(mkostemp64)(template, flags)); }
int mkstemps(char *template, int suffixlen)
{ TRACE_MKSTEMP(template, REAL(mkstemps)(template, suffixlen)); }
int mkstemps64(char *template, int suffixlen)
{ TRACE_MKSTEMP(template, REAL(mkstemps64)(template, suffixlen)); }
int mkostemps(char *template, int suffixlen, int flags)
{ TRACE_MKSTEMP(template, REAL(mkostemps)(template, suffixlen, flags)); }
int mkostemps64(char *template, int suffixlen, int flags)
{ TRACE_MKSTEMP(template, REAL(mkostemps64)(template, suffixlen, flags)); }

char *mkdtemp(char *template)
{
    char *dir = REAL(mkdtemp)(template);
    if (dir) log_event_real('k', NULL, AT_FDCWD, dir, REAL_PARENT);
    return dir;
}

// ---------------------------------------------------------------------------
// Reading standard input (event i, see stdin_read). getc_unlocked and friends
// are inline in glibc's headers and reach libc through __uflow; (fn) keeps
// such macros from expanding.

#define STDIN_READER(type, fn, params, args, stream)                           \
    type(fn) params                                                            \
    {                                                                          \
        if (is_stdin(stream)) stdin_read();                                    \
        return REAL(fn) args;                                                  \
    }

ssize_t read(int fd, void *buf, size_t len)
{
    if (fd == 0) stdin_read();
    return REAL(read)(fd, buf, len);
}

STDIN_READER(size_t, fread, (void *p, size_t size, size_t n, FILE *f), (p, size, n, f), f)
STDIN_READER(size_t, fread_unlocked, (void *p, size_t size, size_t n, FILE *f), (p, size, n, f), f)
STDIN_READER(char *, fgets, (char *s, int n, FILE *f), (s, n, f), f)
STDIN_READER(char *, fgets_unlocked, (char *s, int n, FILE *f), (s, n, f), f)
STDIN_READER(ssize_t, getline, (char **line, size_t *n, FILE *f), (line, n, f), f)
STDIN_READER(ssize_t, getdelim, (char **line, size_t *n, int delim, FILE *f), (line, n, delim, f), f)
STDIN_READER(ssize_t, __getdelim, (char **line, size_t *n, int delim, FILE *f), (line, n, delim, f), f)
STDIN_READER(int, fgetc, (FILE *f), (f), f)
STDIN_READER(int, fgetc_unlocked, (FILE *f), (f), f)
STDIN_READER(int, getc, (FILE *f), (f), f)
STDIN_READER(int, getc_unlocked, (FILE *f), (f), f)
STDIN_READER(int, _IO_getc, (FILE *f), (f), f)
STDIN_READER(int, __uflow, (FILE *f), (f), f)
STDIN_READER(int, getchar, (void), (), stdin)
STDIN_READER(int, getchar_unlocked, (void), (), stdin)

// ---------------------------------------------------------------------------
// Failures no key holds (event `f`, PROTOCOL.md section 3): a call that failed
// for a reason other than an absent or existing path (EACCES, EMFILE, EIO,
// ENOMEM...), a fork that failed, a child that died of a signal other than
// SIGPIPE (the OOM killer, a timeout). The daemon stores a line that exited
// non-zero only when its log has none of these: its failure may not happen
// again with the same inputs.

static void log_failure(const char *fmt, int a, const char *path)
{
    if (log_fd < 0 || make_only) return;
    int saved = errno;
    char buf[LINE_CAP];
    size_t n = (size_t)snprintf(buf, 64, "f ");
    n += (size_t)snprintf(buf + n, 64, fmt, a);
    // The path is for people reading the log; the daemon reads only the op.
    if (path && path[0] && strlen(path) < sizeof buf - n - 2 && !strchr(path, '\n'))
        n += (size_t)snprintf(buf + n, sizeof buf - n, " %s", path);
    buf[n++] = '\n';
    write_line(buf, n);
    errno = saved;
}

static void check_child(pid_t r, int status)
{
    if (r > 0 && WIFSIGNALED(status) && WTERMSIG(status) != SIGPIPE)
        log_failure("child killed by signal %d", WTERMSIG(status), NULL);
}

pid_t fork(void)
{
    pid_t r = REAL(fork)();
    if (r < 0) log_failure("fork: errno %d", errno, NULL);
    return r;
}

pid_t wait(int *status)
{
    int st = 0;
    pid_t r = REAL(wait)(&st);
    check_child(r, st);
    if (r > 0 && status) *status = st;
    return r;
}

pid_t waitpid(pid_t pid, int *status, int options)
{
    int st = 0;
    pid_t r = REAL(waitpid)(pid, &st, options);
    check_child(r, st);
    if (r > 0 && status) *status = st;
    return r;
}

pid_t wait3(int *status, int options, struct rusage *usage)
{
    int st = 0;
    pid_t r = REAL(wait3)(&st, options, usage);
    check_child(r, st);
    if (r > 0 && status) *status = st;
    return r;
}

pid_t wait4(pid_t pid, int *status, int options, struct rusage *usage)
{
    int st = 0;
    pid_t r = REAL(wait4)(pid, &st, options, usage);
    check_child(r, st);
    if (r > 0 && status) *status = st;
    return r;
}

int waitid(idtype_t type, id_t id, siginfo_t *info, int options)
{
    int r = REAL(waitid)(type, id, info, options);
    if (r == 0 && info && info->si_pid && (info->si_code == CLD_KILLED || info->si_code == CLD_DUMPED) && info->si_status != SIGPIPE)
        log_failure("child killed by signal %d", info->si_status, NULL);
    return r;
}

// ---------------------------------------------------------------------------
// State no file holds (event `q`, PROTOCOL.md section 3), each with the name
// of the program's executable (/proc/self/exe: bash run as sh is bash):
// `q host <exe>`, it asked uname or gethostname for the machine's identity;
// `q net <exe>`, it connected to a socket or sent to an address. The daemon
// decides what each means (identity-inputs.ts, accesses.ts). glibc's own
// calls (gethostname's uname, the resolver's and nscd's sockets) never reach
// these wrappers.

static void log_query(const char *what)
{
    if (log_fd < 0 || make_only) return;
    int saved = errno;
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[len > 0 ? len : 0] = 0;
    const char *base = strrchr(exe, '/');
    base = base ? base + 1 : program_invocation_short_name;
    char buf[LINE_CAP];
    int n = snprintf(buf, sizeof buf, "q %s %s\n", what, base);
    if (n > 0 && (size_t)n < sizeof buf && !strchr(base, '\n')) write_line(buf, (size_t)n);
    else write_line(buf, (size_t)snprintf(buf, sizeof buf, "q %s ?\n", what));
    errno = saved;
}

int uname(struct utsname *buf)
{
    log_query("host");
    return REAL(uname)(buf);
}

int gethostname(char *name, size_t len)
{
    log_query("host");
    return REAL(gethostname)(name, len);
}

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    log_query("net");
    return REAL(connect)(fd, addr, len);
}

ssize_t sendto(int fd, const void *data, size_t n, int flags, const struct sockaddr *addr, socklen_t len)
{
    if (addr) log_query("net");
    return REAL(sendto)(fd, data, n, flags, addr, len);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (msg && msg->msg_name) log_query("net");
    return REAL(sendmsg)(fd, msg, flags);
}
