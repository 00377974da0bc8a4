import dataclasses

from ecgcohort.conduction.scenarios import ScenarioError, scenarios_from_config

try:
    ACTIVATION_MAPS = scenarios_from_config(config["electrophysiology"]["scenarios"])
except ScenarioError as error:
    raise WorkflowError(f"invalid configuration: {error}") from None
SCENARIOS = list(ACTIVATION_MAPS)


wildcard_constraints:
    scenario="|".join(SCENARIOS),


rule grow_purkinje:
    input:
        heart=rules.assemble_anatomy.output.heart,
    output:
        lv_tree="results/patients/{patient}/purkinje/lv_tree.vtp",
        rv_tree="results/patients/{patient}/purkinje/rv_tree.vtp",
        junctions="results/patients/{patient}/purkinje/junctions.npz",
        preview="results/patients/{patient}/purkinje/purkinje.png",
    params:
        settings=config["electrophysiology"]["purkinje"],
        seed=config["cohort"]["seed"],
    log:
        "results/logs/patients/{patient}/grow_purkinje.log",
    benchmark:
        "results/benchmarks/patients/{patient}/grow_purkinje.tsv"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    conda:
        "../../envs/fem.yaml"
    script:
        "../scripts/grow_purkinje.py"


rule compute_activation:
    input:
        fibres=rules.compute_fibres.output.fibres,
        heart=rules.assemble_anatomy.output.heart,
        # only sinus and LBBB start from the Purkinje junctions; paced maps run beside the trees
        junctions=lambda wildcards: (
            rules.grow_purkinje.output.junctions.format(patient=wildcards.patient)
            if ACTIVATION_MAPS[wildcards.scenario].uses_purkinje
            else []
        ),
    output:
        activation="results/patients/{patient}/activation/{scenario}.npz",
        preview="results/patients/{patient}/activation/{scenario}.png",
    params:
        scenario=lambda wildcards: dataclasses.asdict(ACTIVATION_MAPS[wildcards.scenario]),
        velocities=config["electrophysiology"]["velocity_m_per_s"],
        action_potential=config["electrophysiology"]["action_potential"],
        device=config["electrophysiology"]["device"],
        seed=config["cohort"]["seed"],
    log:
        "results/logs/patients/{patient}/compute_activation/{scenario}.log",
    benchmark:
        "results/benchmarks/patients/{patient}/compute_activation/{scenario}.tsv"
    threads: 1
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(20),
    conda:
        "../../envs/fem.yaml"
    script:
        "../scripts/compute_activation.py"


rule activations:
    """Target: every patient's Purkinje trees and activation map per scenario, with previews."""
    input:
        expand(rules.grow_purkinje.output, patient=PATIENTS),
        expand(rules.compute_activation.output, patient=PATIENTS, scenario=SCENARIOS),
