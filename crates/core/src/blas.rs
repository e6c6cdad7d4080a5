//! Products on OpenBLAS `sgemm`, shared by the metrics and the models' linear layers: a
//! counted guard that holds OpenBLAS at one thread ([`BlasThreads`]), [`sgemm`] /
//! [`sgemm_new`] on row-major slices, cut into blocks by the product's shape alone
//! ([`Tiles`]) so that its bits do not depend on the number of cores, and the pieces the
//! models' half-precision product reuses ([`for_each_tile`], [`call_sgemm`], [`SendPtr`]).

extern "C" {
    fn openblas_set_num_threads(n: std::os::raw::c_int);
    fn openblas_get_num_threads() -> std::os::raw::c_int;
}

/// Holds OpenBLAS at one thread while alive. Capture and the parallel metric stages run one
/// single-threaded BLAS per worker thread rather than one multi-threaded BLAS, so the
/// element-wise work between products runs on every core too. [`sgemm`] always calls BLAS on
/// one thread: a large product outside any guard is cut into blocks by its shape alone
/// ([`Tiles`]) and the blocks run over the cores, so its bits do not depend on the core count
/// (on OpenBLAS's Zen kernels a row's rounding depends on the thread count and on the
/// matrix's height).
///
/// OpenBLAS's thread count is process-wide, so the guards are counted: the count drops to one
/// with the first guard and the previous count comes back only when the last guard is dropped.
/// (Regression: with a plain set-and-restore, two captures running in one process — parallel
/// tests — restored two threads under each other's feet, and an `sgemm` split over two threads
/// rounds differently: `validate`'s "bit-identical below the planted block" check failed with
/// |Δ| 4.8e-7 under `cargo test`.)
pub struct BlasThreads(());

static BLAS_GUARDS: std::sync::Mutex<(usize, std::os::raw::c_int)> = std::sync::Mutex::new((0, 0));

impl BlasThreads {
    /// Whether any guard is alive (in any thread).
    pub fn held() -> bool {
        BLAS_GUARDS.lock().unwrap_or_else(|e| e.into_inner()).0 > 0
    }

    /// One BLAS thread until the returned guard (and every other live guard) is dropped.
    pub fn single() -> Self {
        let mut g = BLAS_GUARDS.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 == 0 {
            // SAFETY: plain FFI calls into the linked OpenBLAS; they take and return integers.
            g.1 = unsafe { openblas_get_num_threads() };
            unsafe { openblas_set_num_threads(1) };
        }
        g.0 += 1;
        Self(())
    }
}

impl Drop for BlasThreads {
    fn drop(&mut self) {
        let mut g = BLAS_GUARDS.lock().unwrap_or_else(|e| e.into_inner());
        g.0 -= 1;
        if g.0 == 0 {
            // SAFETY: as in `single`.
            unsafe { openblas_set_num_threads(g.1) };
        }
    }
}

/// `C ← α · op(A) · op(B) + β · C` on row-major f32 slices through `cblas_sgemm`, `op`
/// transposing when its flag is set: `op(A)` is `m × k`, `op(B)` is `k × n`, `C` is `m × n`,
/// each stored with its leading dimension (row stride). Panics when a slice is too short for
/// the shape it is given (a caller's bug, never input-dependent), so the FFI call is sound.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    trans: (bool, bool),
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    a: (&[f32], usize),
    b: (&[f32], usize),
    beta: f32,
    (c, ldc): (&mut [f32], usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        n <= ldc && c.len() >= (m - 1) * ldc + n,
        "sgemm: C too short"
    );
    // SAFETY: C's extent is checked above; A's and B's by `sgemm_raw`.
    unsafe { sgemm_raw(trans, (m, n, k), alpha, a, b, beta, c.as_mut_ptr(), ldc) }
}

/// `op(A) · op(B)` into a new row-major `m × n` matrix (as [`sgemm`] with α = 1, β = 0). The
/// output is not zero-filled first: with β = 0 BLAS does not read C.
pub fn sgemm_new(
    trans: (bool, bool),
    (m, n, k): (usize, usize, usize),
    a: (&[f32], usize),
    b: (&[f32], usize),
) -> Vec<f32> {
    if m == 0 || n == 0 || k == 0 {
        return vec![0f32; m * n];
    }
    let mut c: Vec<f32> = Vec::with_capacity(m * n);
    // SAFETY: `c` has room for m·n values with row stride n; BLAS writes every one of them
    // (β = 0, k > 0), so they are initialised when the length is set.
    unsafe {
        sgemm_raw(trans, (m, n, k), 1.0, a, b, 0.0, c.as_mut_ptr(), n);
        c.set_len(m * n);
    }
    c
}

