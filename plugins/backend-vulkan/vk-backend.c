/* vk-backend.c — the "vulkan" backend plugin: loader and instance, device
 * enumeration and selection, buffers (device-local, with a host-visible
 * staging buffer for reads and writes), the pipeline cache, and the
 * llmh_backend_iface table. Graph recording lives in vk-graph.c.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk-internal.h"
#include "vk-shaders.h"

#define VK_STAGING_BYTES ((size_t)64 << 20) /* per copy chunk; one submit each */

/* ------------------------------------------------------------------------ */
/* Loader and instance                                                        */
/* ------------------------------------------------------------------------ */
static void icd_note(char *buf, size_t cap) {
    const char *icd = getenv("VK_ICD_FILENAMES");
    const char *drv = getenv("VK_DRIVER_FILES");
    if (drv && *drv)
        snprintf(buf, cap, "VK_DRIVER_FILES=%s", drv);
    else if (icd && *icd)
        snprintf(buf, cap, "VK_ICD_FILENAMES=%s", icd);
    else
        snprintf(buf, cap, "the system ICDs (/usr/share/vulkan/icd.d, /etc/vulkan/icd.d)");
}

static const char *vk_result_name(VkResult r) {
    switch (r) {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_FRAGMENTED_POOL: return "VK_ERROR_FRAGMENTED_POOL";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    default: return "VkResult error";
    }
}

/* Open the loader and create the instance once; on failure st->why says
 * what was tried. Returns the number of usable devices. */
static uint32_t vk_state_open(vk_state *st) {
    if (st->tried) return st->n_dev;
    st->tried = 1;
    char icd[300];
    icd_note(icd, sizeof icd);
    const char *names[] = {"libvulkan.so.1", "libvulkan.so"};
    for (size_t i = 0; i < 2 && !st->lib; i++) st->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!st->lib) {
        snprintf(st->why, sizeof st->why, "no Vulkan device found: the Vulkan loader (libvulkan.so.1) could not be opened: %s",
                 dlerror());
        return 0;
    }
    st->gipa = (PFN_vkGetInstanceProcAddr)dlsym(st->lib, "vkGetInstanceProcAddr");
    PFN_vkCreateInstance create =
        st->gipa ? (PFN_vkCreateInstance)st->gipa(VK_NULL_HANDLE, "vkCreateInstance") : NULL;
    if (!create) {
        snprintf(st->why, sizeof st->why, "no Vulkan device found: libvulkan.so.1 has no vkGetInstanceProcAddr/vkCreateInstance");
        return 0;
    }
    VkApplicationInfo app = {VK_STRUCTURE_TYPE_APPLICATION_INFO, NULL, "llmhost", 1, "llmhost", 1,
                             VK_API_VERSION_1_2};
    VkInstanceCreateInfo ci = {VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, NULL, 0, &app, 0, NULL, 0, NULL};
    VkResult r = create(&ci, NULL, &st->instance);
    if (r != VK_SUCCESS) {
        snprintf(st->why, sizeof st->why,
                 "no Vulkan device found: vkCreateInstance failed (%s) with loader libvulkan.so.1 and %s",
                 vk_result_name(r), icd);
        st->instance = VK_NULL_HANDLE;
        return 0;
    }
