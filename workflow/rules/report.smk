# The report's own outputs: per-rule timings from the benchmark files of every job that ran.
# `snakemake --report results/report.html` (make report) collects these and every output marked
# with report() in the other rule files, with the captions of workflow/report/.

report: "../report/workflow.rst"


rule stage_timings:
    input:
        # the last outputs of each stage of `all`, so the timings are read after every job has run
        # (without convergence, inverse, ecg2act and pictures, a run's table could miss their last
        # jobs: the default's of 2026-12-03 counted 4 of its 6 convergence levels)
        dataset=rules.assemble_dataset.output.store,
        encodings=rules.evaluate_shape_model.output.table,
        surrogate=rules.summarize_surrogate.output.table,
        realism=rules.realism_summary.output.table,
        convergence=rules.convergence_summary.output,
        inverse=rules.inverse_benchmark.output,
        ecg2act=rules.evaluate_ecg2act.output,
        pictures=picture_targets,
    output:
        table=report("results/report/stage_timings.csv", caption=caption("stage_timings"), category="Run statistics",
                     subcategory="Timings", labels={"table": "time per rule"}),
        plot=report("results/report/stage_timings.png", caption=caption("stage_timings"), category="Run statistics",
                    subcategory="Timings", labels={"figure": "time per rule"}),
        markdown="results/report/stage_timings.md",
    params:
        benchmarks="results/benchmarks",
        logs="results/logs",
    log:
        "results/logs/report/stage_timings.log",
    benchmark:
        "results/benchmarks/report/stage_timings.tsv"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(5),
    conda:
        "../../envs/learning.yaml"
    script:
        "../scripts/stage_timings.py"