/// The `cblas_sgemm` call behind [`sgemm`] and [`sgemm_new`]; checks A and B.
///
/// # Safety
/// `c` must point to room for an `m × n` matrix with row stride `ldc ≥ n`.
#[allow(clippy::too_many_arguments)]
unsafe fn sgemm_raw(
    (trans_a, trans_b): (bool, bool),
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    (a, lda): (&[f32], usize),
    (b, ldb): (&[f32], usize),
    beta: f32,
    c: *mut f32,
    ldc: usize,
) {
    let extent = |rows: usize, cols: usize, ld: usize| (rows - 1) * ld + cols;
    let (ar, ac) = if trans_a { (k, m) } else { (m, k) };
    let (br, bc) = if trans_b { (n, k) } else { (k, n) };
    if k > 0 {
        assert!(
            ac <= lda && a.len() >= extent(ar, ac, lda),
            "sgemm: A too short"
        );
        assert!(
            bc <= ldb && b.len() >= extent(br, bc, ldb),
            "sgemm: B too short"
        );
    }
    if k == 0 {
        // C ← β · C only; one call (nothing to split).
        // SAFETY: C inside the caller's room; A and B are not read.
        unsafe {
            call_sgemm(
                (trans_a, trans_b),
                (m, n, k),
                alpha,
                a.as_ptr(),
                lda,
                b.as_ptr(),
                ldb,
                beta,
                c,
                ldc,
            )
        };
        return;
    }
    let tiles = Tiles::of(m, n);
    // Any guard alive means a parallel stage already has every core busy: tiles run in turn.
    let workers = if BlasThreads::held() || tiles.count < 2 || m * n * k < PARALLEL_FLOPS {
        1
    } else {
        std::thread::available_parallelism()
            .map(|c| c.get())
            .unwrap_or(1)
            .min(tiles.count)
    };
    let _one = BlasThreads::single();
    let cp = SendPtr(c);
    let tile = |t: usize| {
        let (r0, r1, c0, c1) = tiles.get(t, m, n);
        let ao = if trans_a { r0 } else { r0 * lda };
        let bo = if trans_b { c0 * ldb } else { c0 };
        let cp = &cp;
        // SAFETY: the tile's A rows, B columns and C block lie inside the checked extents;
        // tiles write disjoint blocks of C.
        unsafe {
            call_sgemm(
                (trans_a, trans_b),
                (r1 - r0, c1 - c0, k),
                alpha,
                a.as_ptr().add(ao),
                lda,
                b.as_ptr().add(bo),
                ldb,
                beta,
                cp.0.add(r0 * ldc + c0),
                ldc,
            )
        };
    };
    for_each_tile(tiles.count, workers, |t, _| tile(t));
}

/// `f(t, buffer)` for every tile `t < count`, on `workers` threads taking the next tile as they
/// finish one (in order on the calling thread when `workers` is 1); each thread has its own
/// scratch buffer.
pub fn for_each_tile(count: usize, workers: usize, f: impl Fn(usize, &mut Vec<f32>) + Sync) {
    if workers <= 1 {
        let mut buf = Vec::new();
        (0..count).for_each(|t| f(t, &mut buf));
        return;
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let mut buf = Vec::new();
                loop {
                    let t = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if t >= count {
                        break;
                    }
                    f(t, &mut buf);
                }
            });
        }
    });
}

/// Products smaller than this many multiply-adds run on one core (a thread costs more).
pub const PARALLEL_FLOPS: usize = 1 << 21;
/// Rows of C per tile when C has at least two tiles' worth of rows; otherwise columns per tile.
pub const TILE_ROWS: usize = 256;
pub const TILE_COLS: usize = 256;

/// How a product's C is cut into blocks, each one single-threaded `sgemm` call. The cut
/// depends on the shape alone — never on the number of cores or on which blocks run side by
/// side — so a product gives the same bits on any machine with the same OpenBLAS kernels,
/// whether its blocks run on one core or on many. (Regression, CI on an AMD EPYC host: with
/// OpenBLAS's own threads, a row's rounding depended on the thread count — ~5e-5 on 576-wide
/// dot products — and `train` at one and two cores wrote different weights.)
pub struct Tiles {
    pub by_rows: bool,
    pub count: usize,
}

impl Tiles {
    pub fn of(m: usize, n: usize) -> Self {
        if m >= 2 * TILE_ROWS {
            Self {
                by_rows: true,
                count: m.div_ceil(TILE_ROWS),
            }
        } else if n >= 2 * TILE_COLS {
            Self {
                by_rows: false,
                count: n.div_ceil(TILE_COLS),
            }
        } else {
            Self {
                by_rows: true,
                count: 1,
            }
        }
    }

