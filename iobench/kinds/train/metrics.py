"""The metrics `train` results carry (result level, and per phase beyond every phase's
common fields and the engines' own): one declaration each, under the one suffix rule."""

from iobench.kinds.base import declare, metric

_RUNS = "only with --runs"
_CKPT = "only with --checkpoint-every"
_FIND = "only with --find-max"

METRICS = declare(
    "train",
    # --- the run --------------------------------------------------------------------
    metric("accelerator", "neither", "emulated accelerator type (a100, h100, b200)",
           unit="text"),
    metric("accelerators", "neither", "emulated accelerators (with --find-max: the count "
           "fed)", unit="count"),
    metric("compute_s", "neither", "emulated compute time per step per accelerator, s"),
    metric("au_threshold_pct", "neither", "the workload's AU threshold, %"),
    metric("au_pct", "higher", "accelerator utilisation (compute / wall, first step "
           "excluded), %"),
    metric("au_pass", "higher", "AU at or above the threshold", unit="flag"),
    metric("au_basis", "neither", "which steps the AU verdict covers", unit="text"),
    metric("au_per_epoch_pct", "higher", "AU of each measured epoch, %",
           was="au_pct_per_epoch"),
    metric("samples_per_s", "higher", "samples read and consumed per second"),
    metric("gb_per_s", "higher", "read throughput the replay measured, GB/s"),
    metric("gib_per_s", "higher", "read throughput the replay measured, GiB/s"),
    metric("bytes", "neither", "bytes the reads returned (O_DIRECT widening included)"),
    metric("payload_bytes", "neither", "sample bytes the replay asked for"),
    metric("samples", "neither", "samples read", unit="count"),
    metric("read_p50_us", "lower", "p50 latency of one read, us"),
    metric("read_p99_us", "lower", "p99 latency of one read, us"),
    metric("data_wait_p50_us", "lower", "p50 time an accelerator waited for its batch, us",
           was="data_wait_p50_ms", was_scale=1e3),
    metric("data_wait_p99_us", "lower", "p99 time an accelerator waited for its batch, us",
           was="data_wait_p99_ms", was_scale=1e3),
    metric("cpu_util_pct", "lower", "share of the client's cores this run kept busy, %"),
    metric("client_limited", "lower", "the client CPU, not storage, may be the limit",
           unit="flag"),
    metric("client_limited_why", "neither", "why client_limited says what it says",
           unit="text"),
    metric("decode", "neither", "samples were parsed as a framework would (--decode)",
           unit="flag"),
    # --- --dlio-config: MLPerf's AU (checkpoint stalls excluded) is the verdict ----------
    metric("au_with_checkpoint_stalls_pct", "higher", "AU with the checkpoint stalls "
           "(--dlio-config, where the verdict excludes them), %",
           was="au_pct_with_checkpoint_stalls", optional=True),
    metric("au_pass_with_checkpoint_stalls", "higher", "AU with the stalls meets the "
           "threshold (--dlio-config)", unit="flag", optional=True),
    # --- --runs ---------------------------------------------------------------------------
    metric("runs", "neither", f"each measured run's figures ({_RUNS})", unit="text",
           optional=True),
    metric("runs_mean_samples_per_s", "higher", f"mean samples/s of the runs ({_RUNS})",
           optional=True),
    metric("runs_stdev_samples_per_s", "lower", f"sample stdev of samples/s ({_RUNS})",
           optional=True),
    metric("runs_cv_pct", "lower", f"coefficient of variation of the runs, % ({_RUNS})",
           optional=True),
    metric("runs_spread_pct", "lower", f"(max - min) / mean of the runs, % ({_RUNS})",
           optional=True),
    metric("runs_agree", "higher", f"every run within 5% of their mean ({_RUNS})",
           unit="flag", optional=True),
    # --- --find-max ------------------------------------------------------------------------
    metric("find_max_probes", "neither", f"the search's probe and confirm runs ({_FIND})",
           unit="text", optional=True),
    metric("accelerators_fed", "higher", f"most accelerators fed at the AU threshold "
           f"({_FIND})", unit="count", optional=True),
    metric("find_max_limit", "neither", f"most accelerators the search may try ({_FIND})",
           unit="count", optional=True),
    metric("find_max_statement", "neither", f"the answer in one sentence ({_FIND})",
           unit="text", optional=True),
    # --- checkpoints during training ----------------------------------------------------
    metric("checkpoints", "neither", f"checkpoints written during training ({_CKPT})",
           unit="count", optional=True),
    metric("checkpoint_mode", "neither", f"blocking or async ({_CKPT})", unit="text",
           optional=True),
    metric("checkpoint_stall_mean_s", "lower", f"mean time the accelerators were held by "
           f"a checkpoint, s ({_CKPT})", was="checkpoint_stall_s_mean", optional=True),
    metric("checkpoint_stall_max_s", "lower", f"longest checkpoint stall, s ({_CKPT})",
           was="checkpoint_stall_s_max", optional=True),
    metric("checkpoint_write_gb_per_s", "higher", f"checkpoint write throughput, GB/s "
           f"({_CKPT})", optional=True),
    metric("au_without_checkpoint_stalls_pct", "higher", f"AU with the checkpoint stalls "
           f"taken out of the wall time, % ({_CKPT})",
           was="au_pct_without_checkpoint_stalls", optional=True),
    metric("in_window_gb_per_s", "higher", f"read GB/s while a checkpoint was being written "
           f"({_CKPT})", optional=True),
    metric("out_of_window_gb_per_s", "higher", f"read GB/s outside checkpoint writes "
           f"({_CKPT})", optional=True),
    metric("in_window_read_p99_us", "lower", f"read p99 while a checkpoint was being "
           f"written, us ({_CKPT})", optional=True),
    metric("out_of_window_read_p99_us", "lower", f"read p99 outside checkpoint writes, us "
           f"({_CKPT})", optional=True),
    # --- --engine fio: the same files read whole by fio ---------------------------------
    metric("raw_gb_per_s", "higher", "fio reading the same files whole, GB/s (--engine "
           "fio)", optional=True),
    metric("train_to_raw", "higher", "training read GB/s / raw (fio) GB/s (--engine fio)",
           unit="ratio", optional=True),
    # --- per phase (epochs, runs, train, checkpoint, raw (fio)) --------------------------
    metric("epoch", "neither", "epoch number (1-based)", unit="count", phase=True),
    metric("epochs", "neither", "epochs in an aggregate phase", unit="count", phase=True),
    metric("runs", "neither", "runs in an aggregate phase", unit="count", phase=True),
    metric("steps", "neither", "training steps", unit="count", phase=True),
    metric("accelerators", "neither", "accelerators emulated by this process",
           unit="count", phase=True),
    metric("samples", "neither", "samples read", unit="count", phase=True),
    metric("samples_per_s", "higher", "samples per second", phase=True),
    metric("payload_bytes", "neither", "sample bytes asked for", phase=True),
    metric("au_pct", "higher", "accelerator utilisation, %", phase=True),
    metric("au_pass", "higher", "AU at or above the threshold", unit="flag", phase=True),
    metric("first_step_s", "neither", "time to the end of the first step (pipeline fill), s",
           phase=True),
    metric("data_wait_ns", "lower", "percentiles of the per-step data wait, ns",
           phase=True),
    metric("cpu_util_pct", "lower", "share of the client's cores kept busy, %", phase=True),
    metric("client_limited", "lower", "the client CPU may be the limit", unit="flag",
           phase=True),
    metric("client_limited_why", "neither", "why", unit="text", phase=True),
    metric("host_cpu", "neither", "the host's CPU over the phase (busy, steal, others, "
           "load)", unit="text", phase=True),
    metric("timeline_span_s", "neither", "span of the phase's timeline, s", phase=True),
    metric("resident_start_pct", "neither", "share of the data set in the page cache when "
           "the epoch began reading, %", phase=True, optional=True),
    metric("warmup", "neither", "the warm-up run (not measured)", unit="flag", phase=True,
           optional=True),
    metric("checkpoint_windows_s", "neither", "checkpoint write windows, s from the start",
           phase=True, optional=True),
    metric("au_without_checkpoint_stalls_pct", "higher", "AU without the checkpoint stalls, %",
           phase=True, was="au_pct_without_checkpoint_stalls", optional=True),
    metric("in_window", "neither", "reads while a checkpoint was being written",
           unit="text", phase=True, optional=True),
    metric("out_of_window", "neither", "reads outside checkpoint writes", unit="text",
           phase=True, optional=True),
    # the checkpoint phase
    metric("mode", "neither", "checkpoint mode: blocking or async", unit="text", phase=True,
           optional=True),
    metric("every_steps", "neither", "steps between checkpoints", unit="count", phase=True,
           optional=True),
    metric("size_bytes", "neither", "bytes of one checkpoint", phase=True, optional=True),
    metric("checkpoints", "neither", "checkpoints written", unit="count", phase=True,
           optional=True),
    metric("stall_s", "lower", "each checkpoint's stall, s", phase=True, optional=True),
    metric("stall_mean_s", "lower", "mean checkpoint stall, s", phase=True,
           was="stall_s_mean", optional=True),
    metric("stall_max_s", "lower", "longest checkpoint stall, s", phase=True,
           was="stall_s_max", optional=True),
    metric("write_s", "lower", "each checkpoint's write time, s", phase=True,
           optional=True),
    # the raw (fio) phase
    metric("block_size_bytes", "neither", "fio's block size for the raw read", phase=True,
           was="block_size", optional=True),
    metric("files_read_pct", "neither", "share of the files' bytes fio read (whole blocks "
           "only), %", phase=True, was="fraction_of_files_read", was_scale=100.0,
           optional=True),
    metric("jobs", "neither", "fio jobs over all ranks", unit="count", phase=True,
           optional=True),
)
