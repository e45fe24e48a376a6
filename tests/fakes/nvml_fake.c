/*
 * nvml_fake.c -- a stand-in for libnvidia-ml.so.1 (NVIDIA Management Library) for energybench tests.
 *
 * The tests compile this file with gcc into DIR/libnvidia-ml.so.1 and run the REAL pynvml
 * (nvidia-ml-py) in a subprocess with LD_LIBRARY_PATH=DIR, so energybench's NVML meter goes through
 * exactly the code path it uses against a real driver: pynvml's CDLL("libnvidia-ml.so.1"), its ctypes
 * signatures and structs, and its error mapping. Only the hardware edge is faked.
 *
 * Signatures follow nvml.h as mirrored by pynvml (nvidia-ml-py 13.x): every function returns an
 * nvmlReturn_t (int), handles are opaque pointers, strings are written into caller buffers.
 *
 * Behaviour is driven by environment variables (read at nvmlInit*):
 *   FAKE_NVML_INIT_RET          return code of nvmlInit* (e.g. 4 = NO_PERMISSION, 9 = DRIVER_NOT_LOADED)
 *   FAKE_NVML_COUNT             number of GPUs (default 1)
 *   FAKE_NVML_CALL_LOG          a file to which every successful nvmlInit* appends "init" and every
 *                               nvmlShutdown "shutdown" (one line each): tests count them
 *   FAKE_NVML_DRIVER            driver version string (default "550.54.15")
 *   per GPU i (0-based):
 *   FAKE_NVML_<i>_MODE          counter | instant | average | none   (default counter)
 *       counter: nvmlDeviceGetTotalEnergyConsumption works (Volta+), instant and average power too
 *       instant: energy counter -> NVML_ERROR_NOT_SUPPORTED; FieldValues(POWER_INSTANT) and
 *                nvmlDeviceGetPowerUsage work
 *       average: only nvmlDeviceGetPowerUsage works (FieldValues returns the field with
 *                nvmlReturn = NOT_SUPPORTED)
 *       none:    every power/energy query -> NVML_ERROR_NOT_SUPPORTED
 *   FAKE_NVML_<i>_POWER_MW      constant power in milliwatts (default 300000 = 300 W)
 *   FAKE_NVML_<i>_PERIOD_MS     energy-counter update period in ms (default 100)
 *   FAKE_NVML_<i>_BASE_MJ       counter value at CLOCK_MONOTONIC 0, in mJ ("since driver load";
 *                               default 987654321)
 *   FAKE_NVML_<i>_NAME          device name (default "NVIDIA H100 80GB HBM3")
 *   FAKE_NVML_<i>_LOST_AFTER_MS after this many ms since the first nvmlInit every call on the
 *                               device returns NVML_ERROR_GPU_IS_LOST (default: never)
 *   FAKE_NVML_<i>_AUX           "unsupported": clocks/temperature/pstate/reasons/memory return
 *                               NVML_ERROR_NOT_SUPPORTED (default: supported)
 *   FAKE_NVML_<i>_REASONS       clocks event (throttle) reasons bit mask (default 0)
 *
 * The energy counter is an analytic step function of CLOCK_MONOTONIC (the clock behind Python's
 * time.monotonic_ns() on Linux):
 *     E_mJ(t) = BASE_MJ + (POWER_MW * PERIOD_MS / 1000) * floor(t / PERIOD)
 * i.e. it accumulates POWER_MW exactly but only refreshes every PERIOD_MS, like the real counter
 * (which updates every ~20-100 ms: NVML API Reference, nvmlDeviceGetTotalEnergyConsumption). Choose POWER_MW * PERIOD_MS as a
 * multiple of 1000 so that each step is a whole number of millijoules.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int nvmlReturn_t;

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NO_PERMISSION 4
#define NVML_ERROR_NOT_FOUND 6
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_DRIVER_NOT_LOADED 9
#define NVML_ERROR_GPU_IS_LOST 15
#define NVML_ERROR_ARGUMENT_VERSION_MISMATCH 25
#define NVML_ERROR_UNKNOWN 999

#define NVML_CLOCK_GRAPHICS 0
#define NVML_CLOCK_SM 1
#define NVML_CLOCK_MEM 2
#define NVML_CLOCK_VIDEO 3

#define NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION 83
#define NVML_FI_DEV_POWER_AVERAGE 185
#define NVML_FI_DEV_POWER_INSTANT 186

#define NVML_VALUE_TYPE_UNSIGNED_INT 1
#define NVML_VALUE_TYPE_UNSIGNED_LONG_LONG 3

#define MAX_GPUS 8

typedef union {
    double dVal;
    unsigned int uiVal;
    unsigned long ulVal;
    unsigned long long ullVal;
    long long sllVal;
    int siVal;
    unsigned short usVal;
} nvmlValue_t;

/* Same layout as pynvml.c_nvmlFieldValue_t. */
typedef struct {
    uint32_t fieldId;
    uint32_t scopeId;
    int64_t timestamp;
    int64_t latencyUsec;
    int valueType;
    nvmlReturn_t nvmlReturn;
    nvmlValue_t value;
} nvmlFieldValue_t;

