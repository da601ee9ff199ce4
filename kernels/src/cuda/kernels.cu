// Sabot's device kernels, compiled at run time by NVRTC for the GPU found (see cuda/mod.rs).
// Every kernel walks its rows with a grid-stride loop, so any grid size covers any row count.

typedef unsigned long long u64;
typedef unsigned int u32;

#define NO_MATCH 0xffffffffu

// The splitmix64 finalizer: the same hash as `sabot_kernels::hash_u64` on the CPU, so a table
// built on the host is probed on the device.
__device__ __forceinline__ u64 hash_u64(u64 key) {
    u64 mixed = (key ^ (key >> 30)) * 0xbf58476d1ce4e5b9ull;
    mixed = (mixed ^ (mixed >> 27)) * 0x94d049bb133111ebull;
    return mixed ^ (mixed >> 31);
}

// Whether row `row` of an Arrow validity bitmap (starting `offset` bits in) is valid.
__device__ __forceinline__ bool is_valid(const unsigned char* bits, u64 offset, int has_validity, u64 row) {
    if (!has_validity) return true;
    u64 bit = offset + row;
    return (bits[bit >> 3] >> (bit & 7)) & 1;
}

// Grouped SUM and COUNT of 64-bit integers (sums wrap on overflow, as two's complement does)
// when all groups' partial sums fit in one block's shared memory: each block sums its rows
// there, then adds its partials to the global `sums` and `counts` once per group.
extern "C" __global__ void grouped_sum_i64_shared(
    const u32* group_ids, const long long* values, const unsigned char* validity,
    u64 validity_offset, int has_validity, u64 rows, u32 groups, u64* sums, u64* counts) {
    extern __shared__ u64 partial[];
    for (u32 i = threadIdx.x; i < 2 * groups; i += blockDim.x) partial[i] = 0;
    __syncthreads();
    for (u64 row = blockIdx.x * (u64)blockDim.x + threadIdx.x; row < rows; row += (u64)gridDim.x * blockDim.x) {
        if (is_valid(validity, validity_offset, has_validity, row)) {
            u32 group = group_ids[row];
            atomicAdd(&partial[group], (u64)values[row]);
            atomicAdd(&partial[groups + group], 1ull);
        }
    }
    __syncthreads();
    for (u32 group = threadIdx.x; group < groups; group += blockDim.x) {
        u64 count = partial[groups + group];
        if (count != 0) {
            atomicAdd(&sums[group], partial[group]);
            atomicAdd(&counts[group], count);
        }
    }
}

// The same for any number of groups: every row adds straight into the global sums.
extern "C" __global__ void grouped_sum_i64_global(
    const u32* group_ids, const long long* values, const unsigned char* validity,
    u64 validity_offset, int has_validity, u64 rows, u64* sums, u64* counts) {
    for (u64 row = blockIdx.x * (u64)blockDim.x + threadIdx.x; row < rows; row += (u64)gridDim.x * blockDim.x) {
        if (is_valid(validity, validity_offset, has_validity, row)) {
            u32 group = group_ids[row];
            atomicAdd(&sums[group], (u64)values[row]);
            atomicAdd(&counts[group], 1ull);
        }
    }
}

// Grouped SUM and COUNT of doubles, partials in shared memory (see grouped_sum_i64_shared).
// The order of the additions varies from run to run, so sums may differ in the last bits.
extern "C" __global__ void grouped_sum_f64_shared(
    const u32* group_ids, const double* values, const unsigned char* validity,
    u64 validity_offset, int has_validity, u64 rows, u32 groups, double* sums, u64* counts) {
    extern __shared__ u64 partial_f64[];
    double* partial_sums = (double*)partial_f64;
    u64* partial_counts = partial_f64 + groups;
    for (u32 i = threadIdx.x; i < groups; i += blockDim.x) {
        partial_sums[i] = 0.0;
        partial_counts[i] = 0;
    }
    __syncthreads();
    for (u64 row = blockIdx.x * (u64)blockDim.x + threadIdx.x; row < rows; row += (u64)gridDim.x * blockDim.x) {
        if (is_valid(validity, validity_offset, has_validity, row)) {
            u32 group = group_ids[row];
            atomicAdd(&partial_sums[group], values[row]);
            atomicAdd(&partial_counts[group], 1ull);
        }
    }
    __syncthreads();
    for (u32 group = threadIdx.x; group < groups; group += blockDim.x) {
        u64 count = partial_counts[group];
        if (count != 0) {
            atomicAdd(&sums[group], partial_sums[group]);
            atomicAdd(&counts[group], count);
        }
    }
}

// Grouped SUM and COUNT of doubles into the global sums.
extern "C" __global__ void grouped_sum_f64_global(
    const u32* group_ids, const double* values, const unsigned char* validity,
    u64 validity_offset, int has_validity, u64 rows, double* sums, u64* counts) {
    for (u64 row = blockIdx.x * (u64)blockDim.x + threadIdx.x; row < rows; row += (u64)gridDim.x * blockDim.x) {
        if (is_valid(validity, validity_offset, has_validity, row)) {
            u32 group = group_ids[row];
            atomicAdd(&sums[group], values[row]);
            atomicAdd(&counts[group], 1ull);
        }
    }
}

// Join probe: for each probe key, the id of the equal build key in a linear-probing table
// (`slot_ids[s]` NO_MATCH marks an empty slot), or NO_MATCH where there is none or the probe row
// is not usable (`usable[row]` 0: a null key or one outside the build side's range).
extern "C" __global__ void join_probe(
    const u64* slot_keys, const u32* slot_ids, u64 mask, const u64* keys,
    const unsigned char* usable, u64 rows, u32* matches) {
    for (u64 row = blockIdx.x * (u64)blockDim.x + threadIdx.x; row < rows; row += (u64)gridDim.x * blockDim.x) {
        u32 match = NO_MATCH;
        if (usable[row]) {
            u64 key = keys[row];
            u64 slot = hash_u64(key) & mask;
            for (;;) {
                u32 id = slot_ids[slot];
                if (id == NO_MATCH) break;
                if (slot_keys[slot] == key) {
                    match = id;
                    break;
                }
                slot = (slot + 1) & mask;
            }
        }
        matches[row] = match;
    }
}
