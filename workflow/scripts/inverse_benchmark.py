"""Snakemake adapter: the inverse benchmark's tables and figures (see ecgcohort.inverse.report)."""

from ecgcohort.inverse.report import inverse_benchmark_job
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    inverse_benchmark_job(
        metrics_csvs=list(snakemake.input.metrics), estimates_npzs=list(snakemake.input.estimates),
        keys=[tuple(run) for run in snakemake.params.runs],
        dynamics_npzs=dict(zip(snakemake.params.dynamics_keys, snakemake.input.dynamics)),
        surfaces_npzs=dict(zip(snakemake.params.patients, snakemake.input.surfaces)),
        model_npzs=dict(zip(snakemake.params.model_keys, snakemake.input.models)),
        out_metrics=snakemake.output.metrics, out_summary=snakemake.output.summary,
        out_markdown=snakemake.output.markdown, out_timing=snakemake.output.timing, out_fig9=snakemake.output.fig9,
        out_fig10=snakemake.output.fig10, out_fig11=snakemake.output.fig11,
        out_activation=snakemake.output.activation, out_axes=snakemake.output.axes,
        mismatches=dict(snakemake.params.mismatches), noise_models=dict(snakemake.params.noise_models),
        time_unit_ms=snakemake.params.time_unit_ms)
