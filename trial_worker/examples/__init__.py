"""Train functions used by the demo, the deployment's workers and the benchmarks."""
