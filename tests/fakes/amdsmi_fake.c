/*
 * amdsmi_fake.c -- a stand-in for libamd_smi.so (ROCm's AMD SMI library) for energybench tests.
 *
 * The tests compile it into DIR/lib/libamd_smi.so and run the REAL `amdsmi` Python package (AMD's
 * binding) in a subprocess with ROCM_PATH=DIR: the package's own loader finds the stand-in, binds
 * its symbols with its own ctypes signatures and structs, and maps its status codes to its own
 * exceptions. Only the hardware edge is faked.
 *
 * The binding binds every symbol of the library when it is imported, so the tests also compile a
 * generated file defining each other symbol the installed binding names, returning
 * AMDSMI_STATUS_NOT_SUPPORTED (what the real library answers for features a GPU lacks). The struct
 * layouts change between amdsmi releases, so the offsets of the fields written here come from the
 * installed binding's own ctypes structures, passed in with -D:
 *   POWER_INFO_SIZE, POWER_CURRENT_OFF, POWER_AVERAGE_OFF   amdsmi_power_info_t (current/average W, uint32)
 *   ASIC_INFO_SIZE, ASIC_MARKET_NAME_OFF                    amdsmi_asic_info_t (market_name, char[256])
 * (all -1 when unknown: those calls then answer NOT_SUPPORTED).
 *
 * Behaviour, from the environment (read at amdsmi_init):
 *   FAKE_AMDSMI_INIT_RET       status returned by amdsmi_init (e.g. 34 = DRIVER_NOT_LOADED)
 *   FAKE_AMDSMI_COUNT          number of GPUs (default 1), on one socket
 *   per GPU i:
 *   FAKE_AMDSMI_<i>_MODE       counter | power | none (default counter)
 *       counter: amdsmi_get_energy_count and amdsmi_get_power_info work
 *       power:   amdsmi_get_energy_count -> NOT_SUPPORTED; power info works
 *       none:    no energy; power info has 0xFFFF ("N/A") in its power fields
 *   FAKE_AMDSMI_<i>_POWER_W    constant power in W (default 300)
 *   FAKE_AMDSMI_<i>_RES_UJ     counter resolution in uJ per count (default 15.3)
 *   FAKE_AMDSMI_<i>_PERIOD_MS  counter refresh period in ms (default 1)
 *   FAKE_AMDSMI_<i>_LOST_AFTER_MS  after this many ms since amdsmi_init every call on the GPU
 *                              returns AMDSMI_STATUS_NOT_FOUND (default: never)
 *   FAKE_AMDSMI_<i>_NAME       market name (default "AMD Instinct MI300X")
 *
 * The accumulator is floor(E_uJ(t_q) / RES_UJ) + BASE with E_uJ = POWER_W * t_q * 1e6, t_q the
 * CLOCK_MONOTONIC time since amdsmi_init rounded down to the refresh period: the energy it gives
 * (counts x resolution) is the constant power's to within one count and one period.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef POWER_INFO_SIZE
#define POWER_INFO_SIZE -1
#define POWER_CURRENT_OFF -1
#define POWER_AVERAGE_OFF -1
#endif
#ifndef ASIC_INFO_SIZE
#define ASIC_INFO_SIZE -1
#define ASIC_MARKET_NAME_OFF -1
#endif

#define OK 0
#define INVAL 1
#define NOT_SUPPORTED 2
#define NOT_FOUND 31
#define NOT_INIT 32
#define BASE_COUNTS 123456789ULL
#define MAX_GPUS 8

typedef struct { int index; } gpu_t;

static gpu_t g_gpus[MAX_GPUS];
static int g_socket;
static int g_init;
static int g_count;
static double g_t0;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *env_gpu(int i, const char *key, const char *dflt) {
    char name[64];
    snprintf(name, sizeof name, "FAKE_AMDSMI_%d_%s", i, key);
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

static double env_gpu_f(int i, const char *key, double dflt) {
    const char *v = env_gpu(i, key, NULL);
    return v ? atof(v) : dflt;
}

static gpu_t *gpu_of(void *handle) {
    if (!g_init) return NULL;
    for (int i = 0; i < g_count; i++)
        if (handle == &g_gpus[i]) return &g_gpus[i];
    return NULL;
}

static int lost(gpu_t *g) {
    double after = env_gpu_f(g->index, "LOST_AFTER_MS", -1);
    return after >= 0 && (now_s() - g_t0) * 1000.0 >= after;
}

int amdsmi_init(uint64_t flags) {
    (void)flags;
    const char *ret = getenv("FAKE_AMDSMI_INIT_RET");
    if (ret && atoi(ret) != 0) return atoi(ret);
    const char *n = getenv("FAKE_AMDSMI_COUNT");
    g_count = n ? atoi(n) : 1;
    if (g_count > MAX_GPUS) g_count = MAX_GPUS;
    for (int i = 0; i < g_count; i++) g_gpus[i].index = i;
    g_t0 = now_s();
    g_init = 1;
    return OK;
}

int amdsmi_shut_down(void) {
    g_init = 0;
    return OK;
}

int amdsmi_get_socket_handles(uint32_t *count, void **handles) {
    if (!g_init) return NOT_INIT;
    if (!count) return INVAL;
    if (handles && *count >= 1) handles[0] = &g_socket;
    *count = 1;
    return OK;
}

int amdsmi_get_processor_handles(void *socket, uint32_t *count, void **handles) {
    if (!g_init) return NOT_INIT;
    if (socket != &g_socket || !count) return INVAL;
    if (handles)
        for (int i = 0; i < g_count && i < (int)*count; i++) handles[i] = &g_gpus[i];
    *count = (uint32_t)g_count;
    return OK;
}

int amdsmi_get_processor_type(void *handle, uint32_t *type) {
    if (!gpu_of(handle)) return INVAL;
    *type = 1; /* AMDSMI_PROCESSOR_TYPE_AMD_GPU */
    return OK;
}

