"""The demo: a synthetic dataset generator and the `make demo` driver."""
