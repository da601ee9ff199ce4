//! The `cuda` feature's device: the process's first GPU, found and set up once (Sabot's kernels
//! in `kernels.cu` compiled by NVRTC for its architecture), and the grouped SUM/COUNT kernels
//! that run on it. The CUDA driver and NVRTC are loaded at run time: where either is missing,
//! or no GPU is present, [`Gpu::shared`] says why and every kernel runs on the CPU. The join
//! probe is in [`join`].
//!
//! Kernel launches are `unsafe` in `cudarc` (the argument list is not checked against the
//! kernel's parameters); each launch here says why its arguments match.

#![allow(unsafe_code)]

mod join;

pub use join::{DeviceJoinTable, device_probe_rows};

use std::sync::{Arc, OnceLock};

use arrow::array::{Array, Float64Array, Int64Array};
use arrow::buffer::NullBuffer;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits,
};
use cudarc::nvrtc::{CompileOptions, compile_ptx_with_opts};

use crate::error::{KernelError, Result};
use crate::grouped_sum::GroupedSums;

/// Sabot's device kernels, in CUDA C++.
const SOURCE: &str = include_str!("kernels.cu");
/// Threads per block of every kernel (the join probe's passes rely on it: `THREADS_PER_BLOCK`
/// in kernels.cu is the same number).
const THREADS_PER_BLOCK: u32 = 256;
/// Blocks per multiprocessor of a grid-stride launch: enough to hide memory latency.
const BLOCKS_PER_MULTIPROCESSOR: u32 = 8;
/// The most groups whose partial sums (16 bytes per group) a block keeps in shared memory.
const SHARED_MEMORY_GROUPS: usize = 2048;

/// The environment variable that, set to `off`, keeps every kernel on the CPU.
pub const GPU_SWITCH: &str = "SABOT_GPU";

/// A GPU and Sabot's kernels loaded on it.
pub struct Gpu {
    context: Arc<CudaContext>,
    description: String,
    multiprocessors: u32,
    grouped_sum_i64_shared: CudaFunction,
    grouped_sum_i64_global: CudaFunction,
    grouped_sum_f64_shared: CudaFunction,
    grouped_sum_f64_global: CudaFunction,
    join_probe_count: CudaFunction,
    join_probe_write: CudaFunction,
}

static SHARED_GPU: OnceLock<std::result::Result<Gpu, String>> = OnceLock::new();

/// The message of a failed driver or compiler call.
fn device_error<E: std::fmt::Display>(operation: &'static str) -> impl Fn(E) -> KernelError {
    move |error| KernelError::Device {
        operation,
        message: error.to_string(),
    }
}

impl Gpu {
    /// The process's GPU, set up on first use; the error says why there is none (no driver, no
    /// NVRTC, no device, a failed compile, or `SABOT_GPU=off`).
    pub fn shared() -> std::result::Result<&'static Gpu, &'static str> {
        SHARED_GPU
            .get_or_init(|| Gpu::open().map_err(|error| error.to_string()))
            .as_ref()
            .map_err(String::as_str)
    }