#define VK_LOAD_I(name)                                                                  \
    st->vi.name = (PFN_##name)st->gipa(st->instance, #name);                             \
    if (!st->vi.name) {                                                                  \
        snprintf(st->why, sizeof st->why, "no Vulkan device found: the loader lacks %s", #name); \
        return 0;                                                                        \
    }
    VK_INSTANCE_FUNCS(VK_LOAD_I)
#undef VK_LOAD_I
    uint32_t n = 0;
    r = st->vi.vkEnumeratePhysicalDevices(st->instance, &n, NULL);
    if (r != VK_SUCCESS || n == 0) {
        snprintf(st->why, sizeof st->why, "no Vulkan device found (loader libvulkan.so.1, %s)", icd);
        return 0;
    }
    VkPhysicalDevice *all = calloc(n, sizeof *all);
    st->devs = calloc(n, sizeof *st->devs);
    st->dev_queue = calloc(n, sizeof *st->dev_queue);
    if (!all || !st->devs || !st->dev_queue) {
        free(all);
        snprintf(st->why, sizeof st->why, "out of memory listing Vulkan devices");
        return 0;
    }
    if (st->vi.vkEnumeratePhysicalDevices(st->instance, &n, all) != VK_SUCCESS) n = 0;
    for (uint32_t i = 0; i < n; i++) {
        VkPhysicalDeviceProperties p;
        st->vi.vkGetPhysicalDeviceProperties(all[i], &p);
        if (p.apiVersion < VK_API_VERSION_1_2) continue;
        uint32_t nq = 0;
        st->vi.vkGetPhysicalDeviceQueueFamilyProperties(all[i], &nq, NULL);
        VkQueueFamilyProperties qf[32];
        if (nq > 32) nq = 32;
        st->vi.vkGetPhysicalDeviceQueueFamilyProperties(all[i], &nq, qf);
        int32_t best = -1;
        for (uint32_t q = 0; q < nq; q++) {
            if (!(qf[q].queueFlags & VK_QUEUE_COMPUTE_BIT)) continue;
            /* prefer a family that is compute (+transfer) without graphics */
            if (best < 0 || !(qf[q].queueFlags & VK_QUEUE_GRAPHICS_BIT)) best = (int32_t)q;
            if (!(qf[q].queueFlags & VK_QUEUE_GRAPHICS_BIT)) break;
        }
        if (best < 0) continue;
        st->devs[st->n_dev] = all[i];
        st->dev_queue[st->n_dev] = (uint32_t)best;
        st->n_dev++;
    }
    free(all);
    if (st->n_dev == 0)
        snprintf(st->why, sizeof st->why,
                 "no Vulkan device found: no Vulkan 1.2 device with a compute queue (loader libvulkan.so.1, %s)", icd);
    return st->n_dev;
}

static void vk_state_close(vk_state *st) {
    if (st->instance && st->vi.vkDestroyInstance) st->vi.vkDestroyInstance(st->instance, NULL);
    free(st->devs);
    free(st->dev_queue);
    if (st->lib) dlclose(st->lib);
    memset(st, 0, sizeof *st);
}

/* ------------------------------------------------------------------------ */
/* Plugin entry points                                                        */
/* ------------------------------------------------------------------------ */
static int type_rank(VkPhysicalDeviceType t);

/* 0 with a reason when no device exists; else a score by the best device:
 * a real GPU beats the cpu backend, a software rasterizer (lavapipe) does
 * not (it works, but the native cpu backend is faster on the same cores). */
static int32_t vk_probe(const llmh_host_api *host) {
    vk_state st;
    memset(&st, 0, sizeof st);
    uint32_t n = vk_state_open(&st);
    int best = 0;
    for (uint32_t i = 0; i < n; i++) {
        VkPhysicalDeviceProperties p;
        st.vi.vkGetPhysicalDeviceProperties(st.devs[i], &p);
        int rk = type_rank(p.deviceType);
        if (rk > best) best = rk;
    }
    if (n == 0) host->set_error("vulkan backend: %s", st.why);
    vk_state_close(&st);
    if (n == 0) return 0;
    return best >= 3 ? 90 : best == 2 ? 50 : 10;
}

static llmh_status vk_init(const llmh_host_api *host, void **state) {
    vk_state *st = host->alloc(sizeof *st);
    if (!st) return LLMH_ERR_NO_MEMORY;
    memset(st, 0, sizeof *st);
    st->host = host;
    *state = st;
    return LLMH_OK;
}

static void vk_fini(void *state) {
    vk_state *st = state;
    if (!st) return;
    const llmh_host_api *host = st->host;
    vk_state_close(st);
    host->free(st);
}

/* ------------------------------------------------------------------------ */
/* Devices                                                                    */
/* ------------------------------------------------------------------------ */
static int32_t vk_device_count(void *state) { return (int32_t)vk_state_open(state); }

static llmh_device_type map_type(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return LLMH_DEVICE_GPU_DISCRETE;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return LLMH_DEVICE_GPU_INTEGRATED;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return LLMH_DEVICE_CPU;
    default: return LLMH_DEVICE_OTHER;
    }
}

static uint64_t device_local_bytes(const VkPhysicalDeviceMemoryProperties *mp) {
    uint64_t total = 0;
    for (uint32_t i = 0; i < mp->memoryHeapCount; i++)
        if (mp->memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) total += mp->memoryHeaps[i].size;
    return total;
}

static int has_extension(vk_state *st, VkPhysicalDevice pd, const char *name) {
    uint32_t n = 0;
    if (st->vi.vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS || n == 0 || n > 4096) return 0;
    VkExtensionProperties *e = calloc(n, sizeof *e);
    int found = 0;
    if (e && st->vi.vkEnumerateDeviceExtensionProperties(pd, NULL, &n, e) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++) found = strcmp(e[i].extensionName, name) == 0;
    free(e);
    return found;
}

