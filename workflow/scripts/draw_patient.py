"""Snakemake adapter: one patient's pictures from its stored data (see ecgcohort.ecg.pictures)."""

from ecgcohort.ecg.pictures import PatientData, PatientPictures, draw_patient
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    scenarios = snakemake.params.scenarios
    draw_patient(
        snakemake.wildcards.patient,
        PatientData(fibres=snakemake.input.fibres, heart=snakemake.input.heart, lv_tree=snakemake.input.lv_tree,
                    rv_tree=snakemake.input.rv_tree, activations=dict(zip(scenarios, snakemake.input.activation)),
                    ecgs=dict(zip(scenarios, snakemake.input.ecg)), sdf=snakemake.input.sdf),
        PatientPictures(fibres=snakemake.output.fibres, purkinje=snakemake.output.purkinje,
                        activations=dict(zip(scenarios, snakemake.output.activation)),
                        ecgs=dict(zip(scenarios, snakemake.output.ecg)), sdf=snakemake.output.sdf))
