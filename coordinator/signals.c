#include "coordinator/signals.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t pending_signal;
static volatile sig_atomic_t launcher_kill;
static volatile sig_atomic_t interrupts;
static bool under_mpiexec, announce_stop;

static const int stop_signals[] = {SIGTERM, SIGUSR1, SIGUSR2, SIGINT};
enum { N_STOP_SIGNALS = sizeof stop_signals / sizeof stop_signals[0] };

/* Only async-signal-safe calls here (getppid, write, sigaction, raise). */
static void on_stop_signal(int sig, siginfo_t *info, void *uc)
{
    (void)uc;
    /* Ctrl-C after any stop request (a first Ctrl-C, or a SIGTERM) quits. */
    if (sig == SIGINT && (interrupts++ > 0 || pending_signal)) {
        static const char msg[] = "sotu: SIGINT after a stop request: quitting now (deltas on "
                                  "disk are kept; run again with --resume)\n";
        if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
            /* nothing to do: the process ends below either way */
        }
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        sigaction(SIGINT, &dfl, NULL);
        raise(SIGINT);
        return;
    }
    if (sig == SIGTERM && under_mpiexec && info && info->si_code == SI_USER &&
        info->si_pid == getppid())
        launcher_kill = 1;
    if (!pending_signal) {
        pending_signal = sig;
        if (announce_stop) {
            static const char msg[] = "sotu: stop requested: finishing the running task, then "
                                      "writing the checkpoint (Ctrl-C again to quit at once)\n";
            if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
                /* the log says it again once the task is done */
            }
        }
    }
}

void sotu_signals_install(bool announce)
{
    pending_signal = 0;
    launcher_kill = 0;
    interrupts = 0;
    announce_stop = announce;
    const char *hnp = getenv("OMPI_MCA_orte_hnp_uri");
    under_mpiexec = hnp && *hnp;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_stop_signal;
    sa.sa_flags = SA_RESTART | SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < N_STOP_SIGNALS; i++)
        sigaction(stop_signals[i], &sa, NULL);
}

void sotu_signals_restore(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < N_STOP_SIGNALS; i++)
        sigaction(stop_signals[i], &sa, NULL);
}

int sotu_signals_pending(void)
{
    return pending_signal;
}

bool sotu_signals_stop_requested(void)
{
    return pending_signal != 0;
}

bool sotu_signals_launcher_kill(void)
{
    return launcher_kill != 0;
}

/* A non-negative number from the environment, or fallback. */
static double env_seconds(const char *name, double fallback)
{
    const char *v = getenv(name);
    if (v && *v) {
        char *end;
        double g = strtod(v, &end);
        if (!*end && g >= 0)
            return g;
    }
    return fallback;
}

double sotu_signals_kill_timeout(void)
{
    return env_seconds("OMPI_MCA_odls_base_sigkill_timeout", 1.0);
}

double sotu_signals_grace(int sig)
{
    return env_seconds("SOTU_STOP_GRACE", sig == SIGUSR1 ? 60.0 : 10.0);
}

const char *sotu_signals_name(int sig)
{
    switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2 (a stop forwarded by sotu-mpiexec)";
    case SIGINT: return "SIGINT";
    default: return "a signal";
    }
}

void sotu_signals_raise_for_test(int sig)
{
    pending_signal = sig;
}
