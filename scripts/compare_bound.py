"""Group a `perf report --sort symbol --stdio` of the mixed-precision compare workload and
print the ceiling the unavoidable work sets (see scripts/compare-bound.sh).

usage: compare_bound.py REPORT.txt RUNS.jsonl BENCH.json
"""
import json
import re
import statistics
import sys

# Work this design cannot drop, by the symbols perf names (OpenBLAS, LAPACK, sha2, the kernel).
UNAVOIDABLE = [
    ("f32 products (sgemm kernel)", r"sgemm_kernel|ssyrk_kernel"),
    ("their packing and scaling", r"sgemm_.*copy|sgemm_beta|ssyrk_.*copy|sscal_k"),
    # In mixed precision the only float64 BLAS/LAPACK work is Procrustes' eigensolver and
    # finalize's few matrix-vector products; LAPACK's internal functions have no names here.
    ("float64 BLAS/LAPACK: the eigensolver (dsyrk, dsytrd, dsterf)",
     r"^(?:[dz]\w*_|dgemm|dsyrk|dsyr2k|dsterf|dsymv|dgemv|dsum_k|0x[0-9a-f]+$)"),
    ("sha256 of every part read", r"sha2::"),
    ("reads (kernel copies from the page cache)", r"_copy_to_iter|filemap_"),
]


def main(report, runs, bench):
    shares = {name: 0.0 for name, _ in UNAVOIDABLE}
    rest = []
    for line in open(report):
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.+?)(?:\s+-\s+-)?\s*$", line)
        if not m:
            continue
        pct, dso, sym = float(m.group(1)), m.group(2), m.group(3)
        for name, pattern in UNAVOIDABLE:
            blas_only = name.startswith("float64")
            if re.search(pattern, sym) and (not blas_only or "openblas" in dso):
                shares[name] += pct
                break
        else:
            rest.append((pct, sym))
    if not rest and not any(shares.values()):
        sys.exit(f"compare_bound: no samples parsed from {report} (expected perf report "
                 "--sort dso,symbol --stdio)")
    wall = statistics.median(json.loads(l)["seconds"] for l in open(runs) if l.strip())
    ref = next(w for w in json.load(open(bench))["workloads"]
               if w["workload"] == "compare --precision mixed")["reference_s"]
    fixed = sum(shares.values())
    print(f"compare --precision mixed: median {wall:.2f} s (three runs); NumPy {ref:.2f} s "
          f"(reports/bench/bench.json): {ref / wall:.2f}x")
    for name, pct in shares.items():
        print(f"  {pct:5.1f} %  {name}")
    print(f"  {fixed:5.1f} %  cannot be dropped: {fixed / 100 * wall:.2f} s")
    print(f"  {100 - fixed:5.1f} %  the rest; largest: "
          + ", ".join(f"{s} {p:.1f} %" for p, s in sorted(rest, reverse=True)[:6]))
    print(f"ceiling with the rest gone: {ref / (fixed / 100 * wall):.2f}x "
          f"(5x needs {ref / 5:.2f} s)")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