typedef struct {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_t;

typedef struct {
    unsigned int version;
    int sensorType;
    int temperature;
} nvmlTemperature_v1_t;

enum mode { MODE_COUNTER, MODE_INSTANT, MODE_AVERAGE, MODE_NONE };

typedef struct fake_gpu {
    int index;
    enum mode mode;
    long long power_mw;
    long long period_ms;
    unsigned long long base_mj;
    long long lost_after_ms; /* < 0: never */
    int aux_supported;
    unsigned long long reasons;
    char name[96];
    char uuid[96];
} fake_gpu;

typedef fake_gpu *nvmlDevice_t;

static fake_gpu g_gpus[MAX_GPUS];
static int g_count = 0;
static int g_refcount = 0;
static int g_configured = 0;
static int64_t g_init_ns = 0;
static char g_driver[64] = "550.54.15";

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static const char *env_i(int i, const char *key) {
    char name[64];
    snprintf(name, sizeof name, "FAKE_NVML_%d_%s", i, key);
    return getenv(name);
}

static long long env_ll(const char *value, long long dflt) {
    return value && *value ? strtoll(value, NULL, 10) : dflt;
}

static void configure(void) {
    const char *v;
    g_count = (int)env_ll(getenv("FAKE_NVML_COUNT"), 1);
    if (g_count < 0) g_count = 0;
    if (g_count > MAX_GPUS) g_count = MAX_GPUS;
    if ((v = getenv("FAKE_NVML_DRIVER")) && *v) snprintf(g_driver, sizeof g_driver, "%s", v);
    for (int i = 0; i < g_count; i++) {
        fake_gpu *g = &g_gpus[i];
        memset(g, 0, sizeof *g);
        g->index = i;
        v = env_i(i, "MODE");
        g->mode = MODE_COUNTER;
        if (v && strcmp(v, "instant") == 0) g->mode = MODE_INSTANT;
        else if (v && strcmp(v, "average") == 0) g->mode = MODE_AVERAGE;
        else if (v && strcmp(v, "none") == 0) g->mode = MODE_NONE;
        g->power_mw = env_ll(env_i(i, "POWER_MW"), 300000);
        g->period_ms = env_ll(env_i(i, "PERIOD_MS"), 100);
        if (g->period_ms <= 0) g->period_ms = 100;
        g->base_mj = (unsigned long long)env_ll(env_i(i, "BASE_MJ"), 987654321LL);
        g->lost_after_ms = env_ll(env_i(i, "LOST_AFTER_MS"), -1);
        v = env_i(i, "AUX");
        g->aux_supported = !(v && strcmp(v, "unsupported") == 0);
        g->reasons = (unsigned long long)env_ll(env_i(i, "REASONS"), 0);
        v = env_i(i, "NAME");
        snprintf(g->name, sizeof g->name, "%s", v && *v ? v : "NVIDIA H100 80GB HBM3");
        snprintf(g->uuid, sizeof g->uuid, "GPU-fa4e0000-0000-4000-8000-%012d", i);
    }
    g_configured = 1;
}

/* ---------------------------------------------------------------- init / shutdown / errors */

static void log_call(const char *what) {
    const char *path = getenv("FAKE_NVML_CALL_LOG");
    if (!path || !*path) return;
    FILE *f = fopen(path, "a");
    if (!f) return;
    fprintf(f, "%s\n", what);
    fclose(f);
}

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    long long ret = env_ll(getenv("FAKE_NVML_INIT_RET"), 0);
    if (ret != NVML_SUCCESS) return (nvmlReturn_t)ret;
    if (!g_configured) {
        configure();
        g_init_ns = now_ns();
    }
    g_refcount++;
    log_call("init");
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
nvmlReturn_t nvmlInit(void) { return nvmlInitWithFlags(0); }

nvmlReturn_t nvmlShutdown(void) {
    if (g_refcount <= 0) return NVML_ERROR_UNINITIALIZED;
    g_refcount--;
    log_call("shutdown");
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case 0: return "Success";
    case 1: return "Uninitialized";
    case 2: return "Invalid Argument";
    case 3: return "Not Supported";
    case 4: return "Insufficient Permissions";
    case 5: return "Already Initialized";
    case 6: return "Not Found";
    case 7: return "Insufficient Size";
    case 9: return "Driver Not Loaded";
    case 12: return "NVML Shared Library Not Found";
    case 13: return "Function Not Found";
    case 15: return "GPU is lost";
    case 18: return "RM has detected an NVML/RM version mismatch.";
    case 21: return "No data";
    case 25: return "Argument version mismatch";
    case 27: return "Not Ready";
    case 28: return "GPU not found";
    default: return "Unknown Error";
    }
}

