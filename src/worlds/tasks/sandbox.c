/* The python sandbox: runs untrusted code (a model's program) so that a
 * crash, a hang, a memory or fork bomb is a failed run, never a hung or
 * damaged caller.
 *
 * Process tree:  caller ── init (pid 1 of a new PID + network namespace)
 *                                └── python3 -I -B main.py  (uid nobody when
 *                                    the caller is root, rlimits, cwd = a
 *                                    fresh temporary folder)
 * The init process only waits: when python exits, init reports its wait
 * status on a pipe and exits, and the kernel then kills every process left
 * in the namespace (background children, a fork bomb, a setsid'd daemon).
 * The wall limit is one SIGKILL to init, with the same effect. Where the
 * kernel refuses namespaces, the child is an ordinary fork in its own
 * session and the wall limit kills its process group: leftovers that left
 * the group survive, and the network is open ("isolation": "none").
 *
 * The children are made with the raw clone system call and do nothing but
 * system calls until execve: the caller may be multi-threaded (verifying
 * in parallel), and after fork only async-signal-safe calls are allowed. */
#define _GNU_SOURCE
#include "agora/datasets.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Files the program writes are capped at this size (RLIMIT_FSIZE): enough
 * for any test's scratch file, small enough that a runaway writer fails. */
#define SANDBOX_FILE_BYTES ((rlim_t)64 << 20)
/* Open files per process (RLIMIT_NOFILE). */
#define SANDBOX_OPEN_FILES 256
/* The unprivileged user the program runs as when the caller is root: root
 * is exempt from RLIMIT_NPROC, so only another uid makes the process limit
 * hold. 65534 is "nobody" on Linux distributions. */
#define SANDBOX_UID 65534
#define SANDBOX_GID 65534
/* Exit status of a child that could not start python (the message is in the
 * output). */
#define SANDBOX_SETUP_FAILED 127

ag_sandbox_limits ag_sandbox_defaults(void) {
  return (ag_sandbox_limits){.wall_seconds = 10,
                             .cpu_seconds = 10,
                             .memory_bytes = (int64_t)1 << 30,
                             .max_processes = 16,
                             .max_output_bytes = 64 << 10};
}

void ag_sandbox_result_clear(ag_sandbox_result *r) {
  if (!r) return;
  free(r->output);
  memset(r, 0, sizeof *r);
}

/* ---- the temporary folder ------------------------------------------------------ */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)ftw;
  /* A folder the program made unreadable would stop the walk: rmdir what
   * we can; the caller reports nothing (best effort beyond root). */
  if (flag == FTW_DP || flag == FTW_D || flag == FTW_DNR)
    rmdir(path);
  else
    unlink(path);
  return 0;
}