    fn open() -> Result<Gpu> {
        let unavailable = |message: &str| KernelError::Device {
            operation: "setup",
            message: message.to_string(),
        };
        if std::env::var(GPU_SWITCH).is_ok_and(|value| value == "off") {
            return Err(unavailable("turned off by SABOT_GPU=off"));
        }
        // SAFETY: only tries to open the driver library by its candidate names; nothing from it
        // is called.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(unavailable("no CUDA driver library (libcuda.so) was found"));
        }
        // SAFETY: as above, for NVRTC.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err(unavailable(
                "no NVRTC library (libnvrtc.so) was found: add the CUDA toolkit's lib64 folder to LD_LIBRARY_PATH",
            ));
        }
        let devices = CudaContext::device_count().map_err(device_error("count devices"))?;
        if devices < 1 {
            return Err(unavailable("the CUDA driver sees no device"));
        }
        let context = CudaContext::new(0).map_err(device_error("open device 0"))?;
        let (major, minor) = context
            .compute_capability()
            .map_err(device_error("read the compute capability"))?;
        let multiprocessors = context
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )
            .map_err(device_error("read the multiprocessor count"))?;
        let name = context.name().map_err(device_error("read the name"))?;
        let ptx = compile_ptx_with_opts(
            SOURCE,
            CompileOptions {
                options: vec![format!("--gpu-architecture=compute_{major}{minor}")],
                name: Some("sabot_kernels.cu".to_string()),
                ..Default::default()
            },
        )
        .map_err(device_error("compile the kernels"))?;
        let module = context
            .load_module(ptx)
            .map_err(device_error("load the kernels"))?;
        let function = |name: &str| {
            module
                .load_function(name)
                .map_err(device_error("find a kernel"))
        };
        Ok(Gpu {
            description: format!(
                "{name} (compute capability {major}.{minor}, {multiprocessors} multiprocessors)"
            ),
            multiprocessors: multiprocessors.max(1) as u32,
            grouped_sum_i64_shared: function("grouped_sum_i64_shared")?,
            grouped_sum_i64_global: function("grouped_sum_i64_global")?,
            grouped_sum_f64_shared: function("grouped_sum_f64_shared")?,
            grouped_sum_f64_global: function("grouped_sum_f64_global")?,
            join_probe_count: function("join_probe_count")?,
            join_probe_write: function("join_probe_write")?,
            context,
        })
    }

    /// The device's name, compute capability and size.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// A stream of its own for one call, so that calls from several threads overlap.
    fn stream(&self) -> Result<Arc<CudaStream>> {
        self.context
            .new_stream()
            .map_err(device_error("create a stream"))
    }

    /// A grid-stride launch over `rows` rows.
    fn launch_config(&self, rows: usize, shared_mem_bytes: u32) -> LaunchConfig {
        let blocks = rows.div_ceil(THREADS_PER_BLOCK as usize).max(1);
        LaunchConfig {
            grid_dim: (
                blocks.min((self.multiprocessors * BLOCKS_PER_MULTIPROCESSOR) as usize) as u32,
                1,
                1,
            ),
            block_dim: (THREADS_PER_BLOCK, 1, 1),
            shared_mem_bytes,
        }
    }

    /// Grouped SUM and COUNT of `values` on the device; a group id not below `groups`, or a
    /// count of ids other than of values, is an error.
    pub fn grouped_sum_i64(
        &self,
        groups: usize,
        group_ids: &[u32],
        values: &Int64Array,
    ) -> Result<GroupedSums<i64>> {
        self.grouped_sum(
            [&self.grouped_sum_i64_shared, &self.grouped_sum_i64_global],
            groups,
            group_ids,
            values.values(),
            values.nulls(),
        )
    }

    /// Grouped SUM and COUNT of doubles on the device; see [`Gpu::grouped_sum_i64`].
    pub fn grouped_sum_f64(
        &self,
        groups: usize,
        group_ids: &[u32],
        values: &Float64Array,
    ) -> Result<GroupedSums<f64>> {
        self.grouped_sum(
            [&self.grouped_sum_f64_shared, &self.grouped_sum_f64_global],
            groups,
            group_ids,
            values.values(),
            values.nulls(),
        )
    }

    /// Copies the rows over, runs the shared-memory kernel when the groups fit in a block's
    /// shared memory and the global one otherwise, and copies the sums and counts back.
    fn grouped_sum<T: DeviceRepr + ValidAsZeroBits + Default + Clone>(
        &self,
        [shared_kernel, global_kernel]: [&CudaFunction; 2],
        groups: usize,
        group_ids: &[u32],
        values: &[T],
        nulls: Option<&NullBuffer>,
    ) -> Result<GroupedSums<T>> {
        // The kernels index the sums by group id: an id out of range would write outside them.
        crate::grouped_sum::check_group_ids(groups, group_ids, values.len())?;
        let rows = values.len();
        if rows == 0 || groups == 0 {
            return Ok(GroupedSums {
                sums: vec![T::default(); groups],
                counts: vec![0; groups],
            });
        }
        let stream = self.stream()?;
        let copy = device_error("copy to the device");
        let device_ids = stream.clone_htod(group_ids).map_err(&copy)?;
        let device_values = stream.clone_htod(values).map_err(&copy)?;
        let nulls = nulls.filter(|nulls| nulls.null_count() > 0);
        let (validity, validity_offset, has_validity) = match nulls {
            Some(nulls) => (nulls.buffer().as_slice(), nulls.offset() as u64, 1i32),
            None => (&[0u8][..], 0, 0),
        };
        let device_validity = stream.clone_htod(validity).map_err(&copy)?;
        let allocate = device_error("allocate");
        let mut sums = stream.alloc_zeros::<T>(groups).map_err(&allocate)?;
        let mut counts = stream.alloc_zeros::<u64>(groups).map_err(&allocate)?;
        let rows_arg = rows as u64;
        let groups_arg = groups as u32;
        if groups <= SHARED_MEMORY_GROUPS {
            let mut launch = stream.launch_builder(shared_kernel);
            launch
                .arg(&device_ids)
                .arg(&device_values)
                .arg(&device_validity)
                .arg(&validity_offset)
                .arg(&has_validity)
                .arg(&rows_arg)
                .arg(&groups_arg)
                .arg(&mut sums)
                .arg(&mut counts);
            // SAFETY: the arguments are, in order, the kernel's parameters in kernels.cu
            // (u32*, T*, u8*, u64, int, u64, u32, T*, u64*); `device_ids` and `device_values`
            // hold `rows` elements, the validity bitmap covers `validity_offset + rows` bits when
            // `has_validity` is 1, every group id is below `groups` (checked above), and
            // the shared memory holds `2 * groups` 8-byte partials.
            unsafe { launch.launch(self.launch_config(rows, (groups * 16) as u32)) }
                .map_err(device_error("launch the grouped sum"))?;
        } else {
            let mut launch = stream.launch_builder(global_kernel);
            launch
                .arg(&device_ids)
                .arg(&device_values)
                .arg(&device_validity)
                .arg(&validity_offset)
                .arg(&has_validity)
                .arg(&rows_arg)
                .arg(&mut sums)
                .arg(&mut counts);
            // SAFETY: as for the shared-memory kernel, without its `groups` parameter and its
            // shared memory; `sums` and `counts` hold `groups` elements.
            unsafe { launch.launch(self.launch_config(rows, 0)) }
                .map_err(device_error("launch the grouped sum"))?;
        }
        let copy_back = device_error("copy from the device");
        Ok(GroupedSums {
            sums: stream.clone_dtoh(&sums).map_err(&copy_back)?,
            counts: stream.clone_dtoh(&counts).map_err(&copy_back)?,
        })
    }
}
