"""The training backbone every model of ecgcohort shares (DeepSDF, the lead-field surrogate,
the inverse-ECG networks, ECG-to-activation networks).

It knows tensors, devices, checkpoints and model files — never anatomy or physics:

* :class:`TrainingSpec` — epochs, batch, learning-rate schedule, checkpoint interval, device,
  precision and seed of one training run (one config section's ``training`` part);
* :class:`TensorTable` — rows of named tensors, resident on the training device when they
  fit; :class:`StreamedTable` — rows read block by block from a Zarr store with dask;
* :func:`fit` — trains a :class:`TrainableModel` with PyTorch Lightning: checkpoints every N
  epochs (atomic), resumes after a kill, bf16 autocast on CUDA, deterministic on the CPU,
  progress lines with loss, samples/s and ETA, per-epoch losses as CSV and PNG;
* :func:`save_model` / :func:`load_model` — model files holding the weights plus the config
  section, normalisation and code version as JSON, loaded with ``torch.load(weights_only=True)``;
* :mod:`ecgcohort.learning.layers` — Fourier features and Lipschitz-bounded linear layers.
"""

from ecgcohort.lazy import lazy_exports

_EXPORTS = {
    "TrainingSpec": "ecgcohort.learning.spec",
    "TrainableModel": "ecgcohort.learning.spec",
    "TensorTable": "ecgcohort.learning.data",
    "StreamedTable": "ecgcohort.learning.data",
    "FitResult": "ecgcohort.learning.spec",
    "fit": "ecgcohort.learning.backbone",
    "resolve_device": "ecgcohort.learning.device",
    "ModelFileError": "ecgcohort.learning.modelfile",
    "save_model": "ecgcohort.learning.modelfile",
    "load_model": "ecgcohort.learning.modelfile",
    "check_compatible": "ecgcohort.learning.modelfile",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
