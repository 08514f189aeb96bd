/* The python sandbox and the humaneval family: every canonical HumanEval
 * solution passes its tests, a corrupted one fails with the failing
 * assertion as diagnostic, and hostile programs (an endless loop, a memory
 * bomb, a fork bomb, a network connection, writes outside the sandbox) are
 * failed runs within their limits, leaving no processes or folders. */
#define _GNU_SOURCE
#include "agora/datasets.h"
#include "test.h"
#include "worlds/tasks/task_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define HUMANEVAL "../shared/data/humaneval/HumanEval.jsonl.gz"

static ag_sandbox_limits quick_limits(double wall_seconds) {
  ag_sandbox_limits l = ag_sandbox_defaults();
  l.wall_seconds = wall_seconds;
  l.cpu_seconds = wall_seconds;
  return l;
}

/* Processes whose working folder is dir (a sandbox's, removed by now:
 * the kernel shows it as "DIR (deleted)"): the sandbox must leave none. */
static int processes_in(const char *dir) {
  DIR *d = opendir("/proc");
  if (!d || !*dir) {
    if (d) closedir(d);
    return 0;
  }
  int n = 0;
  size_t len = strlen(dir);
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char path[300], target[600];
    snprintf(path, sizeof path, "/proc/%s/cwd", e->d_name);
    ssize_t got = readlink(path, target, sizeof target - 1);
    if (got <= 0) continue;
    target[got] = '\0';
    if (!strncmp(target, dir, len) && (target[len] == '\0' || target[len] == ' ')) n++;
  }
  closedir(d);
  return n;
}

/* The folder a program printed as "cwd DIR". */
static void printed_cwd(const char *output, char *dir, size_t size) {
  const char *c = strstr(output, "cwd ");
  dir[0] = '\0';
  if (c) snprintf(dir, size, "%.*s", (int)strcspn(c + 4, " \n"), c + 4);
}

static ag_sandbox_result run(const char *program, ag_sandbox_limits limits) {
  ag_sandbox_result r;
  ag_status st = ag_sandbox_python(program, &limits, &r);
  CHECK_MSG(st == AG_OK, "%s", ag_error_message());
  if (st) memset(&r, 0, sizeof r);
  if (!r.output) r.output = strdup("");
  return r;
}

/* ---- the plain contract -------------------------------------------------------------- */

TEST(a_program_runs_and_its_output_comes_back) {
  ag_sandbox_result r =
      run("import sys\nprint('out')\nprint('err', file=sys.stderr)\n", quick_limits(10));
  CHECK(r.passed);
  CHECK(!r.timed_out);
  CHECK(r.exit_code == 0 && r.signal == 0);
  CHECK(strstr(r.output, "out\n") && strstr(r.output, "err\n"));
  CHECK(r.isolation && (!strcmp(r.isolation, "netns") || !strcmp(r.isolation, "none")));
  fprintf(stderr, "     isolation: %s (uid %d)\n", r.isolation, (int)geteuid());
  ag_sandbox_result_clear(&r);
}

TEST(exit_status_and_signals_are_reported) {
  ag_sandbox_result r = run("import sys\nsys.exit(3)\n", quick_limits(10));
  CHECK(!r.passed && r.exit_code == 3 && r.signal == 0 && !r.timed_out);
  ag_sandbox_result_clear(&r);
  r = run("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", quick_limits(10));
  CHECK(!r.passed && r.exit_code == -1 && r.signal == SIGSEGV);
  ag_sandbox_result_clear(&r);
  r = run("raise ValueError('boom')\n", quick_limits(10));
  CHECK(!r.passed && r.exit_code == 1 && strstr(r.output, "ValueError: boom"));
  ag_sandbox_result_clear(&r);
}

TEST(stdin_is_empty_and_the_environment_minimal) {
  ag_sandbox_result r =
      run("import os, sys\nprint(len(sys.stdin.read()))\nprint(sorted(os.environ))\n"
          "print(os.getcwd() == os.environ['HOME'])\n",
          quick_limits(10));
  CHECK(r.passed);
  CHECK(!strncmp(r.output, "0\n", 2));
  CHECK(strstr(r.output, "'HOME'") && strstr(r.output, "'PATH'"));
  CHECK(strstr(r.output, "True\n"));
  /* Nothing of the caller's environment (the test's own variables). */
  CHECK(!strstr(r.output, "AG_") && !strstr(r.output, "'USER'"));
  ag_sandbox_result_clear(&r);
}

