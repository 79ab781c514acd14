"""Which torch device a job trains on, and a loud error when a promised GPU is missing."""

import logging
import os

import torch

log = logging.getLogger(__name__)


def resolve_device(setting, gpus=0):
    """The torch device for a ``device`` setting (auto, cpu, cuda) and a GPU promise.

    ``gpus`` is the number of GPUs the job was promised (the rule's ``gpu``
    resource, set by the gpu and slurm-gpu profiles). A promised GPU that
    PyTorch cannot see is an error, not a silent CPU run: on a cluster that
    means a misconfigured node or a CPU-only PyTorch build, and the job would
    otherwise hold a GPU for hours while training on the CPU.

    Raises
    ------
    RuntimeError
        If ``cuda`` is asked for, or a GPU was promised, and PyTorch sees no CUDA device.
    ValueError
        For any other value.
    """
    if setting not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda; got {setting!r}")
    if setting == "cpu":
        if gpus:
            log.warning("device: cpu in the config wins over the %d GPU(s) this job holds", gpus)
        return torch.device("cpu")
    if setting == "cuda" or gpus:
        if not torch.cuda.is_available():
            why = (
                "device: cuda was requested"
                if setting == "cuda"
                else (
                    f"this job was promised {gpus} GPU(s) (resources: gpu={gpus}, from the profile)"
                )
            )
            raise RuntimeError(
                f"{why} but PyTorch sees no CUDA device (torch {torch.__version__}, built with "
                f"CUDA: {torch.version.cuda or 'no'}, CUDA_VISIBLE_DEVICES="
                f"{os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')}). Run on a GPU node with a "
                "CUDA build of PyTorch, use a CPU profile, or set the model's device to cpu."
            )
        return torch.device("cuda")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
