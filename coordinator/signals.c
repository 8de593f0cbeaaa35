#include "coordinator/signals.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t pending_signal;

static const int stop_signals[] = {SIGTERM, SIGUSR1, SIGINT};
enum { N_STOP_SIGNALS = sizeof stop_signals / sizeof stop_signals[0] };

static void on_stop_signal(int sig)
{
    if (!pending_signal)
        pending_signal = sig;
}

void sotu_signals_install(void)
{
    pending_signal = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;
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

double sotu_signals_grace(int sig)
{
    const char *v = getenv("SOTU_STOP_GRACE");
    if (v && *v) {
        char *end;
        double g = strtod(v, &end);
        if (!*end && g >= 0)
            return g;
    }
    return sig == SIGUSR1 ? 60.0 : 10.0;
}

void sotu_signals_raise_for_test(int sig)
{
    pending_signal = sig;
}
