# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Train and evaluate a lead-field surrogate
#
# The surrogate NN_LF(x, ẽ, z) → ∇Z learns the lead field of every electrode from the point x,
# the electrode's normalised position ẽ and a code z of the patient's geometry
# ([Lead-field surrogate](../methods/surrogate.md)). Once trained, it gives a new patient's ECG
# from the patient's surfaces alone: no mesh, no FEM solve.
#
# ## Train and evaluate
#
# The surrogate stage trains one network per encoding (`pca`, `deepsdf`) and target form
# (`full`, `pseudo_residual`) on the training patients of the dataset and evaluates each on the
# test patients against FEM and the pseudo lead field; `summarize_surrogate` writes Table 1.
# A small one, with few epochs, for a first look:
#
# ```yaml
# # small-surrogate.yaml
# surrogate:
#   encodings: [deepsdf]
#   targets: [pseudo_residual]
#   training: {epochs: 4}
# ```
#
# ```bash
# .venv/bin/snakemake --profile profiles/local --cores 2 results/surrogate/table1.md \
#     --configfile config/config.yaml small-surrogate.yaml
# ```
#
# The test suite runs this tutorial after its two-patient run, whose surrogates train for two
# epochs: the numbers below are then far from the recorded runs'
# ([Benchmarks](../results/benchmarks.md)); the code is the same.
#
# The outputs on this page come from the tiny cohort of [the first tutorial](tiny_cohort.ipynb),
# which has one training patient. A surrogate that has seen one geometry cannot generalise to
# another. The PCA code, for example, is standardised over the training patients, so the only
# training patient's code is all zeros. The network never sees the code vary, and its error on
# the test patient measures nothing. The default cohort's surrogates train on six patients:
# their Table 1 is on [Benchmarks](../results/benchmarks.md).

# %%
import numpy as np
import pandas as pd

table = pd.read_csv("results/surrogate/table1.csv")
ours = table[table.source == "ours"]
print(ours[["model", "angular_error_heart_deg_mean", "ecg_relative_l2_mean_mean"]].to_string(index=False))
print(open("results/surrogate/table1.md").read()[:600])

# %% [markdown]
# ## A new patient's ECG from its surfaces
#
# The geometry code comes from the heart and torso surfaces by MAP inference with the DeepSDF
# decoder; the surrogate then gives the lead matrix on the patient's myocardium, and the ECG
# follows from an activation map exactly as in the FEM path (φ = L V_m).

# %%
from ecgcohort.conduction.action_potential import action_potential_template
from ecgcohort.conduction.maps import load_activation
from ecgcohort.config import load_config_files
from ecgcohort.ecg import read_electrode_table, time_grid_ms
from ecgcohort.encoding import MapSpec, infer_code, load_shape_model
from ecgcohort.fibers import load_fibres
from ecgcohort.leadfield import Conductivities, intracellular_tensors
from ecgcohort.surrogate import ecg_from_lead_matrix, load_surrogate

patient = "results/patients/test-0000"
# the geometry code from the surfaces alone: MAP inference with the DeepSDF decoder
code = infer_code(f"{patient}/anatomy/heart.vtp", f"{patient}/anatomy/torso.vtp",
                  load_shape_model("results/encoding/deepsdf/model.pt"),
                  spec=MapSpec(iterations=300, points_per_iteration=4096)).code
surrogate = load_surrogate("results/surrogate/deepsdf/pseudo_residual/model.pt")
electrodes = read_electrode_table(f"{patient}/anatomy/electrodes.csv")   # mm and normalised
myocardium = load_fibres(f"{patient}/fibres/fibres.npz")                 # nodes (mm), tets, fibres
config = load_config_files(["config/config.yaml"], "workflow/schemas/config.schema.yaml")
sigma = Conductivities.from_config(config["leadfield"]["conductivity_s_per_m"])  # the run's S/m
lead = surrogate.lead_matrix(myocardium.points_mm * 1e-3, myocardium.tetrahedra,
                             intracellular_tensors(myocardium.cell_structure, sigma),
                             electrodes.positions_mm * 1e-3, electrodes.normalised, code)
sinus = load_activation(f"{patient}/activation/sinus.npz")
template = action_potential_template(1000.0, cache_dir="results/cache/action_potential")
unipolar, leads = ecg_from_lead_matrix(lead, electrodes.names, sinus.activation_ms, sinus.apd_scale,
                                       time_grid_ms(600.0, 1.0), template,   # V, (E, 601) and (12, 601)
                                       sinus.upstroke_ms)
fem = np.load(f"{patient}/ecg/sinus.npz")["leads_v"]                      # the FEM path's ECG
error = np.linalg.norm(leads - fem, axis=1) / np.linalg.norm(fem, axis=1)
print("relative l2 error per lead:", error.round(3))
assert leads.shape == fem.shape == (12, 601) and np.isfinite(error).all()