/* ---------------------------------------------------------------- system */

static nvmlReturn_t put_string(char *buf, unsigned int length, const char *value) {
    if (!buf) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(value) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(buf, value, strlen(value) + 1);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    if (g_refcount <= 0) return NVML_ERROR_UNINITIALIZED;
    return put_string(version, length, g_driver);
}

nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length) {
    char buf[80];
    if (g_refcount <= 0) return NVML_ERROR_UNINITIALIZED;
    snprintf(buf, sizeof buf, "12.%s", g_driver);
    return put_string(version, length, buf);
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *version) {
    if (g_refcount <= 0) return NVML_ERROR_UNINITIALIZED;
    if (!version) return NVML_ERROR_INVALID_ARGUMENT;
    *version = 12040;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *version) { return nvmlSystemGetCudaDriverVersion(version); }

/* ---------------------------------------------------------------- devices */

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    if (g_refcount <= 0) return NVML_ERROR_UNINITIALIZED;
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    *count = (unsigned int)g_count;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount(unsigned int *count) { return nvmlDeviceGetCount_v2(count); }

/* Common checks for every per-device call: initialised, valid handle, GPU not lost. */
static nvmlReturn_t check(nvmlDevice_t d) {
    if (g_refcount <= 0) return NVML_ERROR_UNINITIALIZED;
    if (!d || d < &g_gpus[0] || d >= &g_gpus[g_count]) return NVML_ERROR_INVALID_ARGUMENT;
    if (d->lost_after_ms >= 0 && now_ns() - g_init_ns >= d->lost_after_ms * 1000000LL)
        return NVML_ERROR_GPU_IS_LOST;
    return NVML_SUCCESS;
}

#define CHECK(d)                          \
    do {                                  \
        nvmlReturn_t r_ = check(d);       \
        if (r_ != NVML_SUCCESS) return r_; \
    } while (0)

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (g_refcount <= 0) return NVML_ERROR_UNINITIALIZED;
    if (!device || index >= (unsigned int)g_count) return NVML_ERROR_INVALID_ARGUMENT;
    CHECK(&g_gpus[index]);
    *device = &g_gpus[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device) {
    return nvmlDeviceGetHandleByIndex_v2(index, device);
}

nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t d, unsigned int *index) {
    CHECK(d);
    *index = (unsigned int)d->index;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int length) {
    CHECK(d);
    return put_string(name, length, d->name);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned int length) {
    CHECK(d);
    return put_string(uuid, length, d->uuid);
}

nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t d, int *major, int *minor) {
    CHECK(d);
    *major = 9;
    *minor = 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t d, unsigned int *limit) {
    CHECK(d);
    *limit = 700000; /* mW */
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t d, unsigned int *limit) {
    return nvmlDeviceGetPowerManagementLimit(d, limit);
}

/* ---------------------------------------------------------------- power and energy */