    /// Tile `t`'s rows `r0..r1` and columns `c0..c1` of the `m × n` C.
    pub fn get(&self, t: usize, m: usize, n: usize) -> (usize, usize, usize, usize) {
        match (self.count, self.by_rows) {
            (1, _) => (0, m, 0, n),
            (_, true) => (t * TILE_ROWS, ((t + 1) * TILE_ROWS).min(m), 0, n),
            (_, false) => (0, m, t * TILE_COLS, ((t + 1) * TILE_COLS).min(n)),
        }
    }
}

/// C's base pointer, shared by the tile workers (each writes its own block).
pub struct SendPtr(pub *mut f32);
// SAFETY: the workers write disjoint blocks of C through it, and `sgemm_raw`'s caller keeps C
// alive until the scope ends.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// One row-major `cblas_sgemm` call.
///
/// # Safety
/// The pointers must address matrices of the given shapes and leading dimensions.
#[allow(clippy::too_many_arguments)]
pub unsafe fn call_sgemm(
    (trans_a, trans_b): (bool, bool),
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    beta: f32,
    c: *mut f32,
    ldc: usize,
) {
    let flag = |t: bool| {
        if t {
            cblas_sys::CblasTrans
        } else {
            cblas_sys::CblasNoTrans
        }
    };
    // SAFETY: the caller's promise.
    unsafe {
        cblas_sys::cblas_sgemm(
            cblas_sys::CblasRowMajor,
            flag(trans_a),
            flag(trans_b),
            m as i32,
            n as i32,
            k as i32,
            alpha,
            a,
            lda.max(1) as i32,
            b,
            ldb.max(1) as i32,
            beta,
            c,
            ldc as i32,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Truth: the textbook float64 sum Σ_k op(A)[i, k] · op(B)[k, j]. Shapes cut into row
    /// tiles (m ≥ 2 · TILE_ROWS), column tiles (n ≥ 2 · TILE_COLS) and none, with every
    /// transposition, leading dimensions wider than the matrices, α and β ≠ 0, 1: each tile's
    /// offsets into A, B and C are checked. Run under a guard (tiles in turn) and without one
    /// (tiles over the cores), the bits are the same.
    #[test]
    fn tiled_products_equal_the_float64_sum_and_do_not_depend_on_the_cores() {
        let mut seed = 7u64;
        let mut rnd = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        for &(m, n, k) in &[(600, 40, 33), (30, 700, 65), (50, 60, 70), (513, 520, 9)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let (ar, ac) = if ta { (k, m) } else { (m, k) };
                let (br, bc) = if tb { (n, k) } else { (k, n) };
                let (lda, ldb, ldc) = (ac + 3, bc + 2, n + 5);
                let a: Vec<f32> = (0..ar * lda).map(|_| rnd()).collect();
                let b: Vec<f32> = (0..br * ldb).map(|_| rnd()).collect();
                let c0: Vec<f32> = (0..m * ldc).map(|_| rnd()).collect();
                let (alpha, beta) = (0.75f32, -0.5f32);
                let run = |guard: bool| {
                    let _g = guard.then(BlasThreads::single);
                    let mut c = c0.clone();
                    sgemm(
                        (ta, tb),
                        (m, n, k),
                        alpha,
                        (&a, lda),
                        (&b, ldb),
                        beta,
                        (&mut c, ldc),
                    );
                    c
                };
                let (free, held) = (run(false), run(true));
                assert!(
                    free == held,
                    "{m}x{n}x{k} {ta} {tb}: bits depend on the cores"
                );
                for i in 0..m {
                    for j in 0..n {
                        let mut sum = 0f64;
                        for l in 0..k {
                            let x = if ta { a[l * lda + i] } else { a[i * lda + l] };
                            let y = if tb { b[j * ldb + l] } else { b[l * ldb + j] };
                            sum += x as f64 * y as f64;
                        }
                        let want = alpha as f64 * sum + beta as f64 * c0[i * ldc + j] as f64;
                        let got = free[i * ldc + j] as f64;
                        assert!(
                            (got - want).abs() < 1e-4,
                            "{m}x{n}x{k} {ta} {tb} at ({i}, {j}): {got} vs {want}"
                        );
                    }
                    // Padding between rows of C is left alone.
                    assert_eq!(
                        free[i * ldc + n..(i + 1) * ldc],
                        c0[i * ldc + n..(i + 1) * ldc]
                    );
                }
            }
        }
    }
}