TEST(output_is_truncated_without_blocking_the_program) {
  ag_sandbox_limits l = quick_limits(10);
  l.max_output_bytes = 1000;
  ag_sandbox_result r = run("import sys\nfor i in range(100000): print('x' * 50)\n", l);
  CHECK(r.passed); /* it wrote 5 MB into a pipe nobody kept: not stuck */
  CHECK(strlen(r.output) <= 1000);
  CHECK(strlen(r.output) >= 900);
  ag_sandbox_result_clear(&r);
}

/* ---- hostile programs -------------------------------------------------------------- */

TEST(an_endless_loop_is_killed_at_the_wall_limit) {
  double t0 = ag_time_seconds();
  ag_sandbox_limits l = quick_limits(0.5);
  l.cpu_seconds = 30; /* the wall limit must act, not the CPU limit */
  ag_sandbox_result r = run("while True:\n    pass\n", l);
  double elapsed = ag_time_seconds() - t0;
  CHECK(r.timed_out && !r.passed);
  CHECK(r.exit_code == -1 && r.signal == SIGKILL);
  CHECK_MSG(elapsed < 3.0, "took %.2f s", elapsed);
  ag_sandbox_result_clear(&r);
  /* Sleeping uses no CPU: only the wall clock catches it. */
  t0 = ag_time_seconds();
  r = run("import time\ntime.sleep(60)\n", l);
  CHECK(r.timed_out && !r.passed);
  CHECK(ag_time_seconds() - t0 < 3.0);
  ag_sandbox_result_clear(&r);
  /* A program that closes its output and keeps going is still killed. */
  r = run("import os\nos.close(1)\nos.close(2)\nwhile True:\n    pass\n", l);
  CHECK(r.timed_out && !r.passed);
  ag_sandbox_result_clear(&r);
}

TEST(the_cpu_limit_stops_a_busy_program) {
  ag_sandbox_limits l = quick_limits(20);
  l.cpu_seconds = 1;
  double t0 = ag_time_seconds();
  ag_sandbox_result r = run("while True:\n    pass\n", l);
  CHECK(!r.passed && !r.timed_out);
  CHECK_MSG(r.signal == SIGXCPU || r.signal == SIGKILL, "signal %d", r.signal);
  /* not timed out: the CPU limit, not the 20 s wall limit, ended it (on a
   * loaded machine one CPU second can take many seconds of wall clock) */
  CHECK(ag_time_seconds() - t0 < 20.0);
  ag_sandbox_result_clear(&r);
}

TEST(a_memory_bomb_fails_within_the_limit) {
  ag_sandbox_limits l = quick_limits(10);
  l.memory_bytes = (int64_t)256 << 20;
  double t0 = ag_time_seconds();
  ag_sandbox_result r = run("x = bytearray(4 << 30)\nprint('allocated')\n", l);
  CHECK(!r.passed && !r.timed_out);
  CHECK(strstr(r.output, "MemoryError") && !strstr(r.output, "allocated"));
  ag_sandbox_result_clear(&r);
  r = run("a = []\nwhile True:\n    a.append(' ' * 1000000)\n", l);
  CHECK(!r.passed && !r.timed_out);
  CHECK(strstr(r.output, "MemoryError") || r.signal != 0);
  CHECK(ag_time_seconds() - t0 < 8.0);
  ag_sandbox_result_clear(&r);
}

