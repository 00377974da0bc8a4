"""Snakemake adapter: one patient's recording sites and simulation bank (see ecgcohort.ecg2act.jobs)."""

from pathlib import Path

from ecgcohort.ecg2act.jobs import BankMesh, PatientSurfaces, simulation_bank_job
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    simulation_bank_job(
        patient=snakemake.wildcards.patient, split=snakemake.params.split, fibres_npz=snakemake.input.fibres,
        junctions_npz=snakemake.input.junctions, chunk_paths=list(snakemake.input.chunks), bank=snakemake.params.bank,
        seed=snakemake.params.seed, action_potential=snakemake.params.action_potential,
        template_cache_dir=snakemake.params.template_cache_dir, out_zarr=snakemake.output.bank,
        out_sites=snakemake.output.sites, threads=snakemake.threads,
        bank_mesh=None if snakemake.params.bank_mesh is None else BankMesh(**snakemake.params.bank_mesh),
        surfaces=PatientSurfaces(**{key: Path(snakemake.input[key]) for key in ("heart", "torso", "heart_model",
                                                                              "torso_model")}),
        resampling_cache_dir=snakemake.params.resampling_cache_dir)
