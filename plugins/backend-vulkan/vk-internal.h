/* vk-internal.h — shared declarations of the vulkan backend.
 *
 * The Vulkan loader is opened at run time (libvulkan.so.1) and every entry
 * point is fetched through vkGetInstanceProcAddr/vkGetDeviceProcAddr into
 * the tables below, so the plugin itself has no link-time dependency on
 * Vulkan and fails with a message (not a dlopen error) where none exists.
 */
#ifndef LLMH_VK_INTERNAL_H
#define LLMH_VK_INTERNAL_H

#define VK_NO_PROTOTYPES
#include <pthread.h>
#include <vulkan/vulkan.h>

#include "llmh-plugin.h"

#define VK_INSTANCE_FUNCS(X)                                                   \
    X(vkDestroyInstance)                                                       \
    X(vkEnumeratePhysicalDevices)                                              \
    X(vkGetPhysicalDeviceProperties)                                           \
    X(vkGetPhysicalDeviceProperties2)                                          \
    X(vkGetPhysicalDeviceFeatures2)                                            \
    X(vkGetPhysicalDeviceMemoryProperties)                                     \
    X(vkGetPhysicalDeviceMemoryProperties2)                                    \
    X(vkEnumerateDeviceExtensionProperties)                                    \
    X(vkGetPhysicalDeviceQueueFamilyProperties)                                \
    X(vkCreateDevice)                                                          \
    X(vkGetDeviceProcAddr)

#define VK_DEVICE_FUNCS(X)                                                     \
    X(vkDestroyDevice)                                                         \
    X(vkGetDeviceQueue)                                                        \
    X(vkCreateBuffer)                                                          \
    X(vkDestroyBuffer)                                                         \
    X(vkGetBufferMemoryRequirements)                                           \
    X(vkAllocateMemory)                                                        \
    X(vkFreeMemory)                                                            \
    X(vkBindBufferMemory)                                                      \
    X(vkMapMemory)                                                             \
    X(vkUnmapMemory)                                                           \
    X(vkCreateShaderModule)                                                    \
    X(vkDestroyShaderModule)                                                   \
    X(vkCreateDescriptorSetLayout)                                             \
    X(vkDestroyDescriptorSetLayout)                                            \
    X(vkCreatePipelineLayout)                                                  \
    X(vkDestroyPipelineLayout)                                                 \
    X(vkCreateComputePipelines)                                                \
    X(vkDestroyPipeline)                                                       \
    X(vkCreateDescriptorPool)                                                  \
    X(vkDestroyDescriptorPool)                                                 \
    X(vkResetDescriptorPool)                                                   \
    X(vkAllocateDescriptorSets)                                                \
    X(vkUpdateDescriptorSets)                                                  \
    X(vkCreateCommandPool)                                                     \
    X(vkDestroyCommandPool)                                                    \
    X(vkAllocateCommandBuffers)                                                \
    X(vkResetCommandBuffer)                                                    \
    X(vkBeginCommandBuffer)                                                    \
    X(vkEndCommandBuffer)                                                      \
    X(vkCmdBindPipeline)                                                       \
    X(vkCmdBindDescriptorSets)                                                 \
    X(vkCmdPushConstants)                                                      \
    X(vkCmdDispatch)                                                           \
    X(vkCmdPipelineBarrier)                                                    \
    X(vkCmdCopyBuffer)                                                         \
    X(vkCmdFillBuffer)                                                         \
    X(vkCreateFence)                                                           \
    X(vkDestroyFence)                                                          \
    X(vkResetFences)                                                           \
    X(vkWaitForFences)                                                         \
    X(vkQueueSubmit)                                                           \
    X(vkDeviceWaitIdle)

#define VK_DECLARE_PFN(name) PFN_##name name;

/* Plugin state: the loader and one instance, shared by every backend. */
typedef struct vk_state {
    const llmh_host_api *host;
    int tried;                 /* instance creation attempted */
    void *lib;                 /* dlopen handle of the loader */
    VkInstance instance;
    PFN_vkGetInstanceProcAddr gipa;
    struct { VK_INSTANCE_FUNCS(VK_DECLARE_PFN) } vi;
    uint32_t n_dev;            /* physical devices with a compute queue */
    VkPhysicalDevice *devs;
    uint32_t *dev_queue;       /* compute queue family of each */
    char why[512];             /* why there is no device (empty when n_dev > 0) */
} vk_state;

#define VK_BUFFER_MAGIC 0x564b4246u /* "VKBF": a buffer of this backend */