/* Free device-local memory from VK_EXT_memory_budget, or 0 (unknown). */
static uint64_t device_local_free(vk_state *st, VkPhysicalDevice pd) {
    if (!has_extension(st, pd, "VK_EXT_memory_budget")) return 0;
    VkPhysicalDeviceMemoryBudgetPropertiesEXT bud;
    memset(&bud, 0, sizeof bud);
    bud.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT;
    VkPhysicalDeviceMemoryProperties2 mp2 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2, &bud, {0}};
    st->vi.vkGetPhysicalDeviceMemoryProperties2(pd, &mp2);
    uint64_t free_bytes = 0;
    for (uint32_t i = 0; i < mp2.memoryProperties.memoryHeapCount && i < VK_MAX_MEMORY_HEAPS; i++)
        if ((mp2.memoryProperties.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) &&
            bud.heapBudget[i] > bud.heapUsage[i])
            free_bytes += bud.heapBudget[i] - bud.heapUsage[i];
    return free_bytes;
}

static void describe(vk_state *st, VkPhysicalDevice pd, llmh_device_info *out) {
    VkPhysicalDeviceSubgroupProperties sg = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES, NULL, 0, 0, 0, 0};
    VkPhysicalDeviceProperties2 p2 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, &sg, {0}};
    st->vi.vkGetPhysicalDeviceProperties2(pd, &p2);
    VkPhysicalDeviceVulkan11Features f11;
    VkPhysicalDeviceVulkan12Features f12;
    memset(&f11, 0, sizeof f11);
    memset(&f12, 0, sizeof f12);
    f11.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES;
    f12.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES;
    f11.pNext = &f12;
    VkPhysicalDeviceFeatures2 f2 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, &f11, {0}};
    st->vi.vkGetPhysicalDeviceFeatures2(pd, &f2);
    VkPhysicalDeviceMemoryProperties mp;
    st->vi.vkGetPhysicalDeviceMemoryProperties(pd, &mp);
    int sg_arith = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                   (sg.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT) && sg.subgroupSize >= 1 &&
                   sg.subgroupSize <= 64;
    memset(out, 0, sizeof *out);
    out->struct_size = sizeof *out;
    snprintf(out->name, sizeof out->name, "%.127s", p2.properties.deviceName);
    snprintf(out->description, sizeof out->description,
             "vulkan %u.%u.%u; fp16-storage=%s fp16-arith=%s int8-storage=%s subgroup=%u subgroup-arith=%s "
             "shared-mem=%uKiB device-mem=%lluMiB; kernels: 32-bit storage words, %s decode reduction",
             VK_API_VERSION_MAJOR(p2.properties.apiVersion), VK_API_VERSION_MINOR(p2.properties.apiVersion),
             VK_API_VERSION_PATCH(p2.properties.apiVersion), f11.storageBuffer16BitAccess ? "yes" : "no",
             f12.shaderFloat16 ? "yes" : "no", f12.storageBuffer8BitAccess ? "yes" : "no", sg.subgroupSize,
             sg_arith ? "yes" : "no", p2.properties.limits.maxComputeSharedMemorySize / 1024,
             (unsigned long long)(device_local_bytes(&mp) >> 20), sg_arith ? "subgroup" : "shared-memory");
    out->type = map_type(p2.properties.deviceType);
    out->memory_total = device_local_bytes(&mp);
    out->memory_free = device_local_free(st, pd);
    out->max_threads = 0;
}

static llmh_status vk_device_info(void *state, int32_t index, llmh_device_info *out) {
    vk_state *st = state;
    uint32_t n = vk_state_open(st);
    if (!out) return LLMH_ERR_INVALID_ARG;
    if (n == 0) {
        st->host->set_error("vulkan backend: %s", st->why);
        return LLMH_ERR_NOT_FOUND;
    }
    if (index < 0 || (uint32_t)index >= n) {
        st->host->set_error("vulkan backend: device index %d is outside 0..%u", index, n - 1);
        return LLMH_ERR_INVALID_ARG;
    }
    describe(st, st->devs[index], out);
    return LLMH_OK;
}

static int type_rank(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
    default: return 0;
    }
}

llmh_status vk_check(llmh_backend *be, VkResult r, const char *what) {
    if (r == VK_SUCCESS) return LLMH_OK;
    be->host->set_error("vulkan backend: %s failed: %s (%d)", what, vk_result_name(r), (int)r);
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY) return LLMH_ERR_NO_MEMORY;
    return LLMH_ERR_BACKEND;
}

static void vk_destroy(llmh_backend *be);

