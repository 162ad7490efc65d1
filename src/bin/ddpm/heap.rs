//! The allocator's settings for the CPU path's working set. Each training step allocates its
//! activations and gradients afresh, megabytes each; glibc serves blocks that large from fresh
//! mappings and hands freed memory back, so every step faulted its pages in and zeroed them again
//! (docs/lab/bench/2026-12-08-cpu-training.md). Kept in the heap,
//! freed blocks are reused as they are.

/// Large blocks from the heap and no trimming of it; where the allocator is not glibc's, nothing.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets two of the allocator's thresholds, before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