struct llmh_buffer {
    uint32_t magic;            /* VK_BUFFER_MAGIC while alive */
    VkBuffer buf;
    VkDeviceMemory mem;
    size_t size;               /* bytes the caller asked for */
    VkDeviceSize alloc_size;   /* bytes of the VkBuffer */
    uint8_t *map;              /* host address when host-visible+coherent */
    uint32_t usage;
};

/* Shaders, in the order of the embedded table (vk-shaders.h). */
typedef enum vk_shader {
    VK_SH_GET_ROWS, VK_SH_ACT_PREP, VK_SH_MUL_MAT_VEC, VK_SH_MUL_MAT_TILED, VK_SH_BINARY,
    VK_SH_UNARY, VK_SH_RMS_NORM, VK_SH_SOFTMAX, VK_SH_ROPE, VK_SH_CPY, VK_SH_ATTENTION,
    VK_SH_MUL_MAT_VEC_SG, /* mul_mat_vec with subgroupAdd (needs subgroup arithmetic) */
    VK_SH_LORA,
    VK_SH_COUNT
} vk_shader;

#define VK_MAX_VARIANTS 64      /* pipelines per shader, by specialization */
#define VK_N_BINDINGS 6         /* dst, src0, src1, src2, status, aux (common.glsl) */
#define VK_ATTN_SPLIT 256       /* keys per split of decode attention */

/* Push constants: the layout of common.glsl's PC block (128 bytes). */
typedef struct vk_pc {
    uint32_t off_d, off_a, off_b, off_c;
    uint32_t ne[4];
    uint32_t dnb[4], anb[4], bnb[4], bne[4];
    uint32_t x[4];
    int32_t ip0, ip1;
    float fp0, fp1;
} vk_pc;

/* One pending access range for the barrier tracker. */
typedef struct vk_range {
    const llmh_buffer *buf;
    VkDeviceSize lo, hi;
} vk_range;

struct llmh_backend {
    vk_state *st;
    const llmh_host_api *host;
    VkPhysicalDevice pdev;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties memprops;
    VkDeviceSize max_range;    /* maxStorageBufferRange */
    VkDeviceSize max_alloc;    /* maxMemoryAllocationSize */
    VkDeviceSize align;        /* minStorageBufferOffsetAlignment */
    uint32_t max_groups_x;
    uint32_t queue_family;
    VkDevice dev;
    VkQueue queue;
    struct { VK_DEVICE_FUNCS(VK_DECLARE_PFN) } vd;
    pthread_mutex_t lock;      /* guards cmd, fence, queue, staging, scratch, pool */
    int lock_ok;
    VkCommandPool cmd_pool;
    VkCommandBuffer cmd;
    VkFence fence;
    VkDescriptorSetLayout dsl;
    VkPipelineLayout playout;
    VkDescriptorPool dpool;
    uint32_t dpool_cap;        /* sets the pool holds */
    VkShaderModule modules[VK_SH_COUNT];
    VkPipeline pipes[VK_SH_COUNT][VK_MAX_VARIANTS];
    uint32_t pipe_keys[VK_SH_COUNT][VK_MAX_VARIANTS];
    uint32_t n_pipes[VK_SH_COUNT];
    llmh_buffer *staging;      /* host-visible, for buffer_write/read */
    llmh_buffer *scratch;      /* device-local, MUL_MAT activations */
    llmh_buffer *status;       /* host-visible status word */
    int32_t dev_index;
    int host_map;              /* map host-visible device memory (option host_map) */
    int use_subgroups;         /* device has compute subgroup arithmetic, option allows */
    size_t staging_bytes;      /* staging chunk (option staging_kib) */
    /* graph recording */
    vk_range *pend_r, *pend_w;
    size_t n_pend_r, n_pend_w, cap_pend;
    uint32_t n_barriers;       /* barriers recorded in the last graph */
    uint32_t n_dispatches;     /* dispatches recorded in the last graph */
};

/* vk-backend.c */
llmh_status vk_buffer_create(llmh_backend *be, size_t size, uint32_t usage, int host_visible,
                             llmh_buffer **out);
void vk_buffer_destroy(llmh_backend *be, llmh_buffer *b);
llmh_status vk_check(llmh_backend *be, VkResult r, const char *what);
llmh_status vk_pipeline(llmh_backend *be, vk_shader sh, uint32_t c0, uint32_t c1, VkPipeline *out);

/* vk-graph.c */
int vk_op_supported(const llmh_backend *be, llmh_op op, llmh_dtype t0, llmh_dtype t1);
llmh_status vk_graph_compute(llmh_backend *be, const llmh_graph *graph);
void vk_graph_release(llmh_backend *be);

#endif