static void remove_tree(const char *dir) { nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* ---- the child's side: system calls only -------------------------------------- */

typedef struct child_plan {
  const char *python; /* absolute path */
  char *const *argv;
  char *const *envp;
  const char *dir; /* cwd */
  int out_fd;      /* write end of the output pipe */
  int status_fd;   /* write end of the status pipe (init reports here) */
  bool drop_to_nobody;
  bool root;        /* the caller is root: without drop_to_nobody, seccomp limits processes */
  bool isolated;    /* python's parent is the namespace's init, not the caller */
  pid_t caller_pid; /* to notice a caller that died before the child was set up */
  struct rlimit cpu, as, nproc, fsize, core, nofile;
} child_plan;

/* A message and the errno value, with write(2) only: strerror and stdio are
 * not async-signal-safe after clone. */
static void say(int fd, const char *what, int err) {
  char digits[16];
  int n = 0;
  do {
    digits[sizeof digits - 1 - (size_t)n++] = (char)('0' + err % 10);
    err /= 10;
  } while (err > 0 && n < 15);
  ssize_t unused = write(fd, what, strlen(what));
  unused = write(fd, " (errno ", 8);
  unused = write(fd, digits + sizeof digits - n, (size_t)n);
  unused = write(fd, ")\n", 2);
  (void)unused;
}

/* Closes every descriptor from 3 up except keep_a and keep_b (-1: none).
 * close_range is Linux 5.9+; older kernels get the loop. */
static void close_from_3_except(int keep_a, int keep_b) {
  int lo = keep_a < keep_b ? keep_a : keep_b, hi = keep_a < keep_b ? keep_b : keep_a;
  int keeps[2] = {lo, hi};
  unsigned first = 3;
  for (int i = 0; i <= 2; i++) {
    unsigned last = ~0u;
    if (i < 2) {
      if (keeps[i] < (int)first) continue;
      last = (unsigned)keeps[i] - 1;
    }
    if (last >= first) {
#ifdef SYS_close_range
      if (syscall(SYS_close_range, first, last, 0) != 0)
#endif
      {
        unsigned stop = last > 65536 ? 65536 : last;
        for (unsigned fd = first; fd <= stop; fd++) close((int)fd);
      }
    }
    if (i < 2) first = (unsigned)keeps[i] + 1;
  }
}

/* Root is exempt from RLIMIT_NPROC. When the program must run as root (no
 * unprivileged uid exists, e.g. in a user namespace that maps only root),
 * a seccomp filter forbids new processes instead: fork, vfork and clone
 * fail with EAGAIN (threads, clone with CLONE_THREAD, are allowed; their
 * stacks count against RLIMIT_AS), clone3 reports ENOSYS so that libc falls
 * back to clone. Syscalls of another ABI (x32, i386) kill the process. */
#if defined(__x86_64__)
#define SANDBOX_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SANDBOX_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

static int forbid_new_processes(void) {
#ifdef SANDBOX_AUDIT_ARCH
  enum { ALLOW = 0, DENY, NOSYS, KILL }; /* the four returns, at the end */
  struct step {
    unsigned short code;
    unsigned k;
    int yes, no; /* -1: the next instruction; else a return */
  } steps[16];
  int n = 0;
#define STEP(c, kk, y, nn) steps[n++] = (struct step){(unsigned short)(c), (unsigned)(kk), y, nn}
  STEP(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch), -1, -1);
  STEP(BPF_JMP | BPF_JEQ | BPF_K, SANDBOX_AUDIT_ARCH, -1, KILL);
  STEP(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr), -1, -1);
#if defined(__x86_64__)
  STEP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, KILL, -1); /* x32 */
  STEP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fork, DENY, -1);
  STEP(BPF_JMP | BPF_JEQ | BPF_K, __NR_vfork, DENY, -1);
#endif
#ifdef __NR_clone3
  STEP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, NOSYS, -1);
#endif
  STEP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, -1, ALLOW);
  /* clone's flags: the low word of its first argument (little-endian). */
  STEP(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args), -1, -1);
  STEP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, ALLOW, DENY);
#undef STEP
  static const unsigned returns[4] = {SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EAGAIN,
                                      SECCOMP_RET_ERRNO | ENOSYS, SECCOMP_RET_KILL_PROCESS};
  struct sock_filter filter[20];
  for (int i = 0; i < n; i++) {
    /* Jump offsets count from the next instruction; returns follow the steps. */
    unsigned char jt = (unsigned char)(steps[i].yes < 0 ? 0 : n + steps[i].yes - (i + 1));
    unsigned char jf = (unsigned char)(steps[i].no < 0 ? 0 : n + steps[i].no - (i + 1));
    filter[i] = (struct sock_filter){steps[i].code, jt, jf, steps[i].k};
  }
  for (int r = 0; r < 4; r++)
    filter[n + r] = (struct sock_filter){BPF_RET | BPF_K, 0, 0, returns[r]};
  struct sock_fprog prog = {.len = (unsigned short)(n + 4), .filter = filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) return -1;
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
#else
  errno = ENOSYS;
  return -1;
#endif
}

