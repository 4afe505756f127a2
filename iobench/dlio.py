"""Import a DLIO (MLPerf Storage) workload YAML as the inputs of `iobench datagen`, `train`
and `checkpoint`: every key is either mapped to an iobench field, inactive (its workflow is
switched off, as DLIO itself ignores it), or listed in one warning; bad values are one-line
errors naming the key path.

The key names and defaults are DLIO's (dlio_benchmark/utils/config.py, LoadConfig and the
ConfigArguments defaults; docs/source/config.rst): where a key is absent iobench uses DLIO's
default, not its own, so an imported workload behaves as DLIO would run it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from iobench.errors import SpecError, UsageError, did_you_mean
from iobench.spec import load_yaml
from iobench.units import parse_size
from iobench.workload import TrainingSpec, validate

COMMANDS = ("datagen", "train", "checkpoint")

# DLIO's FormatType values and what iobench writes for each (None: no equivalent)
FORMATS: dict[str, str | None] = {
    "npz": "npz", "hdf5": "hdf5", "tfrecord": "tfrecord", "indexed_binary": "indexed",
    "mmap_indexed_binary": "indexed", "npy": None, "hdf5_opt": None, "csv": None,
    "jpeg": None, "png": None, "synthetic": None, "parquet": None,
}
SHUFFLES = ("off", "seed", "random")
FRAMEWORKS = ("pytorch", "tensorflow")
DATA_LOADERS = ("pytorch", "tensorflow", "dali", "native_dali", "custom", "none", "synthetic",
                "daos_pytorch")
STORAGE_TYPES = ("local_fs", "parallel_fs", "s3", "daos_pytorch")
DTYPE_BYTES = {"fp16": 2, "bf16": 2, "fp32": 4, "fp64": 8, "int8": 1, "uint8": 1}
COMPUTE_TIME_KEYS = ("mean", "stdev", "type", "min", "max", "shape", "scale", "lam")

# Every key DLIO reads, by section; nested mappings as "parent.child". A key here that
# iobench does not map is listed with the reason below (or a generic one).
KNOWN: dict[str, tuple[str, ...]] = {
    "model": ("name", "type", "model_size", "model_size_bytes", "optimization_groups",
              "num_layers", "layer_parameters", "model_datatype", "optimizer_datatype",
              "parallelism.tensor", "parallelism.pipeline", "parallelism.data",
              "parallelism.zero_stage", "transformer.vocab_size", "transformer.hidden_size",
              "transformer.ffn_hidden_size", "transformer.num_attention_heads",
              "transformer.num_kv_heads"),
    "workflow": ("generate_data", "train", "evaluation", "checkpoint", "profiling", "debug"),
    "dataset": ("record_length", "record_length_bytes", "record_length_stdev",
                "record_length_bytes_stdev", "record_length_resize",
                "record_length_bytes_resize", "format", "num_files_train", "num_files_eval",
                "num_samples_per_file", "data_folder", "num_subfolders_train",
                "num_subfolders_eval", "file_prefix", "compression", "compression_level",
                "enable_chunking", "chunk_size", "keep_files", "generation_buffer_size",
                "record_dims", "record_element_type", "record_element_bytes",
                "hdf5.chunk_dims", "hdf5.num_dset_per_record", "hdf5.max_shape"),
    "reader": ("data_loader", "batch_size", "batch_size_eval", "read_threads", "pin_memory",
               "computation_threads", "prefetch_size", "sample_shuffle", "file_shuffle",
               "shuffle_size", "transfer_size", "preprocess_time", "preprocess_time_stdev",
               "odirect", "transformed_sample", "transformed_record_dims",
               "transformed_record_element_type", "dont_use_mmap", "reader_classname",
               "multiprocessing_context", "data_loader_classname", "data_loader_sampler",
               "file_access", "read_type"),
    "train": ("epochs", "computation_time", "computation_time_stdev", "total_training_steps",
              "seed_change_epoch", "seed"),
    "evaluation": ("eval_time", "eval_time_stdev", "eval_after_epoch", "epochs_between_evals"),
    "checkpoint": ("checkpoint_folder", "checkpoint_after_epoch", "epochs_between_checkpoints",
                   "steps_between_checkpoints", "type", "checkpoint_mechanism_classname",
                   "fsync", "time_between_checkpoints", "num_checkpoints_write",
                   "num_checkpoints_read", "recovery_rank_shift", "rank_sync", "mode",
                   "randomize_tensor", "ksm", "model_size", "optimization_groups",
                   "num_layers", "layer_parameters", "tensor_parallelism",
                   "pipeline_parallelism"),
    "metric": ("au",),
    "storage": ("storage_type", "storage_root", "storage_options"),
    "output": ("folder", "log_file", "metric.exclude_start_steps", "metric.exclude_end_steps"),
    "profiling": ("profiler", "iostat_devices"),
    "framework": (),
    "hydra": (),
}
# nested mappings flattened to "section.parent.child" keys
NESTED = ("model.parallelism", "model.transformer", "dataset.hdf5", "output.metric")

REASONS: dict[str, str] = {
    "dataset.data_folder": "data goes under --target/datagen/NAME; train replays a DLIO "
                           "folder with --data-folder",
    "dataset.record_length_resize": "no resize step: iobench reads the bytes only",
    "dataset.record_length_bytes_resize": "no resize step: iobench reads the bytes only",
    "dataset.num_files_eval": "iobench generates and reads the training files only",
    "dataset.num_subfolders_train": "iobench keeps shards in one directory",
    "dataset.num_subfolders_eval": "iobench keeps shards in one directory",
    "dataset.file_prefix": "iobench names shards itself",
    "dataset.compression": "iobench writes uncompressed, incompressible samples",
    "dataset.compression_level": "iobench writes uncompressed samples",
    "dataset.generation_buffer_size": "iobench datagen streams with its own buffers",
    "dataset.keep_files": "iobench keeps the data set; remove it with iobench clean",
    "reader.pin_memory": "no accelerator memory is emulated",
    "reader.computation_threads": "preprocessing is not emulated",
    "reader.preprocess_time": "preprocessing is not emulated",
    "reader.preprocess_time_stdev": "preprocessing is not emulated",
    "reader.shuffle_size": "iobench shuffles the whole epoch, not through a buffer",
    "reader.transformed_sample": "no transform step: iobench reads the bytes only",
    "reader.transformed_record_dims": "no transform step: iobench reads the bytes only",
    "reader.transformed_record_element_type": "no transform step",
    "reader.batch_size_eval": "evaluation passes are not emulated",
    "reader.multiprocessing_context": "iobench readers are threads",
    "reader.dont_use_mmap": "iobench reads with pread",
    "reader.read_type": "iobench reads on demand",
    "reader.file_access": "iobench reads one file per shard",
    "train.computation_time_stdev": "iobench sleeps the fixed mean every step",
    "train.seed_change_epoch": "iobench reshuffles every epoch",
    "checkpoint.checkpoint_folder": "checkpoints go under --target",
    "checkpoint.time_between_checkpoints": "iobench writes checkpoints back to back",
    "checkpoint.recovery_rank_shift": "use --rank-shift K",
    "checkpoint.rank_sync": "iobench times each checkpoint across all ranks",
    "checkpoint.type": "under mpirun every rank writes its share",
    "checkpoint.ksm": "checkpoint content is random, never merged",
    "storage.storage_root": "iobench writes under --target",
    "storage.storage_options": "iobench measures a file system (--target)",
    "output.folder": "results go to --results-dir",
    "output.log_file": "iobench writes one result.json",
    "profiling.profiler": "iobench measures every I/O itself",
    "profiling.iostat_devices": "iobench measures every I/O itself",
    "workflow.evaluation": "evaluation passes are not emulated",
    "workflow.profiling": "iobench measures every I/O itself",
    "workflow.debug": "no debug mode",
}
GENERIC_REASON = "no iobench equivalent"

# Which sections each command reads: keys elsewhere belong to another iobench command
SECTIONS: dict[str, tuple[str, ...]] = {
    "datagen": ("dataset", "storage", "output", "profiling", "hydra"),
    "train": ("model", "framework", "workflow", "dataset", "reader", "train", "evaluation",
              "checkpoint", "metric", "storage", "output", "profiling", "hydra"),
    "checkpoint": ("model", "framework", "workflow", "checkpoint", "storage", "output",
                   "profiling", "hydra"),
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

# DLIO 2.0.0's checkpoint defaults (dlio_benchmark/utils/config.py, ConfigArguments):
# model_size, optimization_groups, num_layers, layer_parameters, checkpoint type
DLIO_MODEL_SIZE = 10240
DLIO_LAYERS = 1
DLIO_LAYER_PARAMETERS = (17371, 24740228)
CHECKPOINT_TYPES = ("rank_zero", "all_ranks")


@dataclass(frozen=True)
class CheckpointSizing:
    """What DLIO 2.0.0 writes per checkpoint (dlio_benchmark/checkpointing/
    base_checkpointing.py): on each writing rank a model file of `model_size` elements,
    an optimizer file of two tensors per positive optimization group plus one 'combined'
    tensor of their sum, and, on ranks divisible by the pipeline parallelism, one file per
    layer (num_layers, + tensor_parallelism when that is > 1) holding a tensor per
    positive layer parameter count. PyTorch tensors are int8 (one byte per element);
    TensorFlow ones int32 of size // 4 elements. Writers: rank 0 (type rank_zero, DLIO's
    default) or every rank (all_ranks), one rank per accelerator."""

    model_size: int = DLIO_MODEL_SIZE
    optimization_groups: tuple[int, ...] = ()
    num_layers: int = DLIO_LAYERS
    layer_parameters: tuple[int, ...] = DLIO_LAYER_PARAMETERS
    tensor_parallelism: int = 1
    pipeline_parallelism: int = 1
    all_ranks: bool = False
    framework: str = "tensorflow"  # DLIO's default framework

    def tensor(self, elements: int) -> int:
        """Bytes of one DLIO tensor of `elements` (its get_tensor(size))."""
        if elements <= 0:
            return 0
        return elements if self.framework == "pytorch" else elements // 4 * 4

    def files(self, rank: int = 0) -> dict[str, int]:
        """Payload bytes of each file rank `rank` writes per checkpoint (by DLIO's name)."""
        out: dict[str, int] = {}
        if self.model_size > 0:
            out["model"] = self.tensor(self.model_size)
        if self.optimization_groups:
            groups = [g for g in self.optimization_groups if g > 0]
            out["optimizer"] = (sum(2 * self.tensor(g) for g in groups)
                                + self.tensor(sum(groups)))
        layer = sum(self.tensor(x) for x in self.layer_parameters if x > 0)
        if rank % self.pipeline_parallelism == 0 and layer and self.num_layers > 0:
            total = self.num_layers + (self.tensor_parallelism
                                       if self.tensor_parallelism > 1 else 0)
            for i in range(total):
                out[f"layer-{i}"] = layer
        return out

    def writers(self, accelerators: int) -> range:
        return range(max(1, accelerators)) if self.all_ranks else range(1)

    def total_bytes(self, accelerators: int = 1) -> int:
        """All bytes of one checkpoint with `accelerators` DLIO ranks."""
        return sum(sum(self.files(r).values()) for r in self.writers(accelerators))

    def record(self, accelerators: int = 1) -> dict[str, Any]:
        return {"source": "DLIO 2.0.0 checkpoint sizing (base_checkpointing.py)",
                "model_size": self.model_size,
                "optimization_groups": list(self.optimization_groups),
                "num_layers": self.num_layers, "layer_parameters": list(self.layer_parameters),
                "tensor_parallelism": self.tensor_parallelism,
                "pipeline_parallelism": self.pipeline_parallelism,
                "type": "all_ranks" if self.all_ranks else "rank_zero",
                "framework": self.framework, "rank0_files": self.files(0),
                "accelerators": accelerators, "bytes": self.total_bytes(accelerators)}


@dataclass(frozen=True)
class DlioImport:
    """A DLIO config as one iobench command's inputs, and the account of every key."""

    path: Path
    command: str
    name: str
    spec: TrainingSpec | None = None  # datagen, train
    model: Any = None  # checkpoint: iobench.kinds.checkpoint.model.ModelSpec
    options: dict[str, Any] = field(default_factory=dict)  # command option -> value
    checkpoint_every_epochs: int = 0  # train: checkpoint every N epochs (steps known later)
    mapped: dict[str, dict[str, Any]] = field(default_factory=dict)  # DLIO key -> use
    not_honoured: tuple[str, ...] = ()  # "key (reason)"
    inactive: tuple[str, ...] = ()  # keys of workflows the config switches off
    defaults: tuple[str, ...] = ()  # iobench fields set from DLIO's defaults (key absent)
    other_commands: tuple[str, ...] = ()  # keys another iobench command reads
    checkpoint_sizing: CheckpointSizing | None = None  # train: DLIO 2.0.0 checkpoint bytes
    dlio_format: str | None = None  # dataset.format (DLIO's name: the files' extension)

    def warning(self) -> str | None:
        """The one warning line listing what iobench cannot honour, or None."""
        if not self.not_honoured:
            return None
        n = len(self.not_honoured)
        return (f"DLIO config {self.path.name}: {n} key{'s' if n > 1 else ''} not honoured: "
                + "; ".join(self.not_honoured))

    def pick(self, option: str, value: Any) -> Any:
        """The command line wins; else the config's value; else the option's default."""
        if option not in self.options or given(option):
            return value
        return self.options[option]

    def record(self) -> dict[str, Any]:
        """What goes into Result.spec["dlio"]: where the workload came from, key by key."""
        return {"config": str(self.path.resolve()), "command": self.command,
                "name": self.name, "mapped": self.mapped,
                "options": dict(self.options),
                "checkpoint_every_epochs": self.checkpoint_every_epochs or None,
                "checkpoint_sizing": (self.checkpoint_sizing.record()
                                      if self.checkpoint_sizing else None),
                "not_honoured": list(self.not_honoured), "inactive": list(self.inactive),
                "defaults": list(self.defaults), "other_commands": list(self.other_commands)}

    def announce(self, result_warnings: list[str] | None = None) -> None:
        """Print the warning once (stderr, rank 0) and keep it in the result's warnings."""
        w = self.warning()
        if w is None:
            return
        if result_warnings is not None:
            result_warnings.append(w)
        else:
            from iobench import dist

            if dist.world().is_root:
                click.echo(f"warning: {w}", err=True)


def given(option: str) -> bool:
    """Whether the user set this option (command line or environment), not its default."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return False
    src = ctx.get_parameter_source(option)
    return src is not None and src not in (ParameterSource.DEFAULT,
                                           ParameterSource.DEFAULT_MAP)


def workload_or_config(workload: str | None, config: Path | None, what: str) -> str:
    """WORKLOAD is required unless --dlio-config is given."""
    if workload is None and config is None:
        raise UsageError(f"missing {what}: give a preset name or YAML file, or "
                         "--dlio-config FILE.yaml")
    return workload or ""


# --- reading the file ----------------------------------------------------------------------
class _Keys:
    """The config flattened to 'section.key' paths, with typed getters that record what
    each key became; whatever is left at the end is listed or reported."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.where = where
        self.left: dict[str, Any] = {}
        self.mapped: dict[str, dict[str, Any]] = {}
        self.notes: list[str] = []  # extra "key (reason)" entries: approximations
        self.inactive: list[str] = []
        self.defaults: list[str] = []
        self.sizing: CheckpointSizing | None = None  # set when DLIO 2.0.0 sizing applies
        self.dlio_format: str | None = None  # dataset.format as DLIO names it
        for sec, body in data.items():
            sec = str(sec)
            if sec == "data_reader":  # DLIO's older name for `reader`
                sec = "reader"
            if body is None:  # an empty section: DLIO's defaults
                continue
            if sec == "framework" or not isinstance(body, Mapping):
                if sec in KNOWN and sec not in ("framework", "model"):
                    raise self.error(sec, f"expected a mapping of keys, got "
                                          f"{type(body).__name__} {body!r}")
                self.left[sec] = body
                continue
            for k, v in body.items():
                path = f"{sec}.{k}"
                if path in NESTED and isinstance(v, Mapping):
                    for k2, v2 in v.items():
                        self.left[f"{path}.{k2}"] = v2
                else:
                    self.left[path] = v

    def error(self, path: str, msg: str) -> SpecError:
        return SpecError(f"{self.where}: {path}: {msg}")

    def has(self, path: str) -> bool:
        return path in self.left

    def take(self, path: str) -> Any:
        return self.left.pop(path, None)

    def use(self, path: str, to: str, value: Any) -> None:
        self.mapped[path] = {"iobench": to, "value": value}

    def inactive_all(self, prefix: str) -> None:
        for k in [k for k in self.left if k.startswith(prefix)]:
            self.left.pop(k)
            self.inactive.append(k)

    # typed getters: None when absent; a wrong type is an error naming the key path
    def int_(self, path: str, minimum: int | None = None) -> int | None:
        v = self.take(path)
        if v is None:
            return None
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.error(path, f"expected an integer, got {type(v).__name__} {v!r}")
        if minimum is not None and v < minimum:
            raise self.error(path, f"{v} must be >= {minimum}")
        return v

    def num(self, path: str, minimum: float = 0.0) -> float | None:
        v = self.take(path)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise self.error(path, f"expected a number, got {type(v).__name__} {v!r}")
        if v < minimum:
            raise self.error(path, f"{v} must be >= {minimum:g}")
        return float(v)

    def size(self, path: str, allow_zero: bool = False) -> int | None:
        """Bytes: a number (DLIO) or a size string such as 146.6MB; rounded."""
        v = self.take(path)
        if v is None:
            return None
        if isinstance(v, str):
            try:
                n = parse_size(v, path)
            except UsageError:
                raise self.error(path, f"expected a byte count, got {v!r} (e.g. 146600628 "
                                       "or 146.6MB)") from None
        elif isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise self.error(path, f"expected a byte count, got {type(v).__name__} {v!r}")
        else:
            n = round(v)
        if n < 0 or (n == 0 and not allow_zero):
            raise self.error(path, f"{v!r} must be {'>= 0' if allow_zero else '> 0'} bytes")
        return int(n)

    def bool_(self, path: str) -> bool | None:
        v = self.take(path)
        if v is None:
            return None
        if not isinstance(v, bool):
            raise self.error(path, f"expected true or false, got {v!r}")
        return v

    def choice(self, path: str, choices: tuple[str, ...]) -> str | None:
        v = self.take(path)
        if v is None:
            return None
        if not isinstance(v, str) or v not in choices:
            raise self.error(path, f"{v!r} is not a DLIO value{did_you_mean(str(v), choices)}")
        return v

    def str_(self, path: str) -> str | None:
        v = self.take(path)
        if v is None:
            return None
        if not isinstance(v, str):
            raise self.error(path, f"expected a string, got {type(v).__name__} {v!r}")
        return v

    def int_list(self, path: str) -> list[int] | None:
        v = self.take(path)
        if v is None:
            return None
        if (not isinstance(v, list) or not v
                or any(isinstance(x, bool) or not isinstance(x, int) or x <= 0 for x in v)):
            raise self.error(path, f"expected a list of positive integers, got {v!r}")
        return list(v)


def _read(path: Path) -> dict[str, Any]:
    data = load_yaml(path)
    if isinstance(data, Mapping) and set(data) == {"workload"} and isinstance(
            data["workload"], Mapping):  # a composed Hydra config: workload: {...}
        data = data["workload"]
    if not isinstance(data, Mapping) or not data:
        raise SpecError(f"{path}: not a DLIO workload (expected a mapping with dataset, "
                        "reader, train... sections)")
    return dict(data)


# --- the mapping -----------------------------------------------------------------------
def load(path: Path, command: str, workload: str | None = None, *,
         find_max: bool = False) -> DlioImport:
    """Map the DLIO config at `path` for `command` (datagen, train or checkpoint).

    `workload`, when given, names the imported workload (data set directory, result name)
    in place of the config's model.name.
    """
    if command not in COMMANDS:
        raise ValueError(command)
    path = Path(path)
    k = _Keys(_read(path), path.name)
    name = _name(k, path, workload)
    spec: TrainingSpec | None = None
    model = None
    options: dict[str, Any] = {}
    every_epochs = 0
    wf = _workflow(k)
    if command == "datagen" and not any(x.startswith("dataset.") for x in k.left):
        hint = (f"iobench checkpoint --dlio-config {path.name}" if wf["checkpoint"]
                else "add a dataset section (format, num_files_train, record_length...)")
        raise SpecError(f"{path.name}: no dataset section: the config describes no data "
                        f"set to generate; {'use ' if wf['checkpoint'] else ''}{hint}")
    if command in ("datagen", "train"):
        spec = _training(k, name)
    if command == "train":
        if not wf["train"]:
            raise SpecError(f"{path.name}: workflow.train is false (a data-generation or "
                            "checkpoint-only config): use iobench datagen --dlio-config or "
                            "iobench checkpoint --dlio-config with it")
        if wf["generate_data"]:
            k.notes.append("workflow.generate_data (iobench train reads an existing data "
                           f"set: run iobench datagen --dlio-config {path.name} first)")
        assert spec is not None
        options = _train_options(k, spec)
        if wf["checkpoint"] and find_max:
            k.notes.append("checkpoint.* (not with --find-max: find the count, then rerun "
                           "with --accelerators N)")
            k.inactive_all("checkpoint.")
            k.inactive_all("model.")
        elif wf["checkpoint"]:
            every_epochs = _train_checkpoints(k, options, spec)
        if not wf["evaluation"]:
            k.inactive_all("evaluation.")
            for key in ("reader.batch_size_eval", "dataset.num_files_eval"):
                if k.has(key):
                    k.take(key)
                    k.inactive.append(key)
        else:
            k.notes.append("workflow.evaluation (evaluation passes are not emulated)")
    if command == "checkpoint":
        if not wf["checkpoint"]:
            raise SpecError(f"{path.name}: workflow.checkpoint is not true: the config does "
                            "not checkpoint, so there is nothing for iobench checkpoint to "
                            "run; use iobench train --dlio-config with it")
        model, options = _checkpoint(k, name, wf["train"])
    if command in ("train", "checkpoint"):
        mtype = k.str_("model.type")
        if mtype is not None:
            k.use("model.type", "(a label)", mtype)
    if command == "train" and not wf["checkpoint"]:
        k.inactive_all("checkpoint.")
        k.inactive_all("model.")  # DLIO sizes checkpoints with them, nothing else
    honoured_not, other = _leftovers(k, command)
    return DlioImport(
        path=path, command=command, name=name, spec=spec, model=model, options=options,
        checkpoint_every_epochs=every_epochs, mapped=k.mapped, checkpoint_sizing=k.sizing,
        dlio_format=k.dlio_format,
        not_honoured=tuple(k.notes + honoured_not), inactive=tuple(k.inactive),
        defaults=tuple(k.defaults), other_commands=tuple(other))


def _name(k: _Keys, path: Path, workload: str | None) -> str:
    raw = k.take("model")
    if isinstance(raw, str):
        model_name: str | None = raw
        k.use("model", "name", raw)
    elif raw is None:
        model_name = k.str_("model.name")
        if model_name is not None:
            k.use("model.name", "name", model_name)
    else:
        raise k.error("model", f"expected a name or a mapping, got {raw!r}")
    name = workload or model_name or path.stem
    if not _NAME.match(name):
        src = "WORKLOAD" if workload else ("model.name" if model_name else "the file name")
        raise SpecError(f"{path.name}: {src} {name!r} cannot name a data set directory; "
                        "give a plain name as WORKLOAD (letters, digits, . _ -)")
    return name


def _workflow(k: _Keys) -> dict[str, bool]:
    out = {}
    for key, default in (("generate_data", False), ("train", True), ("checkpoint", False),
                         ("evaluation", False), ("profiling", False), ("debug", False)):
        v = k.bool_(f"workflow.{key}")
        out[key] = default if v is None else v
        if v is not None:
            k.use(f"workflow.{key}", "which iobench command runs it", v)
            if v and key in ("profiling", "debug"):
                k.notes.append(f"workflow.{key} ({REASONS[f'workflow.{key}']})")
    if not out["train"]:  # DLIO resets evaluation and checkpoint-during-training then
        out["evaluation"] = False
    return out


def _training(k: _Keys, name: str) -> TrainingSpec:
    """dataset, reader, train and metric -> a TrainingSpec (DLIO defaults where absent)."""
    fmt_dlio = k.choice("dataset.format", tuple(FORMATS))
    if fmt_dlio is None:
        fmt_dlio = "tfrecord"
        k.defaults.append("format = tfrecord (DLIO's default dataset.format)")
    fmt = FORMATS[fmt_dlio]
    if fmt is None:
        have = ", ".join(f for f, v in FORMATS.items() if v)
        raise k.error("dataset.format", f"{fmt_dlio!r} has no iobench equivalent (iobench "
                                        f"writes {have}); pick one of those formats")
    k.use("dataset.format", "format", fmt)
    fields: dict[str, Any] = {"name": name, "format": fmt, "layout": "dlio",
                              "description": "imported from a DLIO config",
                              "source": "DLIO config"}
    k.dlio_format = fmt_dlio

    # sample size: record_dims x element type wins over record_length, as in DLIO
    rec, rec_key = _record_bytes(k)
    sd_keys = [x for x in ("dataset.record_length_bytes_stdev", "dataset.record_length_stdev")
               if k.has(x)]
    if len(sd_keys) > 1:
        raise k.error(sd_keys[1], f"given together with {sd_keys[0]}; keep one")
    stdev = k.size(sd_keys[0], allow_zero=True) if sd_keys else 0
    if fmt == "indexed":
        if rec % 2:
            raise k.error(rec_key, f"{rec} bytes: iobench stores indexed_binary samples as uint16 "
                          "tokens, so give an even byte count")
        fields.update(seq_len=rec // 2, token_dtype="uint16")
        if stdev:
            k.notes.append(f"{sd_keys[0]} (indexed_binary sequences are fixed-length in "
                           "iobench)")
    else:
        fields["record_size"] = rec
        if stdev:
            fields["record_size_stdev"] = stdev
            k.use(sd_keys[0], "record_size_stdev", stdev)
    for key in ("dataset.num_files_train", "dataset.num_samples_per_file"):
        v = k.int_(key, minimum=1)
        to = "files" if key.endswith("train") else "samples_per_file"
        if v is None:
            v = 8 if to == "files" else 1  # DLIO's ConfigArguments defaults
            k.defaults.append(f"{to} = {v} (DLIO's default {key})")
        else:
            k.use(key, to, v)
        fields[to] = v
    _hdf5(k, fmt, fields)
    for key, bad in (("dataset.compression", "none"), ("dataset.keep_files", True)):
        if k.has(key):
            v = k.left[key]
            if v == bad:  # what iobench does anyway
                k.take(key)
                k.use(key, "(iobench's behaviour)", v)

    # reader, train, metric: the replay's fields of the spec
    bs = k.int_("reader.batch_size", minimum=1)
    fields["batch_size"] = bs or 1
    if bs:
        k.use("reader.batch_size", "batch_size", bs)
    else:
        k.defaults.append("batch_size = 1 (DLIO's default reader.batch_size)")
    rt = k.int_("reader.read_threads", minimum=0)
    if rt == 0:
        k.notes.append("reader.read_threads = 0 (iobench needs a reader thread: using 1)")
    if rt is None:
        k.defaults.append("read_threads = 1 (DLIO's default reader.read_threads)")
    elif rt:
        k.use("reader.read_threads", "read_threads", rt)
    fields["read_threads"] = rt or 1
    ep = k.int_("train.epochs", minimum=1)
    fields["epochs"] = ep or 1
    if ep:
        k.use("train.epochs", "epochs", ep)
    else:
        k.defaults.append("epochs = 1 (DLIO's default train.epochs)")
    fields["shuffle"] = _shuffle(k)
    seed = k.int_("train.seed", minimum=0)
    if seed is not None:
        fields["seed"] = seed
        k.use("train.seed", "seed", seed)
    au = k.num("metric.au")
    if au is not None:
        if not 0 < au <= 1:
            raise k.error("metric.au", f"{au:g} must be a fraction in (0, 1], e.g. 0.90")
        fields["au_threshold_pct"] = round(au * 100, 6)
        k.use("metric.au", "au_threshold_pct", fields["au_threshold_pct"])
    else:
        k.defaults.append("au_threshold_pct = 90 (DLIO's default metric.au 0.90)")
    try:
        return validate(TrainingSpec(**fields), f"{k.where} (as iobench)")
    except SpecError as e:  # a combination iobench cannot generate: name it, keep one line
        raise SpecError(f"{k.where}: {e.format_message()}") from None


def _record_bytes(k: _Keys) -> tuple[int, str]:
    """Mean sample bytes and the key they came from."""
    dims = k.int_list("dataset.record_dims")
    len_keys = [x for x in ("dataset.record_length_bytes", "dataset.record_length")
                if k.has(x)]
    if len(len_keys) > 1:
        raise k.error(len_keys[1], f"given together with {len_keys[0]}; keep one")
    if dims is not None:
        et = k.str_("dataset.record_element_type") or "uint8"
        try:
            import numpy as np

            item = np.dtype(et).itemsize
        except TypeError:
            raise k.error("dataset.record_element_type",
                          f"{et!r} is not a numpy dtype (e.g. uint8, float32)") from None
        eb = k.int_("dataset.record_element_bytes", minimum=1)
        item = eb or item
        rec = math.prod(dims) * item
        k.use("dataset.record_dims", "record_size", rec)
        for x in len_keys:
            k.take(x)
            k.notes.append(f"{x} (record_dims takes precedence, as in DLIO)")
        return rec, "dataset.record_dims"
    for x in ("dataset.record_element_type", "dataset.record_element_bytes"):
        if k.has(x):
            k.take(x)
            k.inactive.append(x)  # only used with record_dims
    if not len_keys:
        k.defaults.append("record_size = 65536 (DLIO's default dataset.record_length)")
        return 65536, "dataset.record_length"
    size = k.size(len_keys[0])
    assert size is not None  # the key is present
    k.use(len_keys[0], "record_size", size)
    return size, len_keys[0]


def _hdf5(k: _Keys, fmt: str, fields: dict[str, Any]) -> None:
    chunking = k.bool_("dataset.enable_chunking")
    chunk = k.size("dataset.chunk_size", allow_zero=True)
    if fmt != "hdf5":
        for key, v in (("dataset.enable_chunking", chunking), ("dataset.chunk_size", chunk)):
            if v is not None:
                k.inactive.append(key)  # HDF5-only keys
        return
    if fields.get("layout") == "dlio":  # DLIO's layout: contiguous `records`
        if chunking:
            k.notes.append("dataset.enable_chunking (the dlio layout writes contiguous "
                           "records, DLIO's default)")
        elif chunking is False:
            k.use("dataset.enable_chunking", "(contiguous records)", False)
        if chunk is not None:
            k.inactive.append("dataset.chunk_size")
    elif chunking and chunk:
        fields["hdf5_chunk_bytes"] = chunk
        k.use("dataset.chunk_size", "hdf5_chunk_bytes", chunk)
        k.use("dataset.enable_chunking", "hdf5_chunk_bytes", True)
    elif chunking is False:
        k.notes.append("dataset.enable_chunking = false (iobench's HDF5 files are always "
                       "chunked, 1 MiB chunks)")
        if chunk is not None:
            k.inactive.append("dataset.chunk_size")
    elif chunking and not chunk:
        k.notes.append("dataset.enable_chunking without dataset.chunk_size (iobench uses "
                       "1 MiB chunks)")


def _shuffle(k: _Keys) -> str:
    samples = k.choice("reader.sample_shuffle", SHUFFLES)
    files = k.choice("reader.file_shuffle", SHUFFLES)
    # 'random' differs from 'seed' only in where the seed comes from: iobench seeds it
    if samples not in (None, "off"):
        out = "sample"
    elif files not in (None, "off"):
        out = "file"
    else:
        out = "none"
    for key, v in (("reader.sample_shuffle", samples), ("reader.file_shuffle", files)):
        if v is not None:
            k.use(key, "shuffle", out)
    if samples is None and files is None:
        k.defaults.append("shuffle = none (DLIO's default: sample_shuffle and file_shuffle "
                          "off)")
    return out


def _compute_time(k: _Keys) -> float | None:
    raw = k.take("train.computation_time")
    sd = k.num("train.computation_time_stdev")
    if sd:
        k.notes.append(f"train.computation_time_stdev = {sd:g} "
                       f"({REASONS['train.computation_time_stdev']})")
    if raw is None:
        return None
    key = "train.computation_time"
    if isinstance(raw, Mapping):
        bad = [x for x in raw if x not in COMPUTE_TIME_KEYS]
        if bad:
            raise k.error(f"{key}.{bad[0]}", "unknown distribution key"
                          f"{did_you_mean(str(bad[0]), COMPUTE_TIME_KEYS)}")
        kind = raw.get("type", "normal")
        vals: dict[str, float] = {}
        for x, v in raw.items():
            if x == "type":
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
                raise k.error(f"{key}.{x}", f"expected a number >= 0, got {v!r}")
            vals[str(x)] = float(v)
        means = {"normal": lambda: vals["mean"],
                 "uniform": lambda: (vals["min"] + vals["max"]) / 2,
                 "gamma": lambda: vals["shape"] * vals["scale"],
                 "exponential": lambda: vals["scale"], "poisson": lambda: vals["lam"]}
        if kind not in means:
            raise k.error(f"{key}.type", f"{kind!r} is not a DLIO distribution"
                          f"{did_you_mean(str(kind), tuple(means))}")
        try:
            mean = means[kind]()
        except KeyError as e:
            raise k.error(key, f"a {kind} distribution needs {e.args[0]}") from None
        if kind != "normal" or vals.get("stdev"):
            k.notes.append(f"{key} ({kind} distribution: iobench sleeps its mean, "
                           f"{mean:g} s, every step)")
        k.use(key, "compute_time (s)", mean)
        return mean
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
        raise k.error(key, f"expected seconds per step (a number >= 0) or a distribution, "
                           f"got {raw!r}")
    k.use(key, "compute_time (s)", float(raw))
    return float(raw)


def _train_options(k: _Keys, spec: TrainingSpec) -> dict[str, Any]:
    """Options of `iobench train` the config sets (the command line still wins)."""
    out: dict[str, Any] = {}
    ct = _compute_time(k)
    if ct is not None:
        out["compute_time"] = ct
    steps = k.int_("train.total_training_steps")
    if steps is not None and steps > 0:
        out["max_steps"] = steps
        k.use("train.total_training_steps", "max_steps", steps)
        if spec.epochs > 1:
            k.notes.append("train.total_training_steps (iobench cuts every epoch to it; DLIO "
                           "assumes less than one epoch)")
    elif steps is not None:
        k.use("train.total_training_steps", "(whole epochs)", steps)
    pf = k.int_("reader.prefetch_size", minimum=0)
    if pf is not None:
        out["prefetch"] = pf or 2  # DLIO: 0 means the loaders' default of 2
        k.use("reader.prefetch_size", "prefetch", out["prefetch"])
    od = k.bool_("reader.odirect")
    if od is not None:
        k.use("reader.odirect", "cache", "direct" if od else "(default)")
        if od:
            out["cache"] = "direct"
    ts = k.size("reader.transfer_size")
    if ts is not None:
        out["block_size"] = ts
        k.use("reader.transfer_size", "block_size", ts)
    sce = k.bool_("train.seed_change_epoch")
    if sce is not None:
        if sce:
            k.use("train.seed_change_epoch", "(iobench reshuffles every epoch)", True)
        else:
            k.notes.append("train.seed_change_epoch = false (iobench reshuffles every epoch)")
    fw = k.take("framework")
    if fw is not None:
        if fw not in FRAMEWORKS:
            raise k.error("framework", f"{fw!r} is not a DLIO framework"
                          f"{did_you_mean(str(fw), FRAMEWORKS)}")
        k.use("framework", "(reader threads per accelerator)", fw)
    dl = k.choice("reader.data_loader", DATA_LOADERS)
    if dl in FRAMEWORKS:
        k.use("reader.data_loader", "(read_threads threads per accelerator)", dl)
    elif dl is not None:
        what = ("iobench always reads the data set from storage" if dl in ("synthetic", "none")
                else "iobench reads with its own reader threads")
        k.notes.append(f"reader.data_loader = {dl} ({what})")
    return out


DLIO_CKPT_KEYS = ("checkpoint.model_size", "checkpoint.optimization_groups",
                  "checkpoint.num_layers", "checkpoint.layer_parameters")


def _model_size(k: _Keys, name: str) -> tuple[int, str]:
    """Checkpoint bytes (for one accelerator) and what sized them: model.transformer
    (iobench's Llama count), model.model_size (MLPerf Storage's model section), else DLIO
    2.0.0's checkpoint section with its defaults (`k.sizing` is then set: the bytes
    depend on the accelerator count under type all_ranks)."""
    if any(x.startswith("model.transformer.") for x in k.left) or k.has("model.num_layers"):
        m = _model_spec(k, name, {})
        from iobench.kinds.checkpoint import model as model_mod

        return model_mod.total_bytes(m), "model.transformer"
    dlio2 = any(k.has(x) for x in DLIO_CKPT_KEYS)
    if not dlio2:
        for key in ("model.model_size_bytes", "model.model_size"):
            if k.has(key):
                v = k.size(key)
                assert v is not None
                k.use(key, "checkpoint_size", v)
                for other in ("model.model_size_bytes", "model.model_size"):
                    if k.has(other):
                        k.take(other)
                        k.notes.append(f"{other} ({key} is used)")
                return v, key
    for key in ("model.model_size_bytes", "model.model_size"):
        if k.has(key):
            k.take(key)
            k.notes.append(f"{key} (the checkpoint section sizes the checkpoint, as in "
                           "DLIO 2.0.0)")
    k.sizing = _dlio_sizing(k)
    return k.sizing.total_bytes(1), "checkpoint section (DLIO 2.0.0 sizing)"


def _dlio_sizing(k: _Keys) -> CheckpointSizing:
    """checkpoint.model_size / optimization_groups / num_layers / layer_parameters /
    tensor_parallelism / pipeline_parallelism / type, DLIO 2.0.0's defaults where absent."""
    ms = k.size("checkpoint.model_size", allow_zero=True)
    groups = _int_list0(k, "checkpoint.optimization_groups")
    layers = k.int_("checkpoint.num_layers", minimum=0)
    params = _int_list0(k, "checkpoint.layer_parameters")
    tp = k.int_("checkpoint.tensor_parallelism", minimum=1)
    pp = k.int_("checkpoint.pipeline_parallelism", minimum=1)
    ctype = k.choice("checkpoint.type", CHECKPOINT_TYPES)
    fw = (k.mapped.get("framework") or {}).get("value") or k.left.get("framework")
    sizing = CheckpointSizing(
        model_size=DLIO_MODEL_SIZE if ms is None else ms,
        optimization_groups=tuple(groups or ()),
        num_layers=DLIO_LAYERS if layers is None else layers,
        layer_parameters=DLIO_LAYER_PARAMETERS if params is None else tuple(params),
        tensor_parallelism=tp or 1, pipeline_parallelism=pp or 1,
        all_ranks=ctype == "all_ranks",
        framework="pytorch" if fw == "pytorch" else "tensorflow")
    for by, what in ((sizing.pipeline_parallelism, "checkpoint.pipeline_parallelism"),
                     (sizing.tensor_parallelism, "checkpoint.tensor_parallelism")):
        if sizing.num_layers % by:
            raise k.error("checkpoint.num_layers", f"{sizing.num_layers} is not a multiple "
                          f"of {what} {by} (DLIO refuses it); change one of them")
    given_: tuple[tuple[str, Any, str], ...] = (
            ("checkpoint.model_size", ms, f"model_size = {DLIO_MODEL_SIZE}"),
            ("checkpoint.optimization_groups", groups, "optimization_groups = []"),
            ("checkpoint.num_layers", layers, f"num_layers = {DLIO_LAYERS}"),
            ("checkpoint.layer_parameters", params,
             f"layer_parameters = {list(DLIO_LAYER_PARAMETERS)}"),
            ("checkpoint.tensor_parallelism", tp, "tensor_parallelism = 1"),
            ("checkpoint.pipeline_parallelism", pp, "pipeline_parallelism = 1"),
            ("checkpoint.type", ctype, "type = rank_zero"))
    for key, v, default in given_:
        if v is None:
            k.defaults.append(f"checkpoint.{default} (DLIO 2.0.0's default)")
        else:
            k.use(key, "checkpoint_size (DLIO 2.0.0 sizing)", v)
    return sizing


def _int_list0(k: _Keys, path: str) -> list[int] | None:
    """A list of integers >= 0 (DLIO skips the zero entries); [] allowed."""
    v = k.take(path)
    if v is None:
        return None
    if (not isinstance(v, list)
            or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in v)):
        raise k.error(path, f"expected a list of integers >= 0, got {_short(v)}")
    return list(v)


def _train_checkpoints(k: _Keys, options: dict[str, Any], spec: TrainingSpec) -> int:
    """checkpoint section during training -> --checkpoint-every/--checkpoint-size; returns
    the period in epochs when it is epoch-based (steps are known once the data set is open)."""
    size = _model_size(k, spec.name)
    options["checkpoint_size"] = size[0]
    steps = k.int_("checkpoint.steps_between_checkpoints")
    after = k.int_("checkpoint.checkpoint_after_epoch", minimum=1)
    between = k.int_("checkpoint.epochs_between_checkpoints", minimum=1)
    for key in DLIO_CKPT_KEYS:
        if k.has(key):  # sized by the model section (transformer)
            k.take(key)
            k.notes.append(f"{key} (the model section sizes the checkpoint)")
    if k.sizing is None and k.has("checkpoint.type"):
        k.notes.append(f"checkpoint.type = {_short(k.take('checkpoint.type'))} "
                       f"({REASONS['checkpoint.type']})")
    fsync = k.bool_("checkpoint.fsync")
    if fsync is not None:
        if fsync:
            k.use("checkpoint.fsync", "(iobench always fsyncs)", True)
        else:
            k.notes.append("checkpoint.fsync = false (iobench always fsyncs checkpoints)")
    rnd = k.bool_("checkpoint.randomize_tensor")
    if rnd is False:
        k.notes.append("checkpoint.randomize_tensor = false (iobench writes random content)")
    elif rnd:
        k.use("checkpoint.randomize_tensor", "(iobench writes random content)", True)
    for key in ("checkpoint.mode", "checkpoint.num_checkpoints_write",
                "checkpoint.num_checkpoints_read"):
        if k.has(key):  # DLIO reads these only in checkpoint-only mode (workflow.train off)
            k.take(key)
            k.inactive.append(key)
    if steps is not None and steps > 0:
        options["checkpoint_every"] = steps
        k.use("checkpoint.steps_between_checkpoints", "checkpoint_every (steps)", steps)
        for key, v in (("checkpoint.checkpoint_after_epoch", after),
                       ("checkpoint.epochs_between_checkpoints", between)):
            if v is not None:
                k.inactive.append(key)  # DLIO ignores them when steps_between is set
        return 0
    after, between = after or 1, between or 1
    epochs = spec.epochs
    # DLIO checkpoints at the end of epochs after, after + between, ...; iobench every N
    # epochs: the same set when one period N reproduces it within the run's epochs
    want = list(range(after, epochs + 1, between))
    if not want:
        k.notes.append(f"checkpoint.checkpoint_after_epoch = {after} (after the last of "
                       f"{epochs} epochs: no checkpoint is written, as in DLIO)")
        options.pop("checkpoint_size", None)
        k.sizing = None
        return 0
    period = want[0]
    if list(range(period, epochs + 1, period)) != want:
        period = between
        k.notes.append(f"checkpoint.checkpoint_after_epoch = {after} (iobench checkpoints "
                       f"every {between} epochs from the start)")
    for key in ("checkpoint.checkpoint_after_epoch", "checkpoint.epochs_between_checkpoints"):
        k.use(key, "checkpoint_every (epochs)", period)
    return period


def _model_spec(k: _Keys, name: str, flags: dict[str, Any]) -> Any:
    """model.transformer + num_layers + parallelism -> iobench's checkpoint ModelSpec, its
    transformer an iobench.model.Model (Hugging Face config.json keys)."""
    from iobench.kinds.checkpoint import model as model_mod
    from iobench.model import Model

    if k.has("model.optimization_groups") or k.has("model.layer_parameters"):
        raise SpecError(f"{k.where}: model.optimization_groups/layer_parameters: iobench sizes "
                        "checkpoints from model.transformer and model.num_layers only (DLIO "
                        "ignores the transformer section when these are set); remove them")
    layers = k.int_("model.num_layers", minimum=1)
    if layers is None:
        raise SpecError(f"{k.where}: model.num_layers: needed to size a transformer "
                        "checkpoint (e.g. 32 for Llama 3 8B)")
    k.use("model.num_layers", "model.num_hidden_layers", layers)
    cfg: dict[str, Any] = {"num_hidden_layers": layers}
    # DLIO's model.transformer key -> config.json key, DLIO's default
    for key, to, default in (("hidden_size", "hidden_size", 2048),
                             ("ffn_hidden_size", "intermediate_size", 8192),
                             ("num_attention_heads", "num_attention_heads", 32),
                             ("num_kv_heads", "num_key_value_heads", 8),
                             ("vocab_size", "vocab_size", 32000)):
        v = k.int_(f"model.transformer.{key}", minimum=1)
        if v is None:
            v = default
            k.defaults.append(f"model.{to} = {default} (DLIO's default "
                              f"model.transformer.{key})")
        else:
            k.use(f"model.transformer.{key}", f"model.{to}", v)
        cfg[to] = v
    par: dict[str, Any] = {}
    for key, to in (("tensor", "tp"), ("pipeline", "pp"), ("data", "dp"),
                    ("zero_stage", "zero")):
        v = k.int_(f"model.parallelism.{key}")
        if v is None or (key == "data" and v <= 0):  # data -1: DLIO derives it from ranks
            continue
        if key != "zero_stage" and v < 1:
            raise k.error(f"model.parallelism.{key}", f"{v} must be >= 1")
        par[to] = v
        k.use(f"model.parallelism.{key}", f"parallelism.{to}", v)
    par.setdefault("zero", 0)  # DLIO's default zero_stage; iobench's presets say 3
    par.update({x: v for x, v in flags.items() if v is not None})
    wname = k.left.get("model.model_datatype", "fp16")
    wb = _dtype(k, "model.model_datatype", "fp16")
    ob = _dtype(k, "model.optimizer_datatype", "fp32")
    for key in ("model.model_size", "model.model_size_bytes"):
        if k.has(key):  # sizes the non-transformer checkpoint only
            k.take(key)
            k.notes.append(f"{key} (the transformer architecture sizes the checkpoint)")
    heads = cfg["num_attention_heads"]
    if cfg["num_key_value_heads"] > heads:
        raise SpecError(f"{k.where}: model.transformer.num_kv_heads "
                        f"{cfg['num_key_value_heads']} > num_attention_heads {heads}; "
                        "grouped-query attention has at most as many kv heads as heads")
    # head_dim = hidden // heads, as DLIO computes it
    model = Model(name=name, description="imported from a DLIO config",
                  head_dim=cfg["hidden_size"] // heads, **cfg)
    spec = model_mod.ModelSpec(
        name=name, model=model, parallelism=model_mod.Parallelism(**par),
        description="imported from a DLIO config",
        weight_bytes_per_param=wb, optimizer_bytes_per_param=3 * ob,
        dtype=wname if wname in ("bf16", "fp16", "fp32") else "fp16")
    try:
        return model_mod.validate(spec)
    except SpecError as e:
        raise SpecError(f"{k.where}: {e.format_message()}") from None


def _dtype(k: _Keys, key: str, default: str) -> int:
    v = k.choice(key, tuple(DTYPE_BYTES))
    if v is not None:
        # optimizer state: fp32 master weights + Adam m and v, each of this type
        k.use(key, "weight_bytes_per_param" if "model_" in key
              else "optimizer_bytes_per_param (3 x)", DTYPE_BYTES[v])
    return DTYPE_BYTES[v or default]


def _checkpoint(k: _Keys, name: str, during_train: bool) -> tuple[Any, dict[str, Any]]:
    """model + checkpoint sections -> (ModelSpec, `iobench checkpoint` options)."""
    if not (any(x.startswith("model.transformer.") for x in k.left)
            or k.has("model.num_layers")):
        size = [x for x in ("model.model_size_bytes", "model.model_size",
                            "checkpoint.model_size") if k.has(x)]
        how = f"by {size[0]}" if size else "by DLIO's default model size"
        raise SpecError(f"{k.where}: the model is sized {how}, not described by "
                        "model.transformer and model.num_layers, so iobench checkpoint "
                        "cannot lay it out; use iobench train --dlio-config (checkpoints of "
                        "that size during training) or a checkpoint preset")
    model = _model_spec(k, name, {})
    opts: dict[str, Any] = {}
    mode = k.choice("checkpoint.mode", ("default", "subset"))
    if mode is not None:
        opts["mode"] = "subset" if mode == "subset" else "full"
        k.use("checkpoint.mode", "mode", opts["mode"])
    n_write = k.int_("checkpoint.num_checkpoints_write")
    n_read = k.int_("checkpoint.num_checkpoints_read")
    if n_write is not None and n_write > 0:
        opts["count"] = n_write
        k.use("checkpoint.num_checkpoints_write", "count", n_write)
    elif during_train:
        steps = k.int_("checkpoint.steps_between_checkpoints")
        total = k.int_("train.total_training_steps")  # outside this command's sections
        if steps and steps > 0 and total and total > 0:
            opts["count"] = max(1, total // steps)
            k.use("checkpoint.steps_between_checkpoints", "count", opts["count"])
        elif steps is not None:
            k.notes.append("checkpoint.steps_between_checkpoints (iobench checkpoint writes "
                           "--count checkpoints back to back)")
    if n_read is not None:
        if n_read == 0:
            opts["do_read"] = False
            k.use("checkpoint.num_checkpoints_read", "read", False)
        elif n_read < 0 or n_read == opts.get("count", 1):
            k.use("checkpoint.num_checkpoints_read", "read", True)
        else:
            k.notes.append(f"checkpoint.num_checkpoints_read = {n_read} (iobench restores "
                           "every checkpoint it wrote)")
    fsync = k.bool_("checkpoint.fsync")
    if fsync is False:
        k.notes.append("checkpoint.fsync = false (iobench always fsyncs checkpoints)")
    elif fsync:
        k.use("checkpoint.fsync", "(iobench always fsyncs)", True)
    rnd = k.bool_("checkpoint.randomize_tensor")
    if rnd is False:
        k.notes.append("checkpoint.randomize_tensor = false (iobench writes random content)")
    elif rnd:
        k.use("checkpoint.randomize_tensor", "(iobench writes random content)", True)
    for key in ("checkpoint.checkpoint_after_epoch", "checkpoint.epochs_between_checkpoints"):
        if k.has(key):
            k.take(key)
            k.inactive.append(key)  # epoch placement belongs to training
    fw = k.take("framework")
    if fw is not None and fw not in FRAMEWORKS:
        raise k.error("framework", f"{fw!r} is not a DLIO framework"
                      f"{did_you_mean(str(fw), FRAMEWORKS)}")
    if fw is not None:
        k.use("framework", "(layout: --layout)", fw)
    return model, opts


def _leftovers(k: _Keys, command: str) -> tuple[list[str], list[str]]:
    """Keys no mapping took: listed (with the reason) when this command's sections hold
    them; else they belong to another iobench command."""
    listed: list[str] = []
    other: list[str] = []
    st = k.take("storage.storage_type")
    if st is not None:
        if st not in STORAGE_TYPES:
            raise k.error("storage.storage_type", f"{st!r} is not a DLIO storage type"
                          f"{did_you_mean(str(st), STORAGE_TYPES)}")
        if st not in ("local_fs", "parallel_fs"):
            raise k.error("storage.storage_type", f"{st}: iobench measures a file system "
                          "directory (--target), not object storage; mount it or use DLIO")
        k.use("storage.storage_type", "(a file system under --target)", st)
    for key, value in list(k.left.items()):
        sec = key.split(".", 1)[0]
        if sec not in SECTIONS[command] and sec in KNOWN:
            other.append(key)
            continue
        known = KNOWN.get(sec)
        sub = key.split(".", 1)[1] if "." in key else ""
        if known is None:
            listed.append(f"{key} (not a DLIO section"
                          f"{_hint(sec, tuple(KNOWN))})")
        elif not sub and sec in ("framework", "hydra"):
            listed.append(f"{key} ({REASONS.get(key, GENERIC_REASON)})")
        elif sub not in known:
            listed.append(f"{key} (not a DLIO key{_hint(sub, known, sec)})")
        else:
            reason = REASONS.get(key, GENERIC_REASON)
            listed.append(f"{key} = {_short(value)} ({reason})")
    return listed, other


def _hint(value: str, choices: tuple[str, ...], section: str = "") -> str:
    import difflib

    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    where = f"{section}." if section else ""
    return f"; did you mean '{where}{close[0]}'?" if close else ""


def _short(v: Any) -> str:
    s = repr(v) if isinstance(v, str) else str(v)
    return s if len(s) <= 40 else s[:37] + "..."


__all__ = ["DlioImport", "load", "given", "workload_or_config", "FORMATS"]
