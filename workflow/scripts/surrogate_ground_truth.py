"""Snakemake adapter: a surrogate against the FEM of the dataset's mesh and the converged reference on one test
patient (see ecgcohort.surrogate)."""

import torch

from ecgcohort.logs import logging_to
from ecgcohort.surrogate.jobs import surrogate_ground_truth_job

with logging_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    surrogate_ground_truth_job(
        patient=snakemake.wildcards.patient, electrodes_csv=snakemake.input.electrodes,
        leadfield_chunks=list(snakemake.input.chunks), model_path=snakemake.input.model,
        codes_csv=snakemake.input.codes, points_npz=snakemake.input.points,
        dataset_level_npz=snakemake.input.dataset_level, reference_level_npz=snakemake.input.reference_level,
        device=snakemake.params.device, out_json=snakemake.output.summary)
