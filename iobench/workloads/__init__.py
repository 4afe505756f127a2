"""Workload runners: turn a spec into I/O phases (io, datagen, train, checkpoint, infer)."""
