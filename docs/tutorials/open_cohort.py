# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Open the cohort
#
# The dataset stage stores the whole cohort in one Zarr store, `results/dataset/cohort.zarr`.
# `ecgcohort.dataset.open_cohort` opens it as a dask-backed xarray Dataset: nothing is read until
# you ask for values. This tutorial plots a patient's 12-lead ECG and the lead field of one
# electrode. Every variable, its dimensions and units: [Stored data format](../reference/data-format.md).

# %%
import matplotlib.pyplot as plt
import numpy as np

from ecgcohort.dataset import open_cohort, open_patient_mesh

cohort = open_cohort("results/dataset/cohort.zarr")
print(cohort)

# %% [markdown]
# ## A 12-lead ECG
#
# `lead_ecg` holds the standard 12 leads from the FEM lead field, in volts, per patient,
# scenario, lead and time (seconds).

# %%
patient = str(cohort.patient.values[0])
ecg = cohort.lead_ecg.sel(patient=patient, scenario="sinus")  # (lead, time), V
figure, axes = plt.subplots(4, 3, figsize=(10, 8), sharex=True)
for axis, lead in zip(axes.T.ravel(), ecg.lead.values):
    axis.plot(ecg.time * 1e3, ecg.sel(lead=lead) * 1e3, color="black", linewidth=1)
    axis.set_title(str(lead), fontsize=9)
for axis in axes[-1]:
    axis.set_xlabel("time (ms)")
figure.supylabel("mV")
figure.tight_layout()
figure.savefig("tutorial_12lead.png", dpi=80)
print(f"{patient}, sinus: QRS peak in V5 {float(ecg.sel(lead='V5').max()) * 1e3:.2f} mV")

# %% [markdown]
# ## A lead field
#
# `grad_lead_field` is ∇Z of each electrode at the patient's sample points (ohm/m); the points
# are `sample_points` (m). The lead field says how strongly a current source at a point shows up
# at the electrode: near the electrode and near the heart it is large.

# %%
points = cohort.sample_points.sel(patient=patient).values * 1e3  # (point, component), mm
grad = cohort.grad_lead_field.sel(patient=patient, electrode="V1").values  # (point, component), ohm/m
magnitude = np.linalg.norm(grad, axis=1)
figure, axis = plt.subplots(figsize=(5, 6))
shown = axis.scatter(points[:, 0], points[:, 2], c=np.log10(magnitude), s=3, cmap="viridis")
axis.invert_yaxis()  # z runs superior to inferior
axis.set_xlabel("x, right to left (mm)")
axis.set_ylabel("z, superior to inferior (mm)")
figure.colorbar(shown, label="log10 |∇Z of V1| (ohm/m)")
figure.savefig("tutorial_lead_field.png", dpi=80)

# %% [markdown]
# ## The patient's mesh group
#
# Per-patient arrays of different sizes (the myocardial mesh, the lead matrix, activation times)
# live in one group per patient.

# %%
mesh = open_patient_mesh("results/dataset/cohort.zarr", patient)
print(mesh.lead_matrix.shape, mesh.activation_time.sel(scenario="sinus").max().values, "s")
assert ecg.shape[0] == 12 and np.isfinite(magnitude).all() and magnitude.max() > 0