/* The python process: limits, user, descriptors, folder, exec. */
static _Noreturn void run_python(const child_plan *p) {
  int out = p->out_fd;
  if (setrlimit(RLIMIT_CPU, &p->cpu) || setrlimit(RLIMIT_AS, &p->as) ||
      setrlimit(RLIMIT_NPROC, &p->nproc) || setrlimit(RLIMIT_FSIZE, &p->fsize) ||
      setrlimit(RLIMIT_CORE, &p->core) || setrlimit(RLIMIT_NOFILE, &p->nofile)) {
    say(out, "sandbox: setrlimit failed", errno);
    _exit(SANDBOX_SETUP_FAILED);
  }
  if (p->drop_to_nobody) {
    if (setgroups(0, NULL) || setgid(SANDBOX_GID) || setuid(SANDBOX_UID)) {
      say(out, "sandbox: cannot switch to the unprivileged user", errno);
      _exit(SANDBOX_SETUP_FAILED);
    }
  } else if (p->root && forbid_new_processes()) {
    /* Fail closed: root without a process limit is not a sandbox. */
    say(out, "sandbox: cannot limit processes (seccomp)", errno);
    _exit(SANDBOX_SETUP_FAILED);
  }
  /* A caller killed mid-run cannot enforce the wall limit: the child dies
   * with it (set after the uid switch, which clears it). In a namespace,
   * init does this for the whole tree. */
  if (!p->isolated &&
      (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != p->caller_pid))
    _exit(SANDBOX_SETUP_FAILED);
  int null_fd = open("/dev/null", O_RDONLY);
  if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0) {
    say(out, "sandbox: cannot set up stdin/stdout", errno);
    _exit(SANDBOX_SETUP_FAILED);
  }
  close_from_3_except(-1, -1); /* null_fd, the pipe's original and the status pipe */
  if (chdir(p->dir)) {
    say(2, "sandbox: cannot enter the temporary folder", errno);
    _exit(SANDBOX_SETUP_FAILED);
  }
  /* Dispositions set to "ignore" and a blocked mask would be inherited
   * (handlers are reset by execve). */
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execve(p->python, p->argv, p->envp);
  say(2, "sandbox: cannot run python", errno);
  _exit(SANDBOX_SETUP_FAILED);
}

static pid_t raw_fork(unsigned long flags) {
  /* clone without a new stack behaves like fork, without fork's atfork
   * handlers (locks other threads may hold). x86-64 and aarch64 both take
   * (flags, stack, parent_tid, child_tid, tls). */
  return (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0);
}

/* pid 1 of the namespace: start python, wait for it, report its status. */
static _Noreturn void run_init(const child_plan *p) {
  /* If the caller dies (killed mid-run, it cannot enforce the wall limit),
   * so does init, and with it the namespace. (getppid() is 0 here: the
   * caller is outside the namespace, so a caller that died before this line
   * goes unnoticed; the CPU limit still ends python.) */
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  /* Other threads' pipes, files and sockets are not ours to hold open. */
  close_from_3_except(p->out_fd, p->status_fd);
  pid_t child = raw_fork(0);
  if (child < 0) {
    say(p->out_fd, "sandbox: cannot start python", errno);
    _exit(SANDBOX_SETUP_FAILED);
  }
  if (child == 0) run_python(p);
  close(p->out_fd);
  /* Orphans in the namespace are re-parented to us: reap until python ends. */
  int status = 0;
  for (;;) {
    int st;
    pid_t got = waitpid(-1, &st, 0);
    if (got == child) {
      status = st;
      break;
    }
    if (got < 0 && errno != EINTR) break;
  }
  ssize_t unused = write(p->status_fd, &status, sizeof status);
  (void)unused;
  _exit(0); /* the kernel now kills what is left in the namespace */
}

/* ---- the caller's side ---------------------------------------------------------- */

static const char *find_python(void) {
  /* The system python (the one with the distribution's packages) first. */
  static const char *const candidates[] = {"/usr/bin/python3", "/usr/local/bin/python3",
                                           "/bin/python3"};
  for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++)
    if (access(candidates[i], X_OK) == 0) return candidates[i];
  return NULL;
}

static ag_status make_folder(bool for_nobody, char *dir, size_t size) {
  const char *base = getenv("TMPDIR");
  struct stat sb;
  /* nobody must be able to reach the folder: a private TMPDIR is skipped. */
  if (!base || !*base || stat(base, &sb) || !S_ISDIR(sb.st_mode) ||
      (for_nobody && !(sb.st_mode & S_IXOTH)))
    base = "/tmp";
  if (snprintf(dir, size, "%s/agora-sandbox-XXXXXX", base) >= (int)size)
    return ag_error_set(AG_ERR_INVALID, "sandbox: TMPDIR path too long");
  if (!mkdtemp(dir))
    return ag_error_set(AG_ERR_IO, "sandbox: cannot create a temporary folder in %s: %s", base,
                        strerror(errno));
  return AG_OK;
}