TEST(a_fork_bomb_is_contained) {
  /* Counting: how many children can it have at once? */
  ag_sandbox_limits l = quick_limits(10);
  l.max_processes = 8;
  ag_sandbox_result r = run("import os, time\n"
                            "print('cwd', os.getcwd(), flush=True)\n"
                            "n = 0\n"
                            "for i in range(200):\n"
                            "    try:\n"
                            "        pid = os.fork()\n"
                            "    except OSError:\n"
                            "        break\n"
                            "    if pid == 0:\n"
                            "        time.sleep(60)\n"
                            "        os._exit(0)\n"
                            "    n += 1\n"
                            "print('children', n)\n",
                            l);
  int children = -1;
  const char *c = strstr(r.output, "children ");
  if (c) children = atoi(c + 9);
  fprintf(stderr, "     %d children with a limit of 8 processes\n", children);
  /* Root runs the program as uid 65534 (RLIMIT_NPROC holds) or, where that
   * uid does not exist, forbids new processes outright. */
  bool limited = children >= 0 && children < 8;
  CHECK_MSG(limited, "output: %s", r.output);
  CHECK(r.passed);
  char dirs[2][512];
  printed_cwd(r.output, dirs[0], sizeof dirs[0]);
  CHECK(dirs[0][0] != '\0');
  ag_sandbox_result_clear(&r);
  if (!limited) return; /* an unlimited fork bomb would take the machine down */
  /* The real thing: every process forks forever. Killed at the wall limit,
   * with all its descendants. */
  double t0 = ag_time_seconds();
  r = run("import os\n"
          "print('cwd', os.getcwd(), flush=True)\n"
          "while True:\n"
          "    try:\n"
          "        os.fork()\n"
          "    except OSError:\n"
          "        pass\n",
          quick_limits(3)); /* python must start and print first, even under load */
  CHECK(!r.passed);
  CHECK(ag_time_seconds() - t0 < 10.0);
  printed_cwd(r.output, dirs[1], sizeof dirs[1]);
  CHECK(dirs[1][0] != '\0');
  ag_sandbox_result_clear(&r);
  /* The sleeping children of the first program and the bomb's processes
   * are gone (the kernel kills a PID namespace's processes with its init;
   * give it a moment to finish). */
  int left = 0;
  for (int i = 0; i < 50; i++) {
    left = processes_in(dirs[0]) + processes_in(dirs[1]);
    if (left == 0) break;
    usleep(100000);
  }
  CHECK_MSG(left == 0, "%d processes left in %s or %s", left, dirs[0], dirs[1]);
}

/* The caller enforces the wall limit; when it is killed mid-run, the
 * program must not live on. */
TEST(a_killed_caller_takes_its_sandbox_along) {
  char base[] = "/tmp/agora-test-orphan-XXXXXX";
  CHECK(mkdtemp(base) != NULL && chmod(base, 0755) == 0);
  pid_t caller = fork();
  if (caller == 0) {
    setenv("TMPDIR", base, 1);
    ag_sandbox_limits l = quick_limits(30);
    ag_sandbox_result r;
    ag_sandbox_python("import time\ntime.sleep(30)\n", &l, &r);
    _exit(0);
  }
  CHECK(caller > 0);
  if (caller <= 0) return;
  /* Wait for python to be running in the sandbox's folder. */
  char dir[600] = "";
  for (int i = 0; i < 100 && (!dir[0] || !processes_in(dir)); i++) {
    usleep(50000);
    DIR *d = opendir(base);
    struct dirent *e;
    while (d && (e = readdir(d)))
      if (!strncmp(e->d_name, "agora-sandbox-", 14))
        snprintf(dir, sizeof dir, "%s/%s", base, e->d_name);
    if (d) closedir(d);
  }
  CHECK_MSG(dir[0] && processes_in(dir) > 0, "no sandbox running under %s", base);
  kill(caller, SIGKILL);
  waitpid(caller, NULL, 0);
  int left = 1;
  for (int i = 0; i < 50 && left; i++) {
    left = processes_in(dir);
    if (left) usleep(50000);
  }
  CHECK_MSG(left == 0, "%d processes outlived their caller in %s", left, dir);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", base); /* the dead caller could not */
  CHECK(system(cmd) == 0);
}

