/*
 * Stand-in for Intel Power Gadget's EnergyLib (macOS signature: GetMsrName takes char*), compiled
 * by the tests with gcc into a shared library and loaded through energybench's real ctypes binding.
 *
 * Behaviour, driven by environment variables read at IntelEnergyLibInitialize():
 *   ENERGYLIB_FAKE_P0_W      package power at initialisation, W (default 20)
 *   ENERGYLIB_FAKE_RAMP_W_S  package power slope, W/s (default 0): P(t) = P0 + RAMP * t
 *   ENERGYLIB_FAKE_NODES     number of packages (default 1)
 *   ENERGYLIB_FAKE_INIT_FAIL if set to 1, IntelEnergyLibInitialize returns false
 * Planes per node: "Processor" = P(t), "IA" = 0.6 P(t), "GT" = 0.1 P(t), "DRAM" = 3 W constant;
 * plus non-power MSRs "Frequency" (func 0), "Temperature" (2), "Package Power Limit" (3).
 * Time t is CLOCK_MONOTONIC seconds since initialisation, taken at each ReadSample(); cumulative
 * energy is the exact integral of the planes' power up to that instant. As in the real library,
 * GetPowerData fails until ReadSample has been called twice.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_MSRS 7

static const char *MSR_NAMES[N_MSRS] = {"Frequency", "Processor", "IA", "Temperature", "GT", "DRAM",
                                        "Package Power Limit"};
static const int MSR_FUNCS[N_MSRS] = {0, 1, 1, 2, 1, 1, 3};

static double p0_w = 20.0, ramp_w_s = 0.0, t_init = 0.0;
static double t_prev = 0.0, t_last = 0.0;
static int n_nodes = 1, n_samples = 0, initialised = 0;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double env_double(const char *name, double dflt) {
    const char *v = getenv(name);
    return (v && *v) ? strtod(v, NULL) : dflt;
}

/* Package energy since initialisation at t seconds: integral of P0 + RAMP*t. */
static double package_j(double t) { return p0_w * t + 0.5 * ramp_w_s * t * t; }

static double plane_j(int msr, double t) {
    switch (msr) {
    case 1: return package_j(t);
    case 2: return 0.6 * package_j(t);
    case 4: return 0.1 * package_j(t);
    case 5: return 3.0 * t;
    default: return 0.0;
    }
}

bool IntelEnergyLibInitialize(void) {
    const char *fail = getenv("ENERGYLIB_FAKE_INIT_FAIL");
    if (fail && strcmp(fail, "1") == 0) return false;
    p0_w = env_double("ENERGYLIB_FAKE_P0_W", 20.0);
    ramp_w_s = env_double("ENERGYLIB_FAKE_RAMP_W_S", 0.0);
    n_nodes = (int)env_double("ENERGYLIB_FAKE_NODES", 1.0);
    t_init = now_s();
    t_prev = t_last = 0.0;
    n_samples = 0;
    initialised = 1;
    return true;
}

void IntelEnergyLibShutdown(void) { initialised = 0; }

bool GetNumNodes(int *n) {
    if (!initialised) return false;
    *n = n_nodes;
    return true;
}

bool GetNumMsrs(int *n) {
    if (!initialised) return false;
    *n = N_MSRS;
    return true;
}

bool GetMsrName(int msr, char *name) {
    if (!initialised || msr < 0 || msr >= N_MSRS) return false;
    strcpy(name, MSR_NAMES[msr]);
    return true;
}

bool GetMsrFunc(int msr, int *func) {
    if (!initialised || msr < 0 || msr >= N_MSRS) return false;
    *func = MSR_FUNCS[msr];
    return true;
}

bool ReadSample(void) {
    if (!initialised) return false;
    t_prev = t_last;
    t_last = now_s() - t_init;
    n_samples++;
    return true;
}

bool GetPowerData(int node, int msr, double *results, int *n) {
    if (!initialised || node < 0 || node >= n_nodes || msr < 0 || msr >= N_MSRS) return false;
    if (n_samples < 2) return false; /* two ReadSample calls before data is valid */
    if (MSR_FUNCS[msr] == 1) {
        double e1 = plane_j(msr, t_last), e0 = plane_j(msr, t_prev);
        double dt = t_last - t_prev;
        results[0] = dt > 0 ? (e1 - e0) / dt : 0.0; /* average W since the previous sample */
        results[1] = e1;                             /* cumulative J */
        results[2] = e1 / 3.6;                       /* cumulative mWh */
        *n = 3;
        return true;
    }
    results[0] = MSR_FUNCS[msr] == 0 ? 3000.0 : (MSR_FUNCS[msr] == 2 ? 55.0 : 125.0);
    *n = 1;
    return true;
}
