/* Rendering a gnuplot script: reports always write their script (and the
 * CSV it reads); gnuplot turns it into the picture when it is installed
 * (scripts/install-deps.sh installs gnuplot-nox). A missing or failing
 * gnuplot is a warning, never an error: the numbers are already written. */
#include "agora/base.h"

#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

bool ag_plot_render(const char *dir, const char *script) {
  fflush(NULL); /* the child must not flush our buffers a second time */
  pid_t pid = fork();
  if (pid < 0) {
    ag_warn("cannot start gnuplot: %s/%s written, not rendered", dir, script);
    return false;
  }
  if (pid == 0) {
    if (chdir(dir) != 0) _exit(126);
    if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(126);
    execlp("gnuplot", "gnuplot", script, (char *)NULL);
    _exit(127);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    ag_warn("gnuplot %s: %s/%s written, not rendered",
            WIFEXITED(status) && WEXITSTATUS(status) == 127 ? "is not installed" : "failed", dir,
            script);
    return false;
  }
  return true;
}
