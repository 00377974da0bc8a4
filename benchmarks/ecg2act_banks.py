"""Network I (or II) trained on chosen banks and scored as the workflow scores it, for banks the
workflow's training rule would not take alone — e.g. paper 3's structure: a few hearts, many
samples each (writes a results/ folder; not a test).

    # banks of 5,380 samples on three hearts, Purkinje patterns only, four T waves per map:
    snakemake results/ecg2act/bank/train-000{0,1,2}.zarr --configfile config/paper.yaml \
        config/paper-cpu.yaml OVERLAY      # ecg2act.bank: count, repolarisation_variants, kind_weights
    .venv/bin/python benchmarks/ecg2act_banks.py --out few --section-from results/ecg2act/network-I/model.pt \
        --banks results/ecg2act/bank/train-000{0,1,2}.zarr --test-banks results/ecg2act/bank/test-*.zarr --epochs 30

The training section (fractions, seed, the network's architecture and training) is the one a
trained model file of the workflow recorded (``--section-from``), its epochs replaced by
``--epochs``. OUT/results/ecg2act then holds what ``benchmarks/training_cuts.py`` and
``benchmarks/ecg2act_by_kind.py`` read: ``network-I/model.pt``, ``metrics.csv`` and links to the
banks under ``bank/``. The random split is the training banks' 5 %; the held-out split every
sample of ``--test-banks`` (hearts the network never saw).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    from ecgcohort.ecg2act.networks import load_network
    from ecgcohort.ecg2act.training import evaluate_ecg2act_job, train_ecg2act_job
    from ecgcohort.logs import logging_to

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder that gets results/ecg2act/")
    parser.add_argument("--banks", type=Path, nargs="+", required=True, help="training banks (train-*.zarr)")
    parser.add_argument("--test-banks", type=Path, nargs="+", required=True, help="held-out banks (test-*.zarr)")
    parser.add_argument("--section-from", type=Path, required=True,
                        help="a model.pt of the workflow's train_ecg2act whose recorded section is used")
    parser.add_argument("--network", choices=("I", "II"), default="I")
    parser.add_argument("--epochs", type=int, required=True)
    arguments = parser.parse_args()
    for path in [*arguments.banks, *arguments.test_banks, arguments.section_from]:
        if not path.exists():
            parser.error(f"{path} does not exist")
    names = [path.name for path in [*arguments.banks, *arguments.test_banks]]
    if len(set(names)) != len(names):
        parser.error("two banks share a name; each patient's bank can be given once")

    network = arguments.network
    _, metadata = load_network(arguments.section_from, network)
    section = metadata["config"]
    section["networks"][network]["training"]["epochs"] = arguments.epochs
    stage = arguments.out / "results/ecg2act"
    (stage / "bank").mkdir(parents=True, exist_ok=True)
    (stage / f"network-{network}").mkdir(exist_ok=True)
    for path in [*arguments.banks, *arguments.test_banks]:
        link = stage / "bank" / path.name
        if not link.exists():
            link.symlink_to(path.resolve())
    with logging_to(str(stage / f"train-{network}.log")):
        start = time.perf_counter()
        train_ecg2act_job(network=network, bank_paths=arguments.banks, section=section,
                          workdir=stage / f"network-{network}/checkpoints",
                          out_model=stage / f"network-{network}/model.pt",
                          out_losses=stage / f"network-{network}/losses.csv",
                          out_plot=stage / f"network-{network}/losses.png")
        print(f"Network {network}: {arguments.epochs} epochs in {time.perf_counter() - start:.0f} s", flush=True)
        evaluate_ecg2act_job(model_paths={network: stage / f"network-{network}/model.pt"},
                             train_bank_paths=arguments.banks, test_bank_paths=arguments.test_banks,
                             out_metrics=stage / "metrics.csv", out_summary=stage / "summary.md",
                             out_boxes=stage / "site_errors.png", out_map=stage / "activation_map.png",
                             out_overlays=stage / "vm_overlays.png",
                             min_scored_samples=int(section["min_scored_samples"]))
    print((stage / "summary.md").read_text())


if __name__ == "__main__":
    main()
