# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A tiny cohort end to end
#
# Two patients (one training, one test) through every stage: anatomy, mesh, fibres, Purkinje
# trees, activation, lead fields, ECGs, realism, the dataset, the encodings, the surrogates, the
# inverse and ECG → activation benchmarks, and the report. On 2 cores its workflow took 2 min
# 50 s at the default, mesh-converged 1.2 mm heart (2026-12-03; the outputs on this page are that
# run's).
#
# Write a config file holding only what differs from the default — the test suite runs this
# tutorial after the same two patients at 4 mm (`tests/test_workflow_anatomy.py`, which also
# shrinks the networks and the benchmarks to seconds):
#
# ```yaml
# # tiny.yaml
# cohort:
#   train: {count: 1, lhs_batch: 1}
#   test: {count: 1, lhs_batch: 1}
# electrodes:
#   anterior_count: 8
# ```
#
# and run the workflow and the report from the repository root:
#
# ```bash
# make run SNAKEMAKE_ARGS="--configfile config/config.yaml tiny.yaml"
# ```
#
# Everything lands in `results/`. The rest of this tutorial walks through it.

# %%
import json
from pathlib import Path

import pandas as pd

results = Path("results")

# %% [markdown]
# ## The cohort
#
# `results/cohort/cohort.csv` has one row per patient: its split, the shape-mode weights (in
# standard deviations), the heart's rotation and translation. Its sidecar gives every column's
# units and meaning.

# %%
cohort = pd.read_csv(results / "cohort/cohort.csv")
sidecar = json.loads((results / "cohort/cohort.json").read_text())
print(cohort[["patient", "split", "heart_mode_01", "torso_mode_01", "rotation_z_deg"]])
print(sorted(sidecar)[:8])

# %% [markdown]
# ## One patient's folder
#
# Each per-patient stage writes under `results/patients/{patient}/`, one sub-folder per stage.

# %%
patient = results / "patients" / cohort.patient.iloc[0]
for stage in sorted(path for path in patient.iterdir() if path.is_dir()):
    print(f"{stage.name:>12}: {', '.join(sorted(p.name for p in stage.iterdir())[:6])}")

# %% [markdown]
# ## The ECGs and how realistic they are
#
# Every scenario's ECG is an `.npz` with the 12 leads in volts; the realism stage's pass rates
# per criterion are in `results/ecg/realism.md`.

# %%
import numpy as np

sinus = np.load(patient / "ecg/sinus.npz")
print("12-lead sinus ECG:", sinus["leads_v"].shape, "peak", f"{np.abs(sinus['leads_v']).max() * 1e3:.2f} mV")
print((results / "ecg/realism.md").read_text()[:400])

# %% [markdown]
# ## The dataset and the report
#
# The whole cohort is one Zarr store, `results/dataset/cohort.zarr` (see
# [Open the cohort](open_cohort.ipynb)); the HTML report gathers the figures and tables.

# %%
assert (results / "dataset/cohort.zarr/zarr.json").exists()
report = results / "report.html"
print(f"{report}: {report.stat().st_size / 1e6:.1f} MB" if report.exists() else "run `make report` for the report")
assert len(cohort) == 2 and set(cohort.split) == {"train", "test"}