int amdsmi_get_gpu_device_bdf(void *handle, uint64_t *bdf) {
    gpu_t *g = gpu_of(handle);
    if (!g) return INVAL;
    if (lost(g)) return NOT_FOUND;
    /* amdsmi_bdf_t: function 3 bits, device 5, bus 8, domain 48 (little-endian bit-fields) */
    uint64_t bus = 0x03 + 0x10 * (uint64_t)g->index;
    *bdf = (bus << 8);
    return OK;
}

int amdsmi_get_gpu_asic_info(void *handle, char *info) {
    gpu_t *g = gpu_of(handle);
    if (!g) return INVAL;
    if (ASIC_INFO_SIZE < 0) return NOT_SUPPORTED;
    memset(info, 0, ASIC_INFO_SIZE);
    strncpy(info + ASIC_MARKET_NAME_OFF, env_gpu(g->index, "NAME", "AMD Instinct MI300X"), 255);
    return OK;
}

int amdsmi_get_energy_count(void *handle, uint64_t *energy, float *resolution, uint64_t *timestamp) {
    gpu_t *g = gpu_of(handle);
    if (!g) return g_init ? INVAL : NOT_INIT;
    if (lost(g)) return NOT_FOUND;
    if (strcmp(env_gpu(g->index, "MODE", "counter"), "counter") != 0) return NOT_SUPPORTED;
    double res = env_gpu_f(g->index, "RES_UJ", 15.3);
    double period = env_gpu_f(g->index, "PERIOD_MS", 1) / 1000.0;
    double t = now_s() - g_t0;
    double tq = period > 0 ? period * (double)(uint64_t)(t / period) : t;
    double uj = env_gpu_f(g->index, "POWER_W", 300) * tq * 1e6;
    *energy = BASE_COUNTS + (uint64_t)(uj / (double)(float)res);
    *resolution = (float)res;
    *timestamp = (uint64_t)((g_t0 + tq) * 1e9);
    return OK;
}

int amdsmi_get_power_info(void *handle, char *info) {
    gpu_t *g = gpu_of(handle);
    if (!g) return g_init ? INVAL : NOT_INIT;
    if (lost(g)) return NOT_FOUND;
    if (POWER_INFO_SIZE < 0) return NOT_SUPPORTED;
    memset(info, 0, POWER_INFO_SIZE);
    uint32_t watts = (uint32_t)env_gpu_f(g->index, "POWER_W", 300);
    if (strcmp(env_gpu(g->index, "MODE", "counter"), "none") == 0) watts = 0xFFFF;
    memcpy(info + POWER_CURRENT_OFF, &watts, sizeof watts);
    memcpy(info + POWER_AVERAGE_OFF, &watts, sizeof watts);
    return OK;
}

int amdsmi_status_code_to_string(int status, const char **text) {
    (void)status;
    if (text) *text = "fake amdsmi status";
    return OK;
}