static unsigned long long energy_mj(const fake_gpu *g) {
    long long step_mj = g->power_mw * g->period_ms / 1000;
    long long steps = now_ns() / (g->period_ms * 1000000LL);
    return g->base_mj + (unsigned long long)(step_mj * steps);
}

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t d, unsigned long long *energy) {
    CHECK(d);
    if (d->mode != MODE_COUNTER) return NVML_ERROR_NOT_SUPPORTED;
    *energy = energy_mj(d);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *power) {
    CHECK(d);
    if (d->mode == MODE_NONE) return NVML_ERROR_NOT_SUPPORTED;
    *power = (unsigned int)d->power_mw;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t d, int valuesCount, nvmlFieldValue_t *values) {
    CHECK(d);
    if (valuesCount < 0 || (valuesCount > 0 && !values)) return NVML_ERROR_INVALID_ARGUMENT;
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    for (int k = 0; k < valuesCount; k++) {
        nvmlFieldValue_t *f = &values[k];
        f->timestamp = (int64_t)wall.tv_sec * 1000000LL + wall.tv_nsec / 1000;
        f->latencyUsec = 0;
        f->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
        switch (f->fieldId) {
        case NVML_FI_DEV_POWER_INSTANT:
            if (d->mode == MODE_COUNTER || d->mode == MODE_INSTANT) {
                f->valueType = NVML_VALUE_TYPE_UNSIGNED_INT;
                f->value.uiVal = (unsigned int)d->power_mw;
                f->nvmlReturn = NVML_SUCCESS;
            }
            break;
        case NVML_FI_DEV_POWER_AVERAGE:
            if (d->mode != MODE_NONE) {
                f->valueType = NVML_VALUE_TYPE_UNSIGNED_INT;
                f->value.uiVal = (unsigned int)d->power_mw;
                f->nvmlReturn = NVML_SUCCESS;
            }
            break;
        case NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION:
            if (d->mode == MODE_COUNTER) {
                f->valueType = NVML_VALUE_TYPE_UNSIGNED_LONG_LONG;
                f->value.ullVal = energy_mj(d);
                f->nvmlReturn = NVML_SUCCESS;
            }
            break;
        default:
            break;
        }
    }
    return NVML_SUCCESS;
}

/* ---------------------------------------------------------------- auxiliary channels */

#define CHECK_AUX(d)                                          \
    do {                                                      \
        CHECK(d);                                             \
        if (!(d)->aux_supported) return NVML_ERROR_NOT_SUPPORTED; \
    } while (0)

nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t d, int type, unsigned int *clock) {
    CHECK_AUX(d);
    switch (type) {
    case NVML_CLOCK_GRAPHICS:
    case NVML_CLOCK_SM: *clock = 1980; break;
    case NVML_CLOCK_MEM: *clock = 2619; break;
    case NVML_CLOCK_VIDEO: *clock = 1755; break;
    default: return NVML_ERROR_INVALID_ARGUMENT;
    }
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *temp) {
    CHECK_AUX(d);
    if (sensor != 0) return NVML_ERROR_INVALID_ARGUMENT;
    *temp = 47;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperatureV(nvmlDevice_t d, nvmlTemperature_v1_t *temp) {
    CHECK_AUX(d);
    if (!temp) return NVML_ERROR_INVALID_ARGUMENT;
    if (temp->version != 0x100000C) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    temp->temperature = 47;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPerformanceState(nvmlDevice_t d, int *pstate) {
    CHECK_AUX(d);
    *pstate = 0; /* P0 */
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerState(nvmlDevice_t d, int *pstate) { return nvmlDeviceGetPerformanceState(d, pstate); }

nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t d, unsigned long long *reasons) {
    CHECK_AUX(d);
    *reasons = d->reasons;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t d, unsigned long long *reasons) {
    return nvmlDeviceGetCurrentClocksEventReasons(d, reasons);
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *memory) {
    CHECK(d);
    if (!memory) return NVML_ERROR_INVALID_ARGUMENT;
    memory->total = 85520809984ULL; /* 79.6 GiB, as an H100 80GB reports */
    memory->used = d->aux_supported ? 1048576000ULL : 0ULL;
    memory->free = memory->total - memory->used;
    return NVML_SUCCESS;
}
