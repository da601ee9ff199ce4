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

// Join probes run in two passes over the same tiles of THREADS_PER_BLOCK probe rows, one thread
// per row. The build side is a linear-probing table of distinct keys (`slot_ids[s]` NO_MATCH
// marks an empty slot), key id d's build rows being `rows[starts[d]..starts[d + 1]]`.
#define THREADS_PER_BLOCK 256

// The id of `key`'s build key, or NO_MATCH.
__device__ __forceinline__ u32 find_key(const u64* slot_keys, const u32* slot_ids, u64 mask, u64 key) {
    u64 slot = hash_u64(key) & mask;
    for (;;) {
        u32 id = slot_ids[slot];
        if (id == NO_MATCH || slot_keys[slot] == key) return id;
        slot = (slot + 1) & mask;
    }
}

// The exclusive prefix sum of `value` over the block's threads; `total` gets the block's sum.
__device__ u64 block_exclusive_scan(u64 value, u64* total) {
    __shared__ u64 warp_sums[THREADS_PER_BLOCK / 32];
    u32 lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    u64 inclusive = value;
    for (int distance = 1; distance < 32; distance <<= 1) {
        u64 below = __shfl_up_sync(0xffffffffu, inclusive, distance);
        if (lane >= distance) inclusive += below;
    }
    if (lane == 31) warp_sums[warp] = inclusive;
    __syncthreads();
    if (warp == 0) {
        u64 sum = lane < THREADS_PER_BLOCK / 32 ? warp_sums[lane] : 0;
        for (int distance = 1; distance < 32; distance <<= 1) {
            u64 below = __shfl_up_sync(0xffffffffu, sum, distance);
            if (lane >= distance) sum += below;
        }
        if (lane < THREADS_PER_BLOCK / 32) warp_sums[lane] = sum;
    }
    __syncthreads();
    *total = warp_sums[THREADS_PER_BLOCK / 32 - 1];
    return (warp == 0 ? 0 : warp_sums[warp - 1]) + inclusive - value;
}

// Pass one: each usable probe row's key id (NO_MATCH where none or not usable: a null key or one
// outside the build side's range) into `matches`, and each block's number of (probe row, build
// row) pairs into `block_pairs`.
extern "C" __global__ void join_probe_count(
    const u64* slot_keys, const u32* slot_ids, u64 mask, const u32* starts, const u64* keys,
    const unsigned char* usable, u64 rows, u32* matches, u64* block_pairs) {
    u64 row = blockIdx.x * (u64)THREADS_PER_BLOCK + threadIdx.x;
    u64 pairs = 0;
    if (row < rows) {
        u32 id = usable[row] ? find_key(slot_keys, slot_ids, mask, keys[row]) : NO_MATCH;
        matches[row] = id;
        if (id != NO_MATCH) pairs = starts[id + 1] - starts[id];
    }
    u64 total;
    block_exclusive_scan(pairs, &total);
    if (threadIdx.x == 0) block_pairs[blockIdx.x] = total;
}

// Pass two: each block writes its pairs from `block_offsets[block]` on (the exclusive prefix
// sums of pass one's `block_pairs`), probe rows ascending, each one's build rows ascending.
extern "C" __global__ void join_probe_write(
    const u32* starts, const u32* build_rows_by_key, const u32* matches, u64 rows,
    const u64* block_offsets, u32* probe_out, u32* build_out) {
    u64 row = blockIdx.x * (u64)THREADS_PER_BLOCK + threadIdx.x;
    u32 id = row < rows ? matches[row] : NO_MATCH;
    u32 first = 0, pairs = 0;
    if (id != NO_MATCH) {
        first = starts[id];
        pairs = starts[id + 1] - first;
    }
    u64 total;
    u64 at = block_offsets[blockIdx.x] + block_exclusive_scan(pairs, &total);
    for (u32 pair = 0; pair < pairs; ++pair) {
        probe_out[at + pair] = (u32)row;
        build_out[at + pair] = build_rows_by_key[first + pair];
    }
}
