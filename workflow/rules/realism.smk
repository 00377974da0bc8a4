# ECG realism (docs/methods/realism.md): every patient's beats delineated (QRS from the spatial
# velocity, T wave by ECGdeli), their features, the clinical 12-lead printout of each beat judged
# as healthy, and the fan-in to the feature table, each criterion's pass rate over the cohort (the
# sex-specific thresholds by each patient's sex from its anatomy.json), the feature distributions
# against the healthy ranges and the healthy beats by sex against published populations.

REALISM = config["realism"]
SCENARIO_KINDS = {name: scenario.kind for name, scenario in ACTIVATION_MAPS.items()}
HEALTHY_SCENARIOS = [name for name, kind in SCENARIO_KINDS.items() if REALISM["judged_as"][kind] == "healthy"]


rule delineate_ecgs:
    input:
        ecgs=rules.compute_ecgs.output.ecg,
    output:
        features="results/patients/{patient}/realism/features.json",
        clinical=[
            report(f"results/patients/{{patient}}/realism/{scenario}-12lead.png", caption=caption("realism_clinical"),
                   category="ECG realism", subcategory="Clinical 12-lead ECGs",
                   labels={"patient": "{patient}", "scenario": scenario})
            for scenario in HEALTHY_SCENARIOS
        ],
    params:
        scenarios=SCENARIOS,
        kinds=SCENARIO_KINDS,
        judged_as=REALISM["judged_as"],
        healthy_scenarios=HEALTHY_SCENARIOS,
        cycle_length_ms=config["electrophysiology"]["action_potential"]["cycle_length_ms"],
        delineation=REALISM["delineation"],
        features=REALISM["features"],
    log:
        "results/logs/patients/{patient}/delineate_ecgs.log",
    benchmark:
        "results/benchmarks/patients/{patient}/delineate_ecgs.tsv"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(5),
    conda:
        "../../envs/realism.yaml"
    script:
        "../scripts/delineate_ecgs.py"


REALISM_SUMMARY_CHAIN = ChainInputs(
    features=(rules.delineate_ecgs.output.features, PATIENTS),
    anatomy=(rules.assemble_anatomy.output.summary, PATIENTS),
)


rule realism_summary:
    input:
        unpack(REALISM_SUMMARY_CHAIN.input),
    output:
        features=report("results/ecg/features.csv", caption=caption("realism_features"), category="ECG realism",
                        subcategory="Summary", labels={"table": "features per beat"}),
        criteria=report("results/ecg/criteria.csv", caption=caption("realism_criteria"), category="ECG realism",
                        subcategory="Summary", labels={"table": "criteria per beat"}),
        table=report("results/ecg/realism.csv", caption=caption("realism_table"), category="ECG realism",
                     subcategory="Summary", labels={"table": "pass rates"}),
        markdown="results/ecg/realism.md",
        pose=report("results/ecg/pose.csv", caption=caption("realism_pose"), category="ECG realism",
                    subcategory="Summary", labels={"table": "heart pose against anatomy"}),
        distributions=report("results/ecg/feature_distributions.png", caption=caption("realism_distributions"),
                             category="ECG realism", subcategory="Summary", labels={"figure": "feature distributions"}),
        population=report("results/ecg/population.csv", caption=caption("realism_population"), category="ECG realism",
                          subcategory="Against healthy populations", labels={"table": "cohort against populations"}),
        population_markdown="results/ecg/population.md",
        prevalence=report("results/ecg/prevalence.csv", caption=caption("realism_prevalence"), category="ECG realism",
                          subcategory="Against healthy populations", labels={"table": "findings against their prevalence"}),
        population_figure=report("results/ecg/population.png", caption=caption("realism_population"),
                                 category="ECG realism", subcategory="Against healthy populations",
                                 labels={"figure": "cohort against populations"}),
        heart_size=report("results/ecg/heart_size.csv", caption=caption("realism_heart_size"), category="ECG realism",
                          subcategory="Against healthy populations", labels={"table": "QRS against heart size"}),
        heart_size_figure=report("results/ecg/heart_size.png", caption=caption("realism_heart_size"),
                                 category="ECG realism", subcategory="Against healthy populations",
                                 labels={"figure": "QRS against heart size"}),
    params:
        chain=REALISM_SUMMARY_CHAIN.params,
        criteria={"healthy": REALISM["healthy"], "lbbb": REALISM["lbbb"]},
    log:
        "results/logs/realism/realism_summary.log",
    benchmark:
        "results/benchmarks/realism/realism_summary.tsv"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(5),
    conda:
        "../../envs/realism.yaml"
    script:
        "../scripts/realism_summary.py"


rule realism:
    """Target: every beat delineated and judged, the pass rates, distributions and clinical 12-leads."""
    input:
        rules.realism_summary.output,
        lambda wildcards: chain_targets(list(rules.delineate_ecgs.output), PATIENTS),