static llmh_status vk_create(void *state, const llmh_backend_params *params, llmh_backend **out) {
    vk_state *st = state;
    const llmh_host_api *host = st->host;
    if (!out) return LLMH_ERR_INVALID_ARG;
    *out = NULL;
    uint32_t n = vk_state_open(st);
    if (n == 0) {
        host->set_error("vulkan backend: %s", st->why);
        return LLMH_ERR_NOT_FOUND;
    }
    int32_t want = params ? params->device : -1;
    int host_map = 1, subgroups = 1;
    int64_t staging_kib = (int64_t)(VK_STAGING_BYTES >> 10);
    /* manifest [backend] keys: device = N overrides the params' index;
     * host_map = false always goes through the staging buffer (what a
     * discrete GPU does); staging_kib sizes the staging chunk */
    if (params && params->struct_size >= sizeof *params && params->options) {
        const llmh_value *v = llmh_kv_find(params->options, "device");
        int64_t d;
        if (v) {
            if (!llmh_value_as_i64(v, &d) || d < -1 || d > INT32_MAX) {
                host->set_error("vulkan backend: [backend] device must be an integer >= -1");
                return LLMH_ERR_CONFIG;
            }
            want = (int32_t)d;
        }
        if ((v = llmh_kv_find(params->options, "host_map"))) {
            if (v->type != LLMH_V_BOOL) {
                host->set_error("vulkan backend: [backend] host_map must be true or false");
                return LLMH_ERR_CONFIG;
            }
            host_map = v->v.b;
        }
        if ((v = llmh_kv_find(params->options, "subgroups"))) {
            if (v->type != LLMH_V_BOOL) {
                host->set_error("vulkan backend: [backend] subgroups must be true or false");
                return LLMH_ERR_CONFIG;
            }
            subgroups = v->v.b;
        }
        if ((v = llmh_kv_find(params->options, "staging_kib"))) {
            if (!llmh_value_as_i64(v, &staging_kib) || staging_kib < 4 || staging_kib > (1 << 20)) {
                host->set_error("vulkan backend: [backend] staging_kib must be an integer in 4..1048576");
                return LLMH_ERR_CONFIG;
            }
        }
    }
    int32_t idx = want;
    if (want >= 0) {
        if ((uint32_t)want >= n) {
            host->set_error("vulkan backend: device %d requested but only %u Vulkan device(s) exist", want, n);
            return LLMH_ERR_NOT_FOUND;
        }
    } else {
        int best_rank = -1;
        for (uint32_t i = 0; i < n; i++) {
            VkPhysicalDeviceProperties p;
            st->vi.vkGetPhysicalDeviceProperties(st->devs[i], &p);
            int rk = type_rank(p.deviceType);
            if (rk > best_rank) {
                best_rank = rk;
                idx = (int32_t)i;
            }
        }
    }
    llmh_backend *be = host->alloc(sizeof *be);
    if (!be) return LLMH_ERR_NO_MEMORY;
    memset(be, 0, sizeof *be);
    be->st = st;
    be->host = host;
    be->dev_index = idx;
    be->host_map = host_map;
    be->staging_bytes = (size_t)staging_kib << 10;
    be->pdev = st->devs[idx];
    be->queue_family = st->dev_queue[idx];
    if (pthread_mutex_init(&be->lock, NULL) != 0) {
        host->free(be);
        host->set_error("vulkan backend: cannot create a mutex");
        return LLMH_ERR_INTERNAL;
    }
    be->lock_ok = 1;
    st->vi.vkGetPhysicalDeviceProperties(be->pdev, &be->props);
    st->vi.vkGetPhysicalDeviceMemoryProperties(be->pdev, &be->memprops);
    VkPhysicalDeviceSubgroupProperties sgp = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES, NULL, 0, 0, 0, 0};
    VkPhysicalDeviceMaintenance3Properties m3 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES, &sgp, 0, 0};
    VkPhysicalDeviceProperties2 p2 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, &m3, {0}};
    st->vi.vkGetPhysicalDeviceProperties2(be->pdev, &p2);
    be->use_subgroups = subgroups && (sgp.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                        (sgp.supportedOperations & VK_SUBGROUP_FEATURE_BASIC_BIT) &&
                        (sgp.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT) && sgp.subgroupSize >= 1 &&
                        sgp.subgroupSize <= 64;
    be->max_alloc = m3.maxMemoryAllocationSize ? m3.maxMemoryAllocationSize : ((VkDeviceSize)1 << 31);
    be->max_range = be->props.limits.maxStorageBufferRange;
    be->align = be->props.limits.minStorageBufferOffsetAlignment ? be->props.limits.minStorageBufferOffsetAlignment : 256;
    if (be->props.limits.maxComputeWorkGroupInvocations < 256 || be->props.limits.maxComputeWorkGroupSize[0] < 256 ||
        be->props.limits.maxComputeSharedMemorySize < 16384) {
        host->set_error("vulkan backend: device %d (%.127s) allows %u invocations and %u bytes of shared memory per "
                        "workgroup; the shaders need 256 and 16384",
                        idx, be->props.deviceName, be->props.limits.maxComputeWorkGroupInvocations,
                        be->props.limits.maxComputeSharedMemorySize);
        pthread_mutex_destroy(&be->lock);
        host->free(be);
        return LLMH_ERR_UNSUPPORTED;
    }
    be->max_groups_x = be->props.limits.maxComputeWorkGroupCount[0];
    if (be->max_groups_x > 65535) be->max_groups_x = 65535;

    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, NULL, 0, be->queue_family, 1, &prio};
    VkDeviceCreateInfo dci = {VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, NULL, 0, 1, &qci, 0, NULL, 0, NULL, NULL};
    llmh_status s;
    VkResult r = st->vi.vkCreateDevice(be->pdev, &dci, NULL, &be->dev);
    if ((s = vk_check(be, r, "vkCreateDevice")) != LLMH_OK) {
        pthread_mutex_destroy(&be->lock);
        host->free(be);
        return s;
    }
