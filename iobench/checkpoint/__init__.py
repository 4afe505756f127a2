"""Checkpoint workload internals: model math, file layouts, the streaming rank writer and
reader, the fio engine for checkpoints, and checkpoint-interval economics."""
