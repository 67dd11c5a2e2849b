"""Where training runs: device, dtype and the process group.

The world size is the launcher's decision (torchrun sets WORLD_SIZE, RANK and LOCAL_RANK; the
Kubernetes Job wraps the command in torchrun with one process per GPU), never a config key here,
so the two cannot disagree. Without a launcher this is one process."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from dataclasses import dataclass

import torch
import torch.distributed as dist

from services.common import envs
from services.common.errors import FailedPrecondition

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Runtime:
    device: torch.device
    # Compute dtype: the autocast dtype (bf16 on CUDA by default; on the CPU only when asked for).
    dtype: torch.dtype
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def autocast(self) -> bool:
        # On the CPU too: the base in bf16 under torch.autocast("cpu") is the recipe measured in
        # docs/trainer.md (1.25x fp32's tokens/s with AVX-512 BF16, the loss a step behind).
        return self.dtype != torch.float32

    @property
    def merged_dtype(self) -> torch.dtype:
        """What "auto" merges into: the training dtype on a GPU, float32 on the CPU (the ONNX export
        and CPU serving work in float32, and a bf16 merge there would only lose precision)."""
        return self.dtype if self.device.type == "cuda" else torch.float32

    def describe(self) -> str:
        name = str(self.device)
        if self.device.type == "cuda":
            name += f" ({torch.cuda.get_device_name(self.device)})"
        return f"{name} {str(self.dtype).replace('torch.', '')} world_size={self.world_size}"

    def barrier(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.barrier()


def launcher_env() -> tuple[int, int, int]:
    """(world_size, rank, local_rank) as a torchrun-style launcher set them."""
    return envs.WORLD_SIZE.get(), envs.RANK.get(), envs.LOCAL_RANK.get()


def setup_runtime(device: str = "auto", dtype: str = "auto") -> Runtime:
    """Pick device and dtype and, under a launcher, join the process group (NCCL on GPUs, gloo on
    CPUs, so the multi-process path also runs on a machine without a GPU)."""
    world_size, rank, local_rank = launcher_env()
    has_cuda = torch.cuda.is_available()
    if device == "auto":
        kind = "cuda" if has_cuda else "cpu"
    elif device.startswith("cuda"):
        if not has_cuda:
            raise FailedPrecondition(f"device {device!r} was asked for but no CUDA GPU is visible")
        kind = "cuda"
    else:
        kind = "cpu"
    if kind == "cuda":
        index = local_rank if (world_size > 1 or ":" not in device) else int(device.split(":", 1)[1])
        torch.cuda.set_device(index)
        torch_device = torch.device("cuda", index)
    else:
        torch_device = torch.device("cpu")
    if dtype == "auto":
        torch_dtype = torch.bfloat16 if kind == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    else:
        torch_dtype = _DTYPES[dtype]
        if kind == "cpu" and torch_dtype != torch.float32:
            log.warning("dtype %s on the CPU: autocast with the base in %s, as asked; measured here (docs/trainer.md) "
                        "bf16 is ~1.25x faster with AVX-512 BF16 but its loss lags fp32's by about a step (float16 "
                        "was not measured)", dtype, dtype)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if kind == "cuda" else "gloo")
    return Runtime(torch_device, torch_dtype, world_size, rank, local_rank)


def teardown_runtime(runtime: Runtime) -> None:
    # No barrier: rank 0 may spend minutes merging and uploading after the last collective, and
    # the other ranks must not time out waiting for it.
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()


def release_memory() -> None:
    """Hand the memory of a finished run back to the machine. The trainer service lives on
    between jobs, and glibc keeps freed heap pages in its arenas: after a LoRA run on 448-token
    rows the idle service still held 12 GB RSS on CPU (the OOM killer then picked it when the
    next job's vLLM teacher started). Collect the model's reference cycles, empty the CUDA
    cache, and ask glibc to return free pages (``malloc_trim``; a no-op elsewhere)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return
    trim(0)


def torch_dtype(name: str, default: torch.dtype) -> torch.dtype:
    return default if name == "auto" else _DTYPES[name]
