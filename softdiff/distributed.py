"""Multi-process plumbing on ``torch.distributed``, launched by ``torchrun`` (one machine or many).

A process learns its place from the variables torchrun sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``); without them it is a world of one and
nothing here touches ``torch.distributed`` at all, so single-process runs pay nothing.
:func:`resolve_device` turns ``--device`` into the device each process starts from.

:func:`distributed` joins the process group for the length of a ``with`` block (NCCL on
CUDA, gloo on CPU) and yields a :class:`DistContext` with the few collectives softdiff
needs: a mean for logged metrics, a barrier around checkpoint writes, and a gather of
results to rank 0. :func:`relaunch` re-runs the current command under torchrun on this
machine (``--nproc N``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = [
    "DistContext",
    "distributed",
    "env_world",
    "is_main_process",
    "shard_range",
    "relaunch",
    "strip_option",
    "call_forwarding_sigterm",
    "resolve_device",
]


DEVICES = "auto, cpu, cuda or cuda:N"


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; an unknown or missing device is a one-line ``ValueError``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):  # torch's parse error for names like "tpu" or ""
        raise ValueError(f"unknown device {name!r}; use {DEVICES}") from None
    if device.type == "cpu" and device.index in (None, 0):
        return torch.device("cpu")
    if device.type != "cuda":
        raise ValueError(f"device {name!r} is not supported; use {DEVICES}")
    if not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for CUDA but no CUDA device is available; use --device cpu or auto")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


def env_world() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's environment; ``(0, 1, 0)`` outside it."""
    try:
        rank = int(os.environ.get("RANK", "0"))
        world = int(os.environ.get("WORLD_SIZE", "1"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise ValueError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them)") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return rank, world, local


def is_main_process() -> bool:
    """True on rank 0 and in a plain single process (only it prints and writes files)."""
    return env_world()[0] == 0


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the job, and the collectives that need no thought from callers.

    With ``world == 1`` every method is a no-op (or the identity), so code written against a
    context runs unchanged in a single process.
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when there is a process group to talk to (more than one process)."""
        return self.world > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def mean(self, value: Tensor) -> Tensor:
        """The average of ``value`` over all ranks (a copy; the same result on every rank)."""
        out = value.detach().clone()
        if self.active:
            dist.all_reduce(out, op=dist.ReduceOp.SUM)
            out /= self.world
        return out

    def wrap(self, net: nn.Module) -> nn.Module:
        """``net`` inside DistributedDataParallel (gradients averaged over ranks), or ``net`` itself."""
        if not self.active:
            return net
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(net, device_ids=ids)

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0, in rank order; ``None`` on the other ranks."""
        if not self.active:
            return [obj]
        out: list[Any] | None = [None] * self.world if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def fail_together(self, message: str | None) -> None:
        """Raise ``ValueError(message)`` on every rank when any rank has one (rank 0 refused a locked folder)."""
        messages: list[Any] = [message]
        if self.active:
            messages = [None] * self.world
            dist.all_gather_object(messages, message)
        first = next((m for m in messages if m), None)
        if first is not None:
            raise ValueError(first)

    def check_same(self, value: int, what: str) -> None:
        """Fail on every rank when the ranks disagree on ``value`` (e.g. a step read from disk)."""
        if not self.active:
            return
        values: list[Any] = [None] * self.world
        dist.all_gather_object(values, value)
        if len(set(values)) != 1:
            raise ValueError(f"the ranks disagree on {what}: {values}; do all machines see the same files?")


def _place(device: torch.device, local_rank: int, world: int) -> torch.device:
    """Under torchrun each process drives the GPU of its ``LOCAL_RANK``."""
    if device.type != "cuda":
        return device
    if device.index is not None and world == 1:
        return device
    if local_rank >= torch.cuda.device_count():
        raise ValueError(
            f"LOCAL_RANK {local_rank} has no GPU: this machine has {torch.cuda.device_count()}; "
            "start at most that many processes per node (--nproc_per_node)"
        )
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


@contextmanager
def distributed(device: torch.device | str = "cpu") -> Iterator[DistContext]:
    """Join torchrun's process group for the block (if there is one) and yield this rank's context.

    The backend follows the device: NCCL for CUDA, gloo for the CPU. A group that the caller
    already initialised is used as it is and left open; one this function opened is closed.
    """
    rank, world, local = env_world()
    place = _place(torch.device(device), local, world)
    ctx = DistContext(rank, world, local, place)
    if world == 1 or dist.is_initialized():
        if dist.is_initialized() and dist.get_world_size() != world:
            raise ValueError(f"the process group has {dist.get_world_size()} ranks but WORLD_SIZE is {world}")
        yield ctx
        return
    backend = "nccl" if place.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=world, device_id=place if backend == "nccl" else None)
    try:
        yield ctx
    finally:
        dist.destroy_process_group()


def shard_range(n: int, rank: int, world: int) -> range:
    """Rank ``rank``'s contiguous block of ``range(n)``; blocks differ in size by at most one."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (rank < extra))


def strip_option(args: Sequence[str], name: str) -> tuple[list[str], str | None]:
    """``args`` without ``name VALUE`` / ``name=VALUE``, and the value (the last one given)."""
    out: list[str] = []
    value: str | None = None
    items = iter(args)
    for arg in items:
        if arg == name:
            value = next(items, None)
            if value is None:
                raise ValueError(f"{name} needs a value")
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
        else:
            out.append(arg)
    return out, value


def relaunch(command: str, nproc: int, argv: Sequence[str] | None = None, *, pythonpath: Sequence[str] = ()) -> int:
    """Re-run ``softdiff COMMAND ...`` (this process's arguments minus ``--nproc``) on ``nproc`` processes.

    Uses ``python -m torch.distributed.run --standalone ... -m softdiff COMMAND``: a rendezvous on
    this machine only. ``pythonpath`` folders go first on the workers' ``PYTHONPATH``: a plugin
    module this process imported from a folder of its own ``sys.path`` (a launcher script's
    ``sys.path.insert``) is found there too.
    For several machines call torchrun yourself (see docs/distributed.md). Returns the exit code.
    """
    if "WORLD_SIZE" in os.environ:
        raise ValueError("--nproc starts torchrun itself; under torchrun (WORLD_SIZE is set) leave it out")
    argv = list(sys.argv[1:] if argv is None else argv)
    if command not in argv:
        raise ValueError(f"--nproc re-launches the command line, which must contain '{command}' (got {argv})")
    rest, _ = strip_option(argv[argv.index(command) + 1 :], "--nproc")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    env = None
    if pythonpath:
        inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([*pythonpath, *inherited])}
    return call_forwarding_sigterm([*launcher, "-m", "softdiff", command, *rest], env=env)


def call_forwarding_sigterm(args: Sequence[str], env: dict[str, str] | None = None) -> int:
    """Run ``args`` and return its exit code, passing a SIGTERM sent to this process on to it.

    A scheduler that signals the launching ``softdiff train --nproc N`` reaches torchrun, which
    passes the signal to every worker (they checkpoint and stop). Ctrl-C already reaches the
    whole process group from the terminal, so SIGINT is ignored here rather than sent twice.
    """
    child = subprocess.Popen(list(args), env=env)
    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signum)),
        signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
    }
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
