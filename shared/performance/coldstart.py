"""Cold start: reading the weights from storage into GPU memory, then starting the engine.

Each storage kind's bandwidth is derived from one published load time (CITED_LOADS): the
checkpoint's bytes over the seconds it took. A tensor-parallel group reads its shards from the
same node's storage at once, so the whole checkpoint crosses that one bandwidth whatever the TP
degree. Quantised checkpoints are smaller and load proportionally faster.
"""

from __future__ import annotations

from shared.performance.compat import StrEnum
from shared.performance.hardware import BYTES_PER_PARAM, Quantisation
from shared.performance.models import ModelShape, model
from shared.performance.published import CITED_LOADS, CitedLoad

# Process start, CUDA context, KV-cache allocation and warm-up after the weights are in. An
# ASSUMPTION: the cited load times measure the weights only, and no start-up time was checked.
ENGINE_START_S = 10.0


class Storage(StrEnum):
    """Where a server's weights come from, and with which loader."""

    NETWORK_DISK = "network_disk"  # a cloud block volume (AWS gp3), the default Safetensors loader
    LOCAL_NVME = "local_nvme"  # the server's own SSD, the default PyTorch/Safetensors loaders
    STREAMED = "streamed"  # a fast volume (AWS io2) read by a concurrent streaming loader


def checkpoint_bytes(shape: ModelShape, quantisation: Quantisation = Quantisation.FP16) -> float:
    """Bytes of the model's weights at `quantisation`."""
    return shape.params * BYTES_PER_PARAM[quantisation]


def bandwidth_from(load: CitedLoad) -> float:
    """Bytes per second a published fp16 load reached."""
    return checkpoint_bytes(model(load.model)) / load.seconds


# Derived from CITED_LOADS: network disk 0.33 GB/s, local NVMe 1.64 GB/s, streamed 2.13 GB/s.
STORAGE_BYTES_PER_S: dict[Storage, float] = {Storage(load.storage): bandwidth_from(load) for load in CITED_LOADS}


def load_s(
    name: str | ModelShape, storage: Storage | str, quantisation: Quantisation | str = Quantisation.FP16
) -> float:
    """Seconds to read the model's weights from `storage` into GPU memory."""
    return checkpoint_bytes(model(name), Quantisation(quantisation)) / STORAGE_BYTES_PER_S[Storage(storage)]


def cold_start_s(
    name: str | ModelShape, storage: Storage | str, quantisation: Quantisation | str = Quantisation.FP16
) -> float:
    """Seconds from launch to a ready server: weights load plus engine start."""
    return load_s(name, storage, quantisation) + ENGINE_START_S