TEST(the_network_is_unreachable_in_its_own_namespace) {
  /* A server the test itself listens on: reachable from anything sharing
   * the test's network, so a connection proves there is no isolation. */
  int server = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof addr;
  CHECK(server >= 0);
  CHECK(bind(server, (struct sockaddr *)&addr, sizeof addr) == 0);
  CHECK(listen(server, 4) == 0);
  CHECK(getsockname(server, (struct sockaddr *)&addr, &len) == 0);
  char program[512];
  snprintf(program, sizeof program,
           "import socket\n"
           "try:\n"
           "    socket.create_connection(('127.0.0.1', %d), timeout=2)\n"
           "    print('connected')\n"
           "except OSError as e:\n"
           "    print('no network:', e)\n",
           ntohs(addr.sin_port));
  ag_sandbox_result r = run(program, quick_limits(10));
  CHECK(r.passed);
  if (r.isolation && !strcmp(r.isolation, "netns"))
    CHECK_MSG(strstr(r.output, "no network") != NULL, "output: %s", r.output);
  else
    fprintf(stderr, "     isolation none: the network is not blocked: %s", r.output);
  ag_sandbox_result_clear(&r);
  close(server);
}

TEST(the_folder_is_private_and_removed) {
  /* A folder only root may write to: the sandbox's user may not. */
  char target[600];
  snprintf(target, sizeof target, "%s/escape.txt", test_tmpdir());
  char program[1200];
  snprintf(program, sizeof program,
           "import os\n"
           "print('cwd', os.getcwd(), 'uid', os.getuid())\n"
           "open('scratch.txt', 'w').write('x' * 1000)\n"
           "os.mkdir('sub')\n"
           "open('sub/f', 'w').write('y')\n"
           "try:\n"
           "    open('%s', 'w').write('escaped')\n"
           "    print('wrote outside')\n"
           "except OSError as e:\n"
           "    print('denied', e.errno)\n",
           target);
  ag_sandbox_result r = run(program, quick_limits(10));
  CHECK_MSG(r.passed, "output: %s", r.output);
  const char *cwd = strstr(r.output, "cwd ");
  char dir[512] = "";
  if (cwd) sscanf(cwd + 4, "%511s", dir);
  CHECK(strstr(dir, "agora-sandbox-") != NULL);
  struct stat sb;
  CHECK_MSG(dir[0] && stat(dir, &sb) != 0 && errno == ENOENT, "%s still exists", dir);
  if (strstr(r.output, "uid 65534")) { /* the caller is root; the program is not */
    CHECK_MSG(strstr(r.output, "denied") != NULL, "output: %s", r.output);
    CHECK(stat(target, &sb) != 0);
  }
  ag_sandbox_result_clear(&r);
}

TEST(a_file_size_bomb_fails) {
  ag_sandbox_result r = run("f = open('big', 'wb')\n"
                            "for i in range(1000):\n"
                            "    f.write(b'x' * (1 << 20))\n"
                            "print('wrote 1000 MB')\n",
                            quick_limits(10));
  CHECK(!r.passed && !strstr(r.output, "wrote 1000 MB"));
  ag_sandbox_result_clear(&r);
}

/* ---- HumanEval ------------------------------------------------------------------------ */

static int64_t records_seen;
static void count_record(void *user, const ag_task *task, bool verified, const char *detail) {
  (void)user;
  records_seen++;
  if (!verified) fprintf(stderr, "     %s not verified: %s\n", task->id, detail);
}

TEST(every_canonical_humaneval_solution_passes) {
  /* All 164 in the normal build; a sample in the sanitizer build. */
  int64_t limit = test_scaled(164, 16);
  ag_sandbox_limits l = ag_sandbox_defaults();
  int64_t verified = 0, total = 0;
  records_seen = 0;
  double t0 = ag_time_seconds();
  CHECK_OK(
      ag_dataset_check("humaneval", HUMANEVAL, limit, &l, count_record, NULL, &verified, &total));
  double seconds = ag_time_seconds() - t0;
  CHECK_MSG(total == limit, "%lld records", (long long)total);
  CHECK_MSG(verified == total, "verified %lld/%lld", (long long)verified, (long long)total);
  CHECK(records_seen == total);
  fprintf(stderr, "     %lld HumanEval programs in %.1f s (%d threads)\n", (long long)total,
          seconds, ag_threads_get());
}

static ag_task load_one(const char *id) {
  ag_task *tasks = NULL, found = {0};
  int64_t n = 0;
  CHECK_OK(ag_dataset_load("humaneval", HUMANEVAL, 0, &tasks, &n));
  CHECK(n == 164);
  for (int64_t i = 0; i < n; i++) {
    if (!strcmp(tasks[i].id, id))
      found = tasks[i];
    else
      ag_task_clear(&tasks[i]);
  }
  free(tasks);
  CHECK_MSG(found.problem != NULL, "no task %s", id);
  return found;
}

