"""Model files: weights plus JSON metadata (config section, normalisation, code version),
readable with ``torch.load(weights_only=True)`` — no arbitrary objects are unpickled."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any, Mapping

import torch

from ecgcohort.io import atomic_path

FORMAT = "ecgcohort-model-1"


class ModelFileError(ValueError):
    """A model file that cannot be used: unreadable, of another kind, or from another config."""


def code_version() -> dict[str, str]:
    """The ecgcohort version and git revision that wrote a file."""
    from importlib import metadata

    from ecgcohort.dataset.provenance import git_revision

    try:
        version = metadata.version("ecgcohort")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {"ecgcohort": version, "git_revision": git_revision(), "torch": torch.__version__}


def save_model(path: str | Path, state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]) -> None:
    """Write ``state_dict`` (tensors, moved to the CPU) and ``metadata`` (JSON-able; must hold
    ``kind``) atomically; the code version and creation time are added."""
    if "kind" not in metadata:
        raise ValueError("model metadata needs a 'kind'")
    meta = {**metadata, "format": FORMAT, "code_version": code_version(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    payload = {"state_dict": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()},
               "metadata_json": json.dumps(meta, sort_keys=True)}
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)


def load_model(path: str | Path, kind: str | None = None,
               map_location: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, metadata) of a model file, loaded without unpickling arbitrary objects.
    ``kind`` given: a file of another kind is refused."""
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
        metadata = json.loads(payload["metadata_json"])
        state = payload["state_dict"]
    except FileNotFoundError:
        raise
    except Exception as error:  # noqa: BLE001 - any unreadable file gets one clear message
        raise ModelFileError(f"{path} is not an ecgcohort model file: {error}") from error
    if metadata.get("format") != FORMAT:
        raise ModelFileError(f"{path}: format {metadata.get('format')!r}, expected {FORMAT!r}")
    if kind is not None and metadata.get("kind") != kind:
        raise ModelFileError(f"{path} holds a '{metadata.get('kind')}' model, expected '{kind}'")
    return state, metadata


def check_compatible(path: str | Path, stored: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """Refuse a model whose stored settings differ from ``expected`` (flattened dotted keys are
    compared; only keys present in ``expected``), naming every differing key and both values."""
    differences = []
    for key, want in _flatten(expected).items():
        have = _flatten(stored).get(key, "<missing>")
        if _canonical(have) != _canonical(want):
            differences.append(f"{key}: model has {have!r}, this config asks for {want!r}")
    if differences:
        raise ModelFileError(f"{path} was trained with another configuration; retrain it or use the "
                             f"matching config ({'; '.join(differences)})")


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
