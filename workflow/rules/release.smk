# The release (docs/how-to/publish-release.md): `snakemake release` packs the cohort store for
# download (sharded by patients, meshes as CF contiguous ragged arrays) or, for a cohort of
# thousands, hard-links its files (release.layout), writes the Parquet
# metadata table, its Croissant description, the WFDB records, the card, a size report and a
# SHA-256 manifest into results/release/, then verifies it. Not part of `make run`.

RELEASE = config["release"]
# packing rewrites every byte (hours at thousands of patients); linking costs file operations
RELEASE_LAYOUT = release_layout(RELEASE, len(PATIENTS))


RELEASE_CHAIN = ChainInputs(
    anatomy=(rules.assemble_anatomy.output.summary, PATIENTS),
    banks=(rules.simulation_bank.output.bank, PATIENTS if RELEASE["llnl"] else []),
    digests=(rules.dataset_part.output.digests, PATIENTS if RELEASE_LAYOUT == "linked" else []),
)


rule release_cohort:
    input:
        unpack(RELEASE_CHAIN.input),
        store=rules.assemble_dataset.output.store,
        features=rules.realism_summary.output.features,
        criteria=rules.realism_summary.output.criteria,
    output:
        release=directory("results/release"),
    params:
        chain=RELEASE_CHAIN.params,
        patients=PATIENTS,
        metadata={key: RELEASE[key] for key in ("name", "version", "license", "url", "citation", "creator")},
        shard_mb=RELEASE["shard_mb"],
        layout=RELEASE_LAYOUT,
        wfdb=RELEASE["wfdb"],
    log:
        "results/logs/release/release_cohort.log",
    benchmark:
        "results/benchmarks/release/release_cohort.tsv"
    threads: 2
    resources:
        # packed: each of the two threads holds one shard in memory several times (values,
        # encoded chunks, the shard being assembled), plus the libraries and the table: measured
        # peaks 5.9 and 7.5 GiB at 30 and 100 patients with 1,024 MB shards; linked: 1.0 and
        # 1.7 GiB at 1,000 and 10,000 patients (benchmarks/fan_ins.py)
        mem_mb=lambda wildcards, attempt: (int(2 * 3.5 * RELEASE["shard_mb"] + 2000) if RELEASE_LAYOUT == "packed"
                                           else 4000) * attempt,
        runtime=scaled(120),
    conda:
        "../../envs/release.yaml"
    script:
        "../scripts/release_cohort.py"


rule release:
    """Target: results/release/, verified (python -m ecgcohort.release verify results/release)."""
    input:
        rules.release_cohort.output,