static const char *kind_of(const ag_verdict *v) {
  json_t *k = v->diagnostics ? json_object_get(v->diagnostics, "kind") : NULL;
  return json_is_string(k) ? json_string_value(k) : "";
}

TEST(a_corrupted_solution_fails_on_an_assertion) {
  ag_task t = load_one("humaneval/0");
  if (!t.answer) return;
  const ag_task_family *f = &ag_task_family_humaneval;
  ag_verdict v = {0};
  CHECK_OK(f->verify(&t, t.answer, &v));
  CHECK(v.correct && !strcmp(kind_of(&v), "correct"));
  ag_verdict_clear(&v);
  /* "return True" -> "return False": runs, answers wrongly. */
  char *bad = strdup(t.answer);
  char *p = strstr(bad, "return True");
  CHECK(p != NULL);
  if (p) memcpy(p, "return 1==0", 11);
  CHECK_OK(f->verify(&t, bad, &v));
  CHECK(!v.correct && v.parsed);
  CHECK_MSG(!strcmp(kind_of(&v), "failing_test"), "kind %s", kind_of(&v));
  json_t *a = json_object_get(v.diagnostics, "failing_assertion");
  CHECK(json_is_string(a) && !strncmp(json_string_value(a), "assert candidate(", 17));
  /* Localised feedback quotes the failing check and never the solution. */
  ag_rng rng;
  ag_rng_seed(&rng, 1);
  char *fb = NULL;
  CHECK_OK(f->feedback(&t, &v, AG_FEEDBACK_LOCALISED, AG_PHRASING_TRAIN, &rng, &fb));
  CHECK(fb && json_is_string(a) && strstr(fb, json_string_value(a)));
  CHECK(fb && !f->leaks(&t, fb));
  free(fb);
  CHECK_OK(f->feedback(&t, &v, AG_FEEDBACK_DIRECTIONAL, AG_PHRASING_HELDOUT, &rng, &fb));
  CHECK(fb && !strstr(fb, "assert") && !f->leaks(&t, fb));
  free(fb);
  ag_verdict_clear(&v);
  free(bad);
  ag_task_clear(&t);
}

TEST(attempts_in_the_forms_students_write) {
  ag_task t = load_one("humaneval/0");
  if (!t.answer) return;
  const ag_task_family *f = &ag_task_family_humaneval;
  const char *canonical = json_string_value(json_object_get(t.data, "canonical_solution"));
  ag_verdict v = {0};
  /* The body alone, its first line trimmed as ag_task_extract_attempt does. */
  const char *body = canonical;
  while (*body == ' ' || *body == '\n') body++;
  CHECK_OK(f->verify(&t, body, &v));
  CHECK_MSG(v.correct, "trimmed body: %s", kind_of(&v));
  ag_verdict_clear(&v);
  /* The body fully dedented. */
  CHECK_OK(f->verify(&t,
                     "for i in range(len(numbers)):\n"
                     "    for j in range(i + 1, len(numbers)):\n"
                     "        if abs(numbers[i] - numbers[j]) < threshold:\n"
                     "            return True\n"
                     "return False\n",
                     &v));
  CHECK_MSG(v.correct, "dedented body: %s", kind_of(&v));
  ag_verdict_clear(&v);
  /* A complete function in a fenced block, without the prompt's import. */
  CHECK_OK(f->verify(&t,
                     "Here it is:\n```python\ndef has_close_elements(numbers, threshold):\n"
                     "    s = sorted(numbers)\n"
                     "    return any(b - a < threshold for a, b in zip(s, s[1:]))\n```\n",
                     &v));
  CHECK_MSG(v.correct, "fenced function: %s", kind_of(&v));
  ag_verdict_clear(&v);
  /* Broken forms. */
  CHECK_OK(f->verify(&t, "def has_close_elements(numbers, threshold)\n    return True\n", &v));
  CHECK(!v.correct && !v.parsed && !strcmp(kind_of(&v), "syntax_error"));
  ag_verdict_clear(&v);
  CHECK_OK(f->verify(&t, "   \n", &v));
  CHECK(!v.correct && !strcmp(kind_of(&v), "unparsed"));
  ag_verdict_clear(&v);
  CHECK_OK(f->verify(&t, "return numbers.missing_method()\n", &v));
  CHECK(!v.correct && !strcmp(kind_of(&v), "runtime_error"));
  CHECK(json_is_string(json_object_get(v.diagnostics, "failing_assertion")));
  ag_verdict_clear(&v);
  /* Exiting "successfully" before the tests run is not a pass. */
  CHECK_OK(f->verify(&t, "import sys\nsys.exit(0)\n", &v));
  CHECK_MSG(!v.correct && !strcmp(kind_of(&v), "no_result"), "kind %s", kind_of(&v));
  ag_verdict_clear(&v);
  /* Nor is printing what a pass prints. */
  CHECK_OK(f->verify(
      &t, "import sys\nprint('agora-humaneval-passed-0000000000000000')\nsys.exit(0)\n", &v));
  CHECK(!v.correct);
  ag_verdict_clear(&v);
  ag_task_clear(&t);
}

