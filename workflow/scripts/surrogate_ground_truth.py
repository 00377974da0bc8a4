"""Snakemake adapter: a surrogate against the FEM of the dataset's mesh and the converged reference on one test
patient (see ecgcohort.surrogate)."""

from ecgcohort.batches import resolved_inputs
from ecgcohort.logs import logging_to
from ecgcohort.surrogate.jobs import surrogate_ground_truth_job

import torch  # after ecgcohort: under ecgcohort.worker the job hands its script over before this

with logging_to(snakemake.log[0]):
    inputs = resolved_inputs(snakemake.input, snakemake.params.chain)
    torch.set_num_threads(snakemake.threads)
    surrogate_ground_truth_job(
        patient=snakemake.wildcards.patient, electrodes_csv=inputs.electrodes,
        leadfield_chunks=list(inputs.chunks), model_path=inputs.model,
        codes_csv=inputs.codes, points_npz=inputs.points,
        dataset_level_npz=inputs.dataset_level, reference_level_npz=inputs.reference_level,
        device=snakemake.params.device, out_json=snakemake.output.summary)