#define VK_LOAD_D(name)                                                                      \
    be->vd.name = (PFN_##name)st->vi.vkGetDeviceProcAddr(be->dev, #name);                    \
    if (!be->vd.name) {                                                                      \
        host->set_error("vulkan backend: the driver lacks %s", #name);                       \
        if (be->vd.vkDestroyDevice) be->vd.vkDestroyDevice(be->dev, NULL);                   \
        pthread_mutex_destroy(&be->lock);                                                    \
        host->free(be);                                                                      \
        return LLMH_ERR_BACKEND;                                                             \
    }
    VK_DEVICE_FUNCS(VK_LOAD_D)
#undef VK_LOAD_D
    be->vd.vkGetDeviceQueue(be->dev, be->queue_family, 0, &be->queue);

    VkCommandPoolCreateInfo cpi = {VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO, NULL,
                                   VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT, be->queue_family};
    if ((s = vk_check(be, be->vd.vkCreateCommandPool(be->dev, &cpi, NULL, &be->cmd_pool), "vkCreateCommandPool")))
        goto fail;
    VkCommandBufferAllocateInfo cai = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, NULL, be->cmd_pool,
                                       VK_COMMAND_BUFFER_LEVEL_PRIMARY, 1};
    if ((s = vk_check(be, be->vd.vkAllocateCommandBuffers(be->dev, &cai, &be->cmd), "vkAllocateCommandBuffers")))
        goto fail;
    VkFenceCreateInfo fci = {VK_STRUCTURE_TYPE_FENCE_CREATE_INFO, NULL, 0};
    if ((s = vk_check(be, be->vd.vkCreateFence(be->dev, &fci, NULL, &be->fence), "vkCreateFence"))) goto fail;

    VkDescriptorSetLayoutBinding binds[VK_N_BINDINGS];
    for (uint32_t i = 0; i < VK_N_BINDINGS; i++) {
        binds[i].binding = i;
        binds[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
        binds[i].descriptorCount = 1;
        binds[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
        binds[i].pImmutableSamplers = NULL;
    }
    VkDescriptorSetLayoutCreateInfo dli = {VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO, NULL, 0, VK_N_BINDINGS,
                                           binds};
    if ((s = vk_check(be, be->vd.vkCreateDescriptorSetLayout(be->dev, &dli, NULL, &be->dsl),
                      "vkCreateDescriptorSetLayout")))
        goto fail;
    VkPushConstantRange pcr = {VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(vk_pc)};
    VkPipelineLayoutCreateInfo pli = {VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, NULL, 0, 1, &be->dsl, 1, &pcr};
    if ((s = vk_check(be, be->vd.vkCreatePipelineLayout(be->dev, &pli, NULL, &be->playout), "vkCreatePipelineLayout")))
        goto fail;
    if ((s = vk_buffer_create(be, be->staging_bytes, 0, 1, &be->staging))) goto fail;
    if ((s = vk_buffer_create(be, 256, 0, 1, &be->status))) goto fail;
    *out = be;
    return LLMH_OK;
fail:
    vk_destroy(be);
    return s;
}

static void vk_destroy(llmh_backend *be) {
    if (!be) return;
    if (be->dev) {
        be->vd.vkDeviceWaitIdle(be->dev);
        vk_graph_release(be);
        vk_buffer_destroy(be, be->staging);
        vk_buffer_destroy(be, be->scratch);
        vk_buffer_destroy(be, be->status);
        for (int s = 0; s < VK_SH_COUNT; s++) {
            for (uint32_t i = 0; i < be->n_pipes[s]; i++) be->vd.vkDestroyPipeline(be->dev, be->pipes[s][i], NULL);
            if (be->modules[s]) be->vd.vkDestroyShaderModule(be->dev, be->modules[s], NULL);
        }
        if (be->dpool) be->vd.vkDestroyDescriptorPool(be->dev, be->dpool, NULL);
        if (be->playout) be->vd.vkDestroyPipelineLayout(be->dev, be->playout, NULL);
        if (be->dsl) be->vd.vkDestroyDescriptorSetLayout(be->dev, be->dsl, NULL);
        if (be->fence) be->vd.vkDestroyFence(be->dev, be->fence, NULL);
        if (be->cmd_pool) be->vd.vkDestroyCommandPool(be->dev, be->cmd_pool, NULL);
        be->vd.vkDestroyDevice(be->dev, NULL);
    }
    if (be->lock_ok) pthread_mutex_destroy(&be->lock);
    be->host->free(be);
}

/* ------------------------------------------------------------------------ */
/* Buffers                                                                    */
/* ------------------------------------------------------------------------ */
static int32_t find_memory(const llmh_backend *be, uint32_t bits, VkMemoryPropertyFlags want) {
    for (uint32_t i = 0; i < be->memprops.memoryTypeCount; i++)
        if ((bits & (1u << i)) && (be->memprops.memoryTypes[i].propertyFlags & want) == want) return (int32_t)i;
    return -1;
}

llmh_status vk_buffer_create(llmh_backend *be, size_t size, uint32_t usage, int host_visible, llmh_buffer **out) {
    *out = NULL;
    if (size == 0) size = 4;
    VkDeviceSize asz = ((VkDeviceSize)size + 15) & ~(VkDeviceSize)15;
    if (asz > be->max_alloc) {
        be->host->set_error("vulkan backend: a buffer of %zu bytes exceeds the device's maxMemoryAllocationSize (%llu)",
                            size, (unsigned long long)be->max_alloc);
        return LLMH_ERR_NO_MEMORY;
    }
    llmh_buffer *b = be->host->alloc(sizeof *b);
    if (!b) return LLMH_ERR_NO_MEMORY;
    memset(b, 0, sizeof *b);
    b->magic = VK_BUFFER_MAGIC;
    b->size = size;
    b->alloc_size = asz;
    b->usage = usage;
    VkBufferCreateInfo bci = {VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, NULL, 0, asz,
                              VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                  VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                              VK_SHARING_MODE_EXCLUSIVE, 0, NULL};
    llmh_status s;
    if ((s = vk_check(be, be->vd.vkCreateBuffer(be->dev, &bci, NULL, &b->buf), "vkCreateBuffer"))) {
        be->host->free(b);
        return s;
    }
    VkMemoryRequirements req;
    be->vd.vkGetBufferMemoryRequirements(be->dev, b->buf, &req);
    const VkMemoryPropertyFlags hv = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    int32_t mt;
    if (host_visible) {
        mt = find_memory(be, req.memoryTypeBits, hv | VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
        if (mt < 0) mt = find_memory(be, req.memoryTypeBits, hv);
    } else {
        mt = find_memory(be, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
        if (mt < 0) mt = find_memory(be, req.memoryTypeBits, 0);
    }
    if (mt < 0) {
        be->vd.vkDestroyBuffer(be->dev, b->buf, NULL);
        be->host->free(b);
        be->host->set_error("vulkan backend: no suitable memory type for a %zu-byte buffer", size);
        return LLMH_ERR_BACKEND;
    }
    VkMemoryAllocateInfo mai = {VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, NULL, req.size, (uint32_t)mt};
    VkResult r = be->vd.vkAllocateMemory(be->dev, &mai, NULL, &b->mem);
    if (r != VK_SUCCESS) {
        be->vd.vkDestroyBuffer(be->dev, b->buf, NULL);
        be->host->free(b);
        be->host->set_error("vulkan backend: cannot allocate %zu bytes of %s memory: %s", size,
                            host_visible ? "host-visible" : "device-local", vk_result_name(r));
        return LLMH_ERR_NO_MEMORY;
    }
    if ((s = vk_check(be, be->vd.vkBindBufferMemory(be->dev, b->buf, b->mem, 0), "vkBindBufferMemory"))) {
        vk_buffer_destroy(be, b);
        return s;
    }
    /* map whenever the type is host-visible and coherent (always so on lavapipe) */
    if ((be->memprops.memoryTypes[mt].propertyFlags & hv) == hv && (host_visible || be->host_map)) {
        void *p = NULL;
        if (be->vd.vkMapMemory(be->dev, b->mem, 0, VK_WHOLE_SIZE, 0, &p) == VK_SUCCESS) b->map = p;
    }
    if (host_visible && !b->map) {
        vk_buffer_destroy(be, b);
        be->host->set_error("vulkan backend: cannot map a host-visible buffer");
        return LLMH_ERR_BACKEND;
    }
    *out = b;
    return LLMH_OK;
}

void vk_buffer_destroy(llmh_backend *be, llmh_buffer *b) {
    if (!b) return;
    b->magic = 0;
    if (b->map) be->vd.vkUnmapMemory(be->dev, b->mem);
    if (b->buf) be->vd.vkDestroyBuffer(be->dev, b->buf, NULL);
    if (b->mem) be->vd.vkFreeMemory(be->dev, b->mem, NULL);
    be->host->free(b);
}

static llmh_status vk_buffer_alloc(llmh_backend *be, size_t size, uint32_t usage, llmh_buffer **out) {
    if (!be || !out) return LLMH_ERR_INVALID_ARG;
    return vk_buffer_create(be, size, usage, 0, out);
}

static void vk_buffer_free(llmh_backend *be, llmh_buffer *buf) {
    if (!be || !buf || buf->magic != VK_BUFFER_MAGIC) return;
    pthread_mutex_lock(&be->lock); /* no graph or copy may be using it */
    be->vd.vkDeviceWaitIdle(be->dev);
    vk_buffer_destroy(be, buf);
    pthread_mutex_unlock(&be->lock);
}

/* One transfer through the staging buffer: submit and wait. */
static llmh_status staged_copy(llmh_backend *be, VkBuffer src, VkDeviceSize so, VkBuffer dst, VkDeviceSize dof,
                               VkDeviceSize n) {
    llmh_status s;
    VkCommandBufferBeginInfo bi = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO, NULL,
                                   VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT, NULL};
    if ((s = vk_check(be, be->vd.vkResetCommandBuffer(be->cmd, 0), "vkResetCommandBuffer"))) return s;
    if ((s = vk_check(be, be->vd.vkBeginCommandBuffer(be->cmd, &bi), "vkBeginCommandBuffer"))) return s;
    VkBufferCopy region = {so, dof, n};
    be->vd.vkCmdCopyBuffer(be->cmd, src, dst, 1, &region);
    VkMemoryBarrier mb = {VK_STRUCTURE_TYPE_MEMORY_BARRIER, NULL, VK_ACCESS_TRANSFER_WRITE_BIT,
                          VK_ACCESS_HOST_READ_BIT | VK_ACCESS_SHADER_READ_BIT};
    be->vd.vkCmdPipelineBarrier(be->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT,
                                VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0,
                                NULL, 0, NULL);
    if ((s = vk_check(be, be->vd.vkEndCommandBuffer(be->cmd), "vkEndCommandBuffer"))) return s;
    VkSubmitInfo si = {VK_STRUCTURE_TYPE_SUBMIT_INFO, NULL, 0, NULL, NULL, 1, &be->cmd, 0, NULL};
    if ((s = vk_check(be, be->vd.vkResetFences(be->dev, 1, &be->fence), "vkResetFences"))) return s;
    if ((s = vk_check(be, be->vd.vkQueueSubmit(be->queue, 1, &si, be->fence), "vkQueueSubmit"))) return s;
    return vk_check(be, be->vd.vkWaitForFences(be->dev, 1, &be->fence, VK_TRUE, UINT64_MAX), "vkWaitForFences");
}

static llmh_status check_range(llmh_backend *be, const llmh_buffer *buf, size_t offset, size_t n, const char *what) {
    if (!buf || buf->magic != VK_BUFFER_MAGIC) {
        be->host->set_error("vulkan backend: %s: %s", what, buf ? "not a buffer of this backend" : "NULL buffer");
        return LLMH_ERR_INVALID_ARG;
    }
    if (offset > buf->size || n > buf->size - offset) {
        be->host->set_error("vulkan backend: %s of %zu bytes at offset %zu exceeds the %zu-byte buffer", what, n,
                            offset, buf->size);
        return LLMH_ERR_INVALID_ARG;
    }
    return LLMH_OK;
}

static llmh_status vk_buffer_write(llmh_backend *be, llmh_buffer *buf, size_t offset, const void *src, size_t n) {
    llmh_status s;
    if (!be || (!src && n)) return LLMH_ERR_INVALID_ARG;
    if ((s = check_range(be, buf, offset, n, "buffer_write"))) return s;
    if (buf->map) {
        memcpy(buf->map + offset, src, n);
        return LLMH_OK;
    }
    const uint8_t *p = src;
    pthread_mutex_lock(&be->lock);
    while (n > 0) {
        size_t c = n < be->staging->size ? n : be->staging->size;
        memcpy(be->staging->map, p, c);
        if ((s = staged_copy(be, be->staging->buf, 0, buf->buf, offset, c))) break;
        p += c;
        offset += c;
        n -= c;
    }
    pthread_mutex_unlock(&be->lock);
    return s;
}

static llmh_status vk_buffer_read(llmh_backend *be, llmh_buffer *buf, size_t offset, void *dst, size_t n) {
    llmh_status s;
    if (!be || (!dst && n)) return LLMH_ERR_INVALID_ARG;
    if ((s = check_range(be, buf, offset, n, "buffer_read"))) return s;
    if (buf->map) {
        memcpy(dst, buf->map + offset, n);
        return LLMH_OK;
    }
    uint8_t *p = dst;
    pthread_mutex_lock(&be->lock);
    while (n > 0) {
        size_t c = n < be->staging->size ? n : be->staging->size;
        if ((s = staged_copy(be, buf->buf, offset, be->staging->buf, 0, c))) break;
        memcpy(p, be->staging->map, c);
        p += c;
        offset += c;
        n -= c;
    }
    pthread_mutex_unlock(&be->lock);
    return s;
}

/* ------------------------------------------------------------------------ */
/* Pipelines: one per (shader, specialization constants), created on first   */
/* use and kept for the backend's lifetime.                                   */
/* ------------------------------------------------------------------------ */
llmh_status vk_pipeline(llmh_backend *be, vk_shader sh, uint32_t c0, uint32_t c1, VkPipeline *out) {
    uint32_t key = c0 | (c1 << 16);
    for (uint32_t i = 0; i < be->n_pipes[sh]; i++)
        if (be->pipe_keys[sh][i] == key) {
            *out = be->pipes[sh][i];
            return LLMH_OK;
        }
    if (be->n_pipes[sh] >= VK_MAX_VARIANTS) {
        be->host->set_error("vulkan backend: too many variants of shader %s", vk_spirv_modules[sh].name);
        return LLMH_ERR_INTERNAL;
    }
    llmh_status s;
    if (!be->modules[sh]) {
        VkShaderModuleCreateInfo mci = {VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, NULL, 0,
                                        vk_spirv_modules[sh].size, (const uint32_t *)vk_spirv_modules[sh].code};
        if ((s = vk_check(be, be->vd.vkCreateShaderModule(be->dev, &mci, NULL, &be->modules[sh]), "vkCreateShaderModule")))
            return s;
    }
    uint32_t consts[2] = {c0, c1};
    VkSpecializationMapEntry ents[2] = {{0, 0, 4}, {1, 4, 4}};
    VkSpecializationInfo spec = {2, ents, sizeof consts, consts};
    VkPipelineShaderStageCreateInfo stage = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, NULL, 0,
                                             VK_SHADER_STAGE_COMPUTE_BIT, be->modules[sh], "main", &spec};
    VkComputePipelineCreateInfo ci = {VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO, NULL, 0, stage, be->playout,
                                      VK_NULL_HANDLE, -1};
    VkPipeline p;
    if ((s = vk_check(be, be->vd.vkCreateComputePipelines(be->dev, VK_NULL_HANDLE, 1, &ci, NULL, &p),
                      "vkCreateComputePipelines")))
        return s;
    be->pipes[sh][be->n_pipes[sh]] = p;
    be->pipe_keys[sh][be->n_pipes[sh]] = key;
    be->n_pipes[sh]++;
    *out = p;
    return LLMH_OK;
}

/* ------------------------------------------------------------------------ */
/* Interface                                                                  */
/* ------------------------------------------------------------------------ */
static int32_t vk_supports(llmh_backend *be, llmh_op op, llmh_dtype t0, llmh_dtype t1) {
    return be ? vk_op_supported(be, op, t0, t1) : 0;
}

static llmh_status vk_compute(llmh_backend *be, const llmh_graph *graph) {
    if (!be || !graph || (graph->n_nodes && !graph->nodes)) return LLMH_ERR_INVALID_ARG;
    pthread_mutex_lock(&be->lock);
    llmh_status s = vk_graph_compute(be, graph);
    pthread_mutex_unlock(&be->lock);
    return s;
}

static const llmh_backend_iface vk_iface = {
    sizeof(llmh_backend_iface),
    vk_device_count,
    vk_device_info,
    vk_create,
    vk_destroy,
    vk_supports,
    vk_buffer_alloc,
    NULL, /* buffer_wrap_host: the host allocates and writes */
    vk_buffer_free,
    NULL, /* buffer_host_ptr: buffers are device memory */
    vk_buffer_write,
    vk_buffer_read,
    NULL, /* weight_prepare: weights stay in their GGUF block layout */
    NULL,
    vk_compute,
};

LLMH_PLUGIN_DEFINE(LLMH_PLUGIN_BACKEND, "vulkan", "0.1.0", "MIT",
                   "Vulkan 1.2 compute backend (GLSL/SPIR-V, quantized weights dequantized in shaders)", 20,
                   vk_probe, vk_init, vk_fini, &vk_iface, NULL)