TEST(leaks_are_the_solutions_lines_not_the_prompts) {
  ag_task t = load_one("humaneval/0");
  if (!t.answer) return;
  const ag_task_family *f = &ag_task_family_humaneval;
  CHECK(f->leaks(&t, "Try this:    distance = abs(elem - elem2)"));
  CHECK(f->leaks(&t, t.answer));
  CHECK(!f->leaks(&t, "Compare every pair of numbers and check their distance."));
  /* The signature is in the prompt: not a secret. */
  CHECK(!f->leaks(&t, "def has_close_elements(numbers: List[float], threshold: float) -> bool:"));
  CHECK(!f->leaks(&t, "return False"));
  char *answer = NULL;
  CHECK_OK(f->solve(&t, &answer));
  ag_verdict v = {0};
  CHECK_OK(f->verify(&t, answer, &v));
  CHECK(v.correct);
  ag_verdict_clear(&v);
  free(answer);
  ag_task_clear(&t);
}

TEST(shards_give_the_signature_first_then_the_description) {
  ag_task t = load_one("humaneval/0");
  if (!t.answer) return;
  CHECK_OK(ag_task_family_humaneval.shard(&t));
  CHECK(t.shard_count >= 3);
  if (t.shard_count >= 3) {
    CHECK(strstr(t.shards[0].text, "def has_close_elements(") && t.shards[0].required);
    CHECK(!strstr(t.shards[0].text, "Check if in given list"));
    CHECK(strstr(t.shards[1].text, "Check if in given list") && t.shards[1].required);
    CHECK(strstr(t.shards[t.shard_count - 1].text, ">>> has_close_elements") &&
          !t.shards[t.shard_count - 1].required);
  }
  int count = t.shard_count;
  CHECK_OK(ag_task_family_humaneval.shard(&t)); /* again: the same shards, not twice as many */
  CHECK(t.shard_count == count);
  ag_task_clear(&t);
}

TEST(no_child_is_left_unreaped) {
  errno = 0;
  CHECK(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD);
}

int main(void) {
  RUN(a_program_runs_and_its_output_comes_back);
  RUN(exit_status_and_signals_are_reported);
  RUN(stdin_is_empty_and_the_environment_minimal);
  RUN(output_is_truncated_without_blocking_the_program);
  RUN(an_endless_loop_is_killed_at_the_wall_limit);
  RUN(the_cpu_limit_stops_a_busy_program);
  RUN(a_memory_bomb_fails_within_the_limit);
  RUN(a_fork_bomb_is_contained);
  RUN(a_killed_caller_takes_its_sandbox_along);
  RUN(the_network_is_unreachable_in_its_own_namespace);
  RUN(the_folder_is_private_and_removed);
  RUN(a_file_size_bomb_fails);
  RUN(every_canonical_humaneval_solution_passes);
  RUN(a_corrupted_solution_fails_on_an_assertion);
  RUN(attempts_in_the_forms_students_write);
  RUN(leaks_are_the_solutions_lines_not_the_prompts);
  RUN(shards_give_the_signature_first_then_the_description);
  RUN(no_child_is_left_unreaped);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", test_tmpdir());
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", test_tmpdir());
  TEST_MAIN_END();
}
