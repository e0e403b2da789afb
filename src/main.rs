//! The `glassbox` binary: parses arguments and calls the library.

mod cli;

fn main() -> std::process::ExitCode {
    keep_large_allocations();
    cli::main()
}

/// Model inference allocates and frees tensors of tens of megabytes per layer. glibc returns
/// blocks that large to the kernel at every free (mmap/munmap), and the page faults of mapping
/// them again cost a third of embedding time (measured: 9.4 → 14 chunks/s, BENCHMARKS.md).
/// Keeping them in the heap trades some resident memory for that time.
fn keep_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
