"""kpng_bench: dataplane benchmarks in a throwaway network namespace (``make bench``)."""