static ag_status write_program(const char *dir, const char *program) {
  char path[600];
  snprintf(path, sizeof path, "%s/main.py", dir);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ag_error_set(AG_ERR_IO, "sandbox: cannot write %s: %s", path, strerror(errno));
  size_t n = strlen(program), done = 0;
  while (done < n) {
    ssize_t w = write(fd, program + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int err = errno;
      close(fd);
      return ag_error_set(AG_ERR_IO, "sandbox: cannot write %s: %s", path, strerror(err));
    }
    done += (size_t)w;
  }
  close(fd);
  return AG_OK;
}

static struct rlimit limit_of(rlim_t soft, rlim_t hard) {
  return (struct rlimit){.rlim_cur = soft, .rlim_max = hard};
}

static void sleep_ms(int ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Keeps the first `cap` bytes of the output; reads and drops the rest so
 * that the program never blocks on a full pipe. */
typedef struct output_buffer {
  char *data;
  size_t size, capacity, cap;
  bool failed;
} output_buffer;

static void output_add(output_buffer *b, const char *bytes, size_t n) {
  if (b->size >= b->cap) return;
  if (n > b->cap - b->size) n = b->cap - b->size;
  if (b->size + n + 1 > b->capacity) {
    size_t want = b->capacity ? b->capacity * 2 : 4096;
    while (want < b->size + n + 1) want *= 2;
    char *grown = realloc(b->data, want);
    if (!grown) {
      b->failed = true;
      return;
    }
    b->data = grown;
    b->capacity = want;
  }
  memcpy(b->data + b->size, bytes, n);
  b->size += n;
  b->data[b->size] = '\0';
}

ag_status ag_sandbox_python(const char *program, const ag_sandbox_limits *limits,
                            ag_sandbox_result *out) {
  memset(out, 0, sizeof *out);
  out->isolation = "none";
  if (!program) return ag_error_set(AG_ERR_INVALID, "sandbox: no program");
  ag_sandbox_limits lim = limits ? *limits : ag_sandbox_defaults();
  ag_sandbox_limits def = ag_sandbox_defaults();
  if (!(lim.wall_seconds > 0)) lim.wall_seconds = def.wall_seconds;
  if (!(lim.cpu_seconds > 0)) lim.cpu_seconds = def.cpu_seconds;
  if (lim.memory_bytes <= 0) lim.memory_bytes = def.memory_bytes;
  if (lim.max_processes <= 0) lim.max_processes = def.max_processes;
  if (lim.max_output_bytes <= 0) lim.max_output_bytes = def.max_output_bytes;

  const char *python = find_python();
  if (!python) return ag_error_set(AG_ERR_NOT_FOUND, "sandbox: python3 not found in /usr/bin");
  bool root = geteuid() == 0;
  char dir[512];
  ag_status st = make_folder(root, dir, sizeof dir);
  if (st) return st;
  st = write_program(dir, program);
  if (st) {
    remove_tree(dir);
    return st;
  }
  /* The folder goes to the unprivileged user; where that uid does not exist
   * (a user namespace that does not map it) the program runs as root with
   * new processes forbidden. */
  char main_py[600];
  snprintf(main_py, sizeof main_py, "%s/main.py", dir);
  bool drop = root && chown(dir, SANDBOX_UID, SANDBOX_GID) == 0 &&
              chown(main_py, SANDBOX_UID, SANDBOX_GID) == 0;

  /* Everything the children need is built before they exist. */
  char home[600];
  snprintf(home, sizeof home, "HOME=%s", dir);
  char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin",
                  home,
                  "LANG=C.UTF-8",
                  "PYTHONDONTWRITEBYTECODE=1",
                  "PYTHONHASHSEED=0",
                  NULL};
  char *argv[] = {"python3", "-I", "-B", "main.py", NULL};
  rlim_t cpu = (rlim_t)(lim.cpu_seconds + 0.999);
  child_plan plan = {.python = python,
                     .argv = argv,
                     .envp = envp,
                     .dir = dir,
                     .drop_to_nobody = drop,
                     .root = root,
                     .caller_pid = getpid(),
                     /* SIGXCPU at the soft limit, SIGKILL a second later */
                     .cpu = limit_of(cpu, cpu + 1),
                     .as = limit_of((rlim_t)lim.memory_bytes, (rlim_t)lim.memory_bytes),
                     .nproc = limit_of((rlim_t)lim.max_processes, (rlim_t)lim.max_processes),
                     .fsize = limit_of(SANDBOX_FILE_BYTES, SANDBOX_FILE_BYTES),
                     .core = limit_of(0, 0),
                     .nofile = limit_of(SANDBOX_OPEN_FILES, SANDBOX_OPEN_FILES)};
  int out_pipe[2], status_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC)) {
    remove_tree(dir);
    return ag_error_set(AG_ERR_IO, "sandbox: pipe: %s", strerror(errno));
  }
  if (pipe2(status_pipe, O_CLOEXEC)) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    remove_tree(dir);
    return ag_error_set(AG_ERR_IO, "sandbox: pipe: %s", strerror(errno));
  }
  plan.out_fd = out_pipe[1];
  plan.status_fd = status_pipe[1];

  /* A PID + network namespace where allowed: as root directly, otherwise
   * inside a new user namespace. */
  unsigned long ns = CLONE_NEWPID | CLONE_NEWNET | (root ? 0 : CLONE_NEWUSER);
  bool isolated = true;
  double start = ag_time_seconds();
  pid_t pid = raw_fork(ns);
  if (pid < 0 && (errno == EPERM || errno == EINVAL || errno == ENOSPC || errno == EUSERS)) {
    isolated = false;
    pid = raw_fork(0);
  }
  if (pid == 0) {
    plan.isolated = isolated;
    if (isolated) run_init(&plan);
    setsid(); /* its own process group, for the wall-limit kill */
    close(status_pipe[1]);
    run_python(&plan);
  }
  int fork_errno = errno;
  close(out_pipe[1]);
  close(status_pipe[1]);
  if (pid < 0) {
    close(out_pipe[0]);
    close(status_pipe[0]);
    remove_tree(dir);
    return ag_error_set(AG_ERR_IO, "sandbox: cannot start a process: %s", strerror(fork_errno));
  }
  out->isolation = isolated ? "netns" : "none";

  /* Read the output until EOF or the wall limit. */
  output_buffer buf = {.cap = (size_t)lim.max_output_bytes};
  double deadline = start + lim.wall_seconds;
  bool eof = false, timed_out = false, exited = false;
  int wait_status = 0;
  char chunk[8192];
  while (!exited) {
    double left = deadline - ag_time_seconds();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    if (!eof) {
      struct pollfd pfd = {.fd = out_pipe[0], .events = POLLIN};
      int ms = (int)(left * 1000) + 1;
      int ready = poll(&pfd, 1, ms > 100 ? 100 : ms);
      if (ready > 0) {
        ssize_t got = read(out_pipe[0], chunk, sizeof chunk);
        if (got > 0)
          output_add(&buf, chunk, (size_t)got);
        else if (got == 0 || (errno != EINTR && errno != EAGAIN))
          eof = true;
      }
    } else {
      sleep_ms(left < 0.005 ? 1 : 5);
    }
    /* The program may close its output and keep running: watch it too. */
    pid_t got = waitpid(pid, &wait_status, WNOHANG);
    if (got == pid) exited = true;
  }
  if (!exited) {
    kill(pid, SIGKILL);
    if (!isolated) kill(-pid, SIGKILL);
    while (waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
    }
  } else if (!isolated) {
    kill(-pid, SIGKILL); /* leftovers in its process group */
  }
  /* Output written just before the exit. */
  for (;;) {
    struct pollfd pfd = {.fd = out_pipe[0], .events = POLLIN};
    if (eof || poll(&pfd, 1, 0) <= 0) break;
    ssize_t got = read(out_pipe[0], chunk, sizeof chunk);
    if (got <= 0) break;
    output_add(&buf, chunk, (size_t)got);
  }
  close(out_pipe[0]);

  /* python's own status: reported by init when isolated (init's own exit
   * status when it could not start python), else the direct child's. */
  int status = wait_status;
  if (isolated && !timed_out) {
    int reported;
    if (read(status_pipe[0], &reported, sizeof reported) == (ssize_t)sizeof reported)
      status = reported;
  }
  close(status_pipe[0]);
  remove_tree(dir);

  out->timed_out = timed_out;
  if (timed_out) {
    out->exit_code = -1;
    out->signal = SIGKILL;
  } else if (WIFEXITED(status)) {
    out->exit_code = WEXITSTATUS(status);
  } else {
    out->exit_code = -1;
    out->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  }
  out->passed = !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  out->output = buf.data ? buf.data : strdup("");
  if (!out->output) return ag_error_set(AG_ERR_NOMEM, "sandbox: out of memory");
  return AG_OK;
}
