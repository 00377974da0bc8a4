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


rule compute_activations:
    input:
        fibres=rules.compute_fibres.output.fibres,
        heart=rules.assemble_anatomy.output.heart,
        junctions=rules.grow_purkinje.output.junctions,
    output:
        # one job per patient: its maps share the start-up, the fibres and the template
        activation=expand("results/patients/{{patient}}/activation/{scenario}.npz", scenario=SCENARIOS),
    params:
        scenarios={name: dataclasses.asdict(scenario) for name, scenario in ACTIVATION_MAPS.items()},
        velocities=config["electrophysiology"]["velocity_m_per_s"],
        action_potential=config["electrophysiology"]["action_potential"],
        device=config["electrophysiology"]["device"],
        eikonal_refinements=config["electrophysiology"]["eikonal_refinements"],
        source_radius_edges=config["electrophysiology"]["source_radius_edges"],
        subendocardial_layer=config["electrophysiology"]["subendocardial_layer"],
        seed=config["cohort"]["seed"],
        # the TP06 template (its APD sets the repolarisation times): computed once, shared
        template_cache_dir="results/cache/action_potential",
    log:
        "results/logs/patients/{patient}/compute_activations.log",
    benchmark:
        "results/benchmarks/patients/{patient}/compute_activations.tsv"
    # the maps are solved on two threads (the compiled eikonal solver releases the GIL)
    threads: 2
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(30),
    conda:
        "../../envs/fem.yaml"
    script:
        "../scripts/compute_activations.py"


rule activations:
    """Target: every patient's Purkinje trees and activation map per scenario (the previews: ``pictures``)."""
    input:
        lambda wildcards: chain_targets(list(rules.grow_purkinje.output), PATIENTS),
        lambda wildcards: chain_targets(list(rules.compute_activations.output), PATIENTS),
