"""iobench: a storage I/O benchmark for AI workloads (training, checkpoints, inference)."""

__version__ = "0.1.0"
