# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Load a release without ecgcohort
#
# `snakemake release --cores N` packs the cohort into `results/release/`, the folder to publish
# ([Publish a release](../how-to/publish-release.md)). Its readers need no ecgcohort: xarray and
# zarr for the store, pandas (with pyarrow) for the table, wfdb for the ECG records, mlcroissant
# for the Croissant description. This tutorial uses only those.

# %%
import numpy as np
import pandas as pd
import wfdb
import xarray as xr

release = "results/release"
cohort = xr.open_zarr(f"{release}/cohort.zarr")
table = pd.read_parquet(f"{release}/metadata.parquet")
print(table[["patient", "split", "scenario", "zarr_index", "wfdb_record"]].head())

# %% [markdown]
# ## One patient × scenario
#
# The table's `zarr_index` is the patient's index in the store. The meshes are stored as CF
# ragged arrays: every patient's nodes and cells one after another, `node_count` and
# `cell_count` saying how many are whose.

# %%
row = table[(table.patient == "test-0000") & (table.scenario == "sinus")].iloc[0]
i = int(row.zarr_index)
ecg = cohort.lead_ecg.isel(patient=i).sel(scenario="sinus")          # (lead, time), V
nodes = np.concatenate([[0], np.cumsum(cohort.node_count.values)])
cells = np.concatenate([[0], np.cumsum(cohort.cell_count.values)])
mesh = cohort[["node_position", "tetrahedra", "lead_matrix"]].isel(
    node=slice(nodes[i], nodes[i + 1]), cell=slice(cells[i], cells[i + 1]))

# %% [markdown]
# ## The same ECG from its WFDB record
#
# Every 12-lead ECG is also a WFDB record (16-bit, mV).

# %%
record = wfdb.rdrecord(f"{release}/{row.wfdb_record}")                # the same ECG, mV
deviation = np.abs(record.p_signal.T / 1e3 - ecg.values).max()
print(f"{row.patient}: {mesh.sizes['node']} nodes, lead matrix {mesh.lead_matrix.shape}, "
      f"WFDB vs store {deviation:.1e} V")

# %% [markdown]
# ## Through Croissant
#
# `croissant.json` describes the table, the store and the records (Croissant 1.0, MLCommons);
# any Croissant reader iterates the records.

# %%
import mlcroissant as mlc

records = list(mlc.Dataset(jsonld=f"{release}/croissant.json").records("ecg_records"))
print(len(records), "records;", records[0]["ecg_records/patient"].decode(), records[0]["ecg_records/scenario"].decode())
assert len(records) == len(table) and deviation < 1e-5  # 16-bit quantisation of a mV-scale signal
