//! Work spread over the machine's cores, one single-threaded BLAS per worker (on a 2-core
//! machine OpenBLAS's own threads otherwise spin while the element-wise work between products
//! runs on one core).

use crate::error::Result;

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
    let _blas = crate::model::linear::BlasThreads::single();
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
