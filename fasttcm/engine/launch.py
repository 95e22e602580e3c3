"""``launch``: Detectron2's multi-process launcher, also on machines without GPUs.

Detectron2 0.6's ``detectron2.engine.launch`` asserts CUDA and uses NCCL, so ``--num-gpus N`` cannot run on a
CPU-only machine. :func:`launch` keeps Detectron2's behaviour where GPUs are available (it calls Detectron2's
``launch``) and otherwise starts ``N`` CPU worker processes per machine that join a ``gloo`` process group, with
the same local process groups Detectron2 sets up (``detectron2.utils.comm``), so ``comm.get_rank()``,
``comm.get_local_rank()``, ``comm.gather`` and the evaluators' gathering behave as on GPUs. Multi-machine flags
(``--num-machines``, ``--machine-rank``, ``--dist-url``) mean the same on both paths.
"""
from __future__ import annotations

import logging
import os
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from .. import _detectron2  # noqa: F401,I001  (first: supplies detectron2._C before detectron2 loads)
from detectron2.engine import launch as d2_launch
from detectron2.engine.launch import DEFAULT_TIMEOUT
from detectron2.utils import comm

__all__ = ["launch", "choose_backend", "DEFAULT_TIMEOUT"]

logger = logging.getLogger(__name__)


def choose_backend(num_processes_per_machine: int, backend: str = "auto") -> str:
    """``"nccl"`` when CUDA has at least ``num_processes_per_machine`` devices, else ``"gloo"`` (``backend``
    other than ``"auto"`` is returned as given, lower-cased)."""
    if backend != "auto":
        return backend.lower()
    if torch.cuda.is_available() and torch.cuda.device_count() >= num_processes_per_machine:
        return "nccl"
    return "gloo"


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(main_func, num_gpus_per_machine: int, num_machines: int = 1, machine_rank: int = 0,
           dist_url: str | None = None, args=(), timeout: timedelta = DEFAULT_TIMEOUT, backend: str = "auto"):
    """Run ``main_func(*args)`` in ``num_gpus_per_machine`` processes on each of ``num_machines`` machines.

    With one process in all it runs in this process. With CUDA devices for every local process (or
    ``backend="nccl"``) this is Detectron2's ``launch``; otherwise each process is a CPU worker in a ``gloo``
    group (``num_gpus_per_machine`` then counts processes). ``dist_url="auto"`` picks a free local port
    (single machine only).
    """
    world_size = num_machines * num_gpus_per_machine
    if world_size <= 1:
        return main_func(*args)
    if choose_backend(num_gpus_per_machine, backend) == "nccl":
        return d2_launch(main_func, num_gpus_per_machine, num_machines=num_machines, machine_rank=machine_rank,
                         dist_url=dist_url, args=args, timeout=timeout)
    if dist_url == "auto" or not dist_url:
        if num_machines > 1:
            raise ValueError("--dist-url auto works on one machine only; give tcp://HOST:PORT of machine 0")
        dist_url = f"tcp://127.0.0.1:{_free_port()}"
    logger.info(f"launching {num_gpus_per_machine} CPU worker process(es) per machine on gloo ({dist_url})")
    mp.spawn(_gloo_worker, nprocs=num_gpus_per_machine, daemon=False,
             args=(main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, args, timeout))


def _gloo_worker(local_rank, main_func, world_size, per_machine, machine_rank, dist_url, args, timeout):
    rank = machine_rank * per_machine + local_rank
    # share the machine's cores between its workers instead of each using all of them
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // per_machine))
    try:
        dist.init_process_group(backend="gloo", init_method=dist_url, world_size=world_size, rank=rank,
                                timeout=timeout)
    except Exception:
        logger.error(f"could not join the gloo process group at {dist_url} as rank {rank} of {world_size}")
        raise
    if comm._LOCAL_PROCESS_GROUP is not None:
        raise RuntimeError("a local process group already exists in this process")
    # one group per machine, created by every rank in the same order (torch.distributed requires it)
    for m in range(world_size // per_machine):
        group = dist.new_group(list(range(m * per_machine, (m + 1) * per_machine)))
        if m == machine_rank:
            comm._LOCAL_PROCESS_GROUP = group
    comm.synchronize()
    try:
        main_func(*args)
    finally:
        dist.destroy_process_group()
