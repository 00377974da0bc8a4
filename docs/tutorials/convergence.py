# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Choose a mesh resolution
#
# How fine must the mesh be for your question? The convergence stage meshes the same patient at
# a ladder of element sizes (`convergence.levels`), computes the ECG and the lead fields at each,
# and measures every level against the finest: the ECG's relative error, how much of it comes from
# the lead field and how much from the activation, and the error of ∇Z in the myocardium. The
# ladder behind the [Verification](../results/verification.md) page is `config/convergence.yaml`.
#
# ```bash
# .venv/bin/snakemake --profile profiles/local --cores 2 convergence --configfile config/convergence.yaml
# ```
#
# The table is `results/convergence/convergence.csv` (and `convergence.md`); the test suite runs
# this tutorial on a two-level ladder (4 and 3 mm).

# %%
import pandas as pd

table = pd.read_csv("results/convergence/convergence.csv")
ladder = table[table.gradient == "p1"]
print(ladder[["patient", "heart_mm", "torso_mm", "nodes", "ecg_error", "lead_field_share", "activation_share",
              "total_s"]].to_string(index=False))

# %% [markdown]
# ## Pick the coarsest level within a tolerance
#
# The error is measured against the ladder's finest level (`reference`), so it is a lower bound
# on the error against the true solution; the order columns say how fast it falls. Choose the
# coarsest level whose ECG error is within your tolerance for every patient of the ladder, then
# set `meshing.heart_element_size_mm` and `meshing.torso_element_size_mm` to it
# ([Configure a cohort](../how-to/configure.md#the-mesh-size)).

# %%
tolerance = 0.10  # 10 % relative ECG error
measured = ladder[~ladder.reference]
worst = measured.groupby(["heart_mm", "torso_mm"]).ecg_error.max().sort_index(ascending=False)
within = worst[worst <= tolerance]
if len(within):
    heart_mm, torso_mm = within.index[0]
    print(f"coarsest level within {tolerance:.0%}: heart {heart_mm} mm, torso {torso_mm} mm "
          f"(worst patient {within.iloc[0]:.1%})")
else:
    finest = ladder[ladder.reference].iloc[0]
    print(f"no measured level is within {tolerance:.0%} (worst errors: {dict(worst.round(3))}): "
          f"extend the ladder, or use the reference level {finest.heart_mm} / {finest.torso_mm} mm")
assert ladder.reference.any() and (measured.ecg_error > 0).all() and (measured.ecg_error < 1).all()
