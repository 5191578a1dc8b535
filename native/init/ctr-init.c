/*
 * ctr-init: a tiny PID 1 for containers, in the spirit of tini and docker-init.
 *
 *   ctr-init [-g] [-s] [--] program [args...]
 *
 * It runs `program` as its child and then, until that child exits:
 *   - forwards the signals it receives (SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
 *     SIGWINCH, SIGCONT and every other catchable asynchronous signal) to the child, or with
 *     -g to the child's process group (the child is made a group leader, and the foreground
 *     group of the terminal when stdin is one);
 *   - reaps every child it gets: as PID 1 of a pid namespace (or, with -s or when not PID 1,
 *     as a child subreaper) orphans are reparented to it, and a zombie is never left behind.
 * It exits with the child's exit status, or 128 + the signal number when the child was killed
 * by a signal (as tini and shells report it). When the program cannot be executed it exits
 * with 127 (not found) or 126 (any other exec failure), as shells do, after a message on
 * stderr.
 *
 * Why: a process that is PID 1 of a pid namespace gets no signal it has no handler for (so a
 * program that never expected to be PID 1 ignores `docker stop`'s SIGTERM), and orphans are
 * reparented to it, to stay zombies forever unless it waits for them.
 *
 * Signals are not handled by handlers: they are blocked and taken with sigtimedwait(2).
 * A blocked signal is queued even for PID 1 of a pid namespace (the kernel drops only signals
 * that would meet the default action), so this sees everything sent to it.
 *
 * Built static (cc -static -Os) so that it runs in any root filesystem; see build.sh.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef PR_SET_CHILD_SUBREAPER
#define PR_SET_CHILD_SUBREAPER 36
#endif

static const char *prog = "ctr-init";

static void usage(void) {
  fprintf(stderr,
          "usage: %s [-g] [-s] [--] program [args...]\n"
          "  -g  forward signals to the child's process group, not only the child\n"
          "  -s  register as a child subreaper (implied when not PID 1)\n",
          prog);
}

/* Signals that are about this process's own execution: never blocked, never forwarded. */
static int synchronous(int sig) {
  switch (sig) {
    case SIGFPE:
    case SIGILL:
    case SIGSEGV:
    case SIGBUS:
    case SIGABRT:
    case SIGTRAP:
    case SIGSYS:
    case SIGTTIN:
    case SIGTTOU:
      return 1;
    default:
      return 0;
  }
}

static int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

int main(int argc, char **argv) {
  int group = 0, subreaper = 0;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    } else if (strcmp(argv[i], "-g") == 0) {
      group = 1;
    } else if (strcmp(argv[i], "-s") == 0) {
      subreaper = 1;
    } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage();
      return 0;
    } else {
      fprintf(stderr, "%s: unknown option %s\n", prog, argv[i]);
      usage();
      return 2;
    }
  }
  if (i >= argc) {
    usage();
    return 2;
  }
  char **child_argv = argv + i;

  if (getpid() != 1 || subreaper) {
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
      fprintf(stderr, "%s: cannot become a child subreaper: %s\n", prog, strerror(errno));
      if (getpid() != 1) return 1;
    }
  }

  /* Block every asynchronous signal; the child gets the mask we started with. */
  sigset_t all, original;
  sigfillset(&all);
  for (int s = 1; s < NSIG; s++)
    if (synchronous(s)) sigdelset(&all, s);
  if (sigprocmask(SIG_SETMASK, &all, &original) != 0) {
    fprintf(stderr, "%s: sigprocmask: %s\n", prog, strerror(errno));
    return 1;
  }

  pid_t child = fork();
  if (child < 0) {
    fprintf(stderr, "%s: fork: %s\n", prog, strerror(errno));
    return 1;
  }
  if (child == 0) {
    if (group) {
      setpgid(0, 0);
      if (isatty(STDIN_FILENO)) {
        /* Become the terminal's foreground group, so ^C reaches the program. */
        struct sigaction ign = {0}, old;
        ign.sa_handler = SIG_IGN;
        sigaction(SIGTTOU, &ign, &old);
        if (tcsetpgrp(STDIN_FILENO, getpgrp()) != 0 && errno != ENOTTY && errno != ENXIO)
          fprintf(stderr, "%s: tcsetpgrp: %s\n", prog, strerror(errno));
        sigaction(SIGTTOU, &old, NULL);
      }
    }
    sigprocmask(SIG_SETMASK, &original, NULL);
    execvp(child_argv[0], child_argv);
    int err = errno;
    fprintf(stderr, "%s: exec %s: %s\n", prog, child_argv[0], strerror(err));
    _exit(err == ENOENT ? 127 : 126);
  }
  /* Both sides set the group, so a signal forwarded before the child ran still finds it. */
  if (group) setpgid(child, child);

  int child_status = -1;
  for (;;) {
    siginfo_t info;
    struct timespec timeout = {1, 0};
    int sig = sigtimedwait(&all, &info, &timeout);
    if (sig < 0) {
      if (errno != EAGAIN && errno != EINTR) {
        fprintf(stderr, "%s: sigtimedwait: %s\n", prog, strerror(errno));
        return 1;
      }
    } else if (sig != SIGCHLD) {
      if (kill(group ? -child : child, sig) != 0 && errno != ESRCH)
        fprintf(stderr, "%s: forwarding signal %d: %s\n", prog, sig, strerror(errno));
    }
    /* Reap everything that has exited: the child, and any orphan given to us. */
    for (;;) {
      int status;
      pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      if (pid == child) child_status = status;
    }
    if (child_status != -1) return exit_code(child_status);
  }
}
