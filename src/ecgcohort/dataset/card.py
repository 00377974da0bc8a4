"""The dataset card (markdown) of a complete cohort store: layout, sizes, variables, sampled
parameters and demographics, settings, generation time, hardware, software and licences."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ecgcohort.dataset.provenance import UPSTREAM_LICENCES
from ecgcohort.dataset.readers import open_patient_mesh
from ecgcohort.dataset.store import _store_bytes


def _parameter_descriptions(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """name -> description, units, range of the sampled parameters, from the cohort design."""
    if "cohort" not in config:
        return {}
    from ecgcohort.cohort.sampling import design_from_config

    return {d.name: {"description": d.description, "units": d.unit, "range": (d.low, d.high)}
            for d in design_from_config(config["cohort"]).dimensions}


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|")  # a bare | would split the markdown table cell


def _variable_table(dataset) -> list[str]:
    lines = ["| variable | dims | dtype | units | long_name |", "|---|---|---|---|---|"]
    for name in list(dataset.coords) + list(dataset.data_vars):
        v = dataset[name]
        lines.append(f"| `{name}` | ({', '.join(v.dims)}) | {v.dtype} | {_cell(v.attrs.get('units', ''))} | "
                     f"{_cell(v.attrs.get('long_name', ''))} |")
    return lines


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def dataset_card(store: str | Path, config: Mapping[str, Any], meshes: Mapping[str, tuple[int, int]],
                 size_bytes: int, *, root=None, group=None) -> str:
    """The dataset card (markdown) of a complete store: variables, sizes, parameter ranges,
    generation time, hardware, software versions and upstream licences. ``root`` and ``group``
    (the root Dataset and the first patient's group), when given, spare reading them back."""
    import xarray as xr
    import zarr

    # the root's and one group's own metadata files are faster to read than the consolidated
    # listing of every patient's nodes
    ds = root if root is not None else xr.open_zarr(store, consolidated=False)
    patients = [str(p) for p in ds.patient.values]
    packed = ds.attrs.get("layout") == "packed"
    if group is None:
        group = open_patient_mesh(store, patients[0])
    software = json.loads(ds.attrs["software"])
    machine = json.loads(ds.attrs["hardware"])
    splits = {s: int((ds.split.values == s).sum()) for s in sorted(set(ds.split.values.tolist()))}
    sexes = {s: int((ds.sex.values == s).sum()) for s in sorted(set(ds.sex.values.tolist()))}
    # from the store: the fan-in's root holds placeholders of its arrays
    ages = np.asarray(zarr.open_array(str(Path(store) / "age"), mode="r")[...])
    kinds = {k: int((ds.electrode_kind.values == k).sum()) for k in sorted(set(ds.electrode_kind.values.tolist()))}
    nodes = [n for n, _ in meshes.values()]
    cells = [c for _, c in meshes.values()]
    mesh_names = [name for name in group.data_vars]
    groups_bytes = (sum(_store_bytes(Path(store) / name) for name in mesh_names) if packed
                    else _store_bytes(Path(store) / "patients"))
    dt = float(np.diff(ds.time.values[:2])[0]) if ds.sizes["time"] > 1 else float("nan")
    lines = [
        "# ecgcohort cohort: lead fields and ECGs of virtual heart-torso patients",
        "",
        f"Generated {ds.attrs['created']} from ecgcohort revision `{ds.attrs['git_revision']}`. "
        "Every array carries `units` and `long_name`; units are SI unless stated.",
        "",
        "```python",
        "from ecgcohort.dataset import open_cohort, open_patient_mesh",
        "cohort = open_cohort(\"cohort.zarr\")            # lazy, one patient per chunk",
        f"mesh = open_patient_mesh(\"cohort.zarr\", \"{patients[0]}\")  # ragged per-patient arrays",
        "```",
        "",
        "## Layout",
        "",
        "* Root group: one xarray Dataset with dimensions "
        + ", ".join(f"`{d}` ({n})" for d, n in ds.sizes.items())
        + ("; arrays with a `patient` dimension are sharded by several patients, one patient per inner chunk."
           if packed else "; arrays with a `patient` dimension are stored one patient per shard."),
        *(["* The mesh-dependent arrays (myocardial mesh, fibres, grad Z per cell, lead matrix, activation times) "
           "are CF contiguous ragged arrays (CF 1.11, 9.3.3) in the root: every patient's nodes one after another "
           "along `node`, its tetrahedra along `cell`; `node_count` and `cell_count` (attribute `sample_dimension`) "
           "give each patient's share in the `patient` order, and `tetrahedra` index the patient's own nodes."]
          if packed else
          ["* `patients/<id>`: one group per patient with the mesh-dependent arrays over its own `node` and "
           "`cell` dimensions (myocardial mesh, fibres, grad Z per cell, lead matrix, activation times). "
           "Meshes differ between patients, so these arrays cannot share a dimension; separate groups keep them "
           "dense and exact (no padding, no count variables). `node_count` and `cell_count` in the root give "
           "their sizes."]),
        "* Zarr format 3; consolidated metadata (a zarr-python extension of format 3) in the root `zarr.json`. "
        "Without it: `xarray.open_zarr(path, consolidated=False)`.",
        "* Every array is sharded (`sharding_indexed`"
        + ("" if packed else ": one file per patient per array")
        + ", inner chunks of a few MB) with Blosc LZ4 on byte-shuffled values and a crc32c checksum on every "
        "inner chunk: a corrupted byte "
        "fails the read.",
        "* Parameters keep the units they are sampled in (`parameter_units`: standard deviations, degree, mm).",
        "",
        "## Sizes",
        "",
        "| what | count |",
        "|---|---|",
        f"| patients | {len(patients)} ({', '.join(f'{k}: {v}' for k, v in splits.items())}) |",
        f"| sex | {', '.join(f'{k}: {v}' for k, v in sexes.items())} |",
        f"| age | {ages.min():.1f} to {ages.max():.1f} years |",
        f"| electrodes | {ds.sizes['electrode']} ({', '.join(f'{k}: {v}' for k, v in kinds.items())}) |",
        f"| lead-field sample points per patient | {ds.sizes['point']} |",
        f"| scenarios | {ds.sizes['scenario']} ({', '.join(str(s) for s in ds.scenario.values)}) |",
        f"| time steps | {ds.sizes['time']} (dt {dt * 1e3:g} ms) |",
        f"| myocardial nodes per patient | {min(nodes)} to {max(nodes)} |",
        f"| myocardial tetrahedra per patient | {min(cells)} to {max(cells)} |",
        f"| bytes on disk | {size_bytes} ({_mb(size_bytes)}; {'mesh arrays' if packed else 'per-patient groups'} "
        f"{_mb(groups_bytes)}) |",
        "",
        "## Variables (root)",
        "",
        *_variable_table(ds),
        "",
        (f"## Variables (per patient: `open_patient_mesh(store, \"{patients[0]}\")`)" if packed
         else f"## Variables (per patient, `patients/{patients[0]}`)"),
        "",
        *_variable_table(group),
        "",
        "## Sampled parameters",
        "",
        "| parameter | units | range | description |",
        "|---|---|---|---|",
    ]
    described = _parameter_descriptions(config)
    for name, units in zip(ds.parameter.values, ds.parameter_units.values):
        entry = described.get(str(name))
        span = f"[{entry['range'][0]:g}, {entry['range'][1]:g}]" if entry else "not in the cohort design"
        lines.append(f"| `{name}` | {units} | {span} | {entry['description'] if entry else ''} |")
    if "cohort" in config:
        lines += ["", f"Latin-hypercube design, seed {config['cohort'].get('seed')}, uniform in every range. Sex "
                  f"(coordinate `sex`, proportions {config['cohort'].get('sex_proportions')}) and age (variable "
                  f"`age`, years, in {config['cohort'].get('age_years')}) from a Latin hypercube of their own."]
    physics = {key: config[key] for key in ("leadfield", "ecg", "meshing", "fibers") if key in config}
    if physics:
        lines += ["", "## Settings", "", "```json", json.dumps(physics, indent=2, sort_keys=True, default=str), "```",
                  "", "The whole configuration is in the root attribute `config` (JSON)."]
    memory = machine.get("memory_bytes")
    lines += [
        "",
        "## Generation",
        "",
        f"* time: {ds.attrs['created']}",
        f"* hardware (assembly job): {machine.get('cpu_model')}, {machine.get('logical_cores')} logical cores "
        f"({machine.get('usable_cores')} usable), {(memory or 0) / 2 ** 30:.1f} GiB RAM, {machine.get('platform')}",
        *_kernel_lines(machine.get("numeric_kernels")),
        f"* git revision: `{ds.attrs['git_revision']}`",
        "",
        "| software | version | licence (package metadata) |",
        "|---|---|---|",
        *(f"| {name} | {entry['version']} | {entry['licence']} |" for name, entry in sorted(software.items())),
        "",
        "## Licences of upstream software and assets",
        "",
        "| upstream | licence | used for |",
        "|---|---|---|",
        *(f"| {name} | {licence} | {use} |" for name, licence, use in UPSTREAM_LICENCES),
        "",
        "The generated data are derived from these tools' outputs; check their terms before redistribution.",
        "",
    ]
    return "\n".join(lines)


def _kernel_lines(kernels: dict[str, list[str]] | None) -> list[str]:
    """The card's line on the numeric kernels the assembly job ran on (none for a store written
    before they were recorded)."""
    if not kernels:
        return []
    return [f"* numeric kernels (assembly job): BLAS {', '.join(kernels['blas']) or 'none loaded'}; NumPy SIMD "
            f"{', '.join(kernels['numpy_simd']) or 'baseline only'}. Other kernels change the last bits of the "
            "anatomy and so the mesh: a cohort generated again reproduces bit for bit only on the same kernels"]
