//! Work spread over the machine's cores, one single-threaded BLAS per worker (on a 2-core
//! machine OpenBLAS's own threads otherwise spin while the element-wise work between products
//! runs on one core).

use crate::error::Result;

/// Keep freed memory in the heap instead of giving it back to the system (glibc only; a no-op
/// elsewhere). The `repdrift` binary calls it first thing; the library never does, so library
/// users keep their allocator's settings (call it yourself for the same effect).
///
/// By default glibc serves blocks above a dynamic threshold with fresh `mmap`s and trims the
/// heap's top back to the system, so the large tensors of every training step (activations and
/// gradients, 4–13 MB each for SmolLM2 at 16 × 128 tokens) and compare's 2,048-row f64 chunks
/// came back as new zero pages each time: `train --trainable top:4` spent 13 s of its 22 s in
/// the kernel (page faults) before. Blocks up to 32 MiB (glibc's largest mmap threshold) now
/// come from the heap, and the heap keeps up to 2 GiB of free memory instead of returning it.
/// Call it before any thread starts.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc malloc's tunables.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

/// `f(0), …, f(n − 1)` computed on up to `available_parallelism` threads; results in order.
/// The first error (in index order) is returned.
pub fn map_indexed<T: Send>(n: usize, f: impl Fn(usize) -> Result<T> + Sync) -> Result<Vec<T>> {
    let workers = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(1)
        .min(n)
        .max(1);
    if workers == 1 {
        return (0..n).map(f).collect();
    }
    let _blas = crate::blas::BlasThreads::single();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let f = &f;
    let next = &next;
    let mut all: Vec<(usize, Result<T>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        mine.push((i, f(i)));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker panicked"))
            .collect()
    });
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}
