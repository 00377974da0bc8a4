"""The training backbone: it learns, it is deterministic, it resumes after a kill to the same
weights, tables hand out every row once per epoch, model files refuse what does not fit."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ecgcohort.learning import (
    ModelFileError,
    StreamedTable,
    TensorTable,
    TrainingSpec,
    check_compatible,
    fit,
    load_model,
    save_model,
)
from ecgcohort.learning.backbone import write_history
from ecgcohort.learning.splits import validation_split
from ecgcohort.learning.spec import TrainableModel

TRUE_WEIGHTS = torch.tensor([[1.0], [-2.0], [0.5]])
TRUE_BIAS = 0.3


class LinearRegression(TrainableModel):
    """y = x w + b: the least-squares optimum is known exactly."""

    def __init__(self, hidden: int = 0):
        super().__init__()
        torch.manual_seed(0)
        self.net = (torch.nn.Sequential(torch.nn.Linear(3, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
                    if hidden else torch.nn.Linear(3, 1))

    def training_loss(self, batch):
        mse = ((self.net(batch["x"]) - batch["y"]) ** 2).mean()
        return mse, {"mse": mse}


def regression_table(rows: int = 4096, noise: float = 0.0) -> TensorTable:
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(rows, 3, generator=generator) * 2 - 1
    y = x @ TRUE_WEIGHTS + TRUE_BIAS + noise * torch.randn(rows, 1, generator=generator)
    return TensorTable({"x": x, "y": y})


def test_training_recovers_the_least_squares_solution(tmp_path):
    model = LinearRegression()
    spec = TrainingSpec(epochs=40, batch_size=128, learning_rate=2e-2, lr_milestones=(0.5, 0.75), seed=3)
    result = fit(model, regression_table(), spec, tmp_path)
    assert torch.allclose(model.net.weight.detach().T, TRUE_WEIGHTS, atol=2e-3)
    assert abs(float(model.net.bias.detach()) - TRUE_BIAS) < 2e-3
    losses = [row["loss"] for row in result.history]
    assert len(losses) == 40 and losses[-1] < 1e-5 < losses[0]
    assert [row["learning_rate"] for row in result.history][19:21] == [2e-2, 1e-2]
    assert result.history[-1]["learning_rate"] == pytest.approx(5e-3)
    assert result.samples_per_second > 0 and result.device == "cpu" and result.precision == "32-true"


def test_learning_rate_schedule_halves_at_the_milestones():
    spec = TrainingSpec(epochs=800, batch_size=1, learning_rate=1e-3, lr_milestones=(0.5,), lr_decay=0.5)
    assert spec.learning_rate_at(399) == 1e-3 and spec.learning_rate_at(400) == 5e-4
    assert spec.learning_rate_at(799) == 5e-4
    with pytest.raises(ValueError, match="training.epochs"):
        TrainingSpec(epochs=0, batch_size=1)


def test_two_runs_with_one_seed_give_identical_weights(tmp_path):
    spec = TrainingSpec(epochs=3, batch_size=256, seed=11)
    first, second = LinearRegression(16), LinearRegression(16)
    fit(first, regression_table(noise=0.1), spec, tmp_path / "a")
    fit(second, regression_table(noise=0.1), spec, tmp_path / "b")
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name
    other = LinearRegression(16)
    fit(other, regression_table(noise=0.1), TrainingSpec(epochs=3, batch_size=256, seed=12), tmp_path / "c")
    assert not torch.equal(other.net[0].weight, first.net[0].weight)  # the seed matters: the test can fail


KILL_SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
from test_learning import LinearRegression, regression_table
from ecgcohort.learning import TrainingSpec, fit
torch.set_num_threads(1)
spec = TrainingSpec(epochs=12, batch_size=64, lr_milestones=(0.5,), checkpoint_every=3, seed=5)
result = fit(LinearRegression(32), regression_table(noise=0.1), spec, sys.argv[1])
torch.save(result.state_dict, sys.argv[2])
print("resumed from", result.resumed_from_epoch)
"""


def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path):
    """SIGKILL after the epoch-6 checkpoint, run again: the final weights equal the uninterrupted
    run's exactly (CPU, one thread, fixed seed; the tolerance is 0)."""
    script = tmp_path / "train.py"
    script.write_text(KILL_SCRIPT.format(tests=str(Path(__file__).parent)))
    python = [sys.executable, str(script)]
    clean = subprocess.run([*python, str(tmp_path / "clean"), str(tmp_path / "clean.pt")], capture_output=True,
                           text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr[-3000:]
    assert "resumed from 0" in clean.stdout

    workdir = tmp_path / "killed"
    job = subprocess.Popen([*python, str(workdir), str(tmp_path / "killed.pt")], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    sidecar, deadline = workdir / "last.json", time.monotonic() + 240
    while time.monotonic() < deadline and job.poll() is None:
        if sidecar.exists() and json.loads(sidecar.read_text() or "{}").get("epoch", 0) >= 6:
            break
        time.sleep(0.005)
    job.send_signal(signal.SIGKILL)
    job.communicate()
    assert job.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (tmp_path / "killed.pt").exists()
    killed_at = json.loads(sidecar.read_text())["epoch"]
    assert 6 <= killed_at < 12

    resumed = subprocess.run([*python, str(workdir), str(tmp_path / "killed.pt")], capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {killed_at}" in resumed.stdout
    a, b = torch.load(tmp_path / "clean.pt"), torch.load(tmp_path / "killed.pt")
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_a_checkpoint_of_other_settings_is_not_resumed(tmp_path, caplog):
    fit(LinearRegression(), regression_table(), TrainingSpec(epochs=2, batch_size=512), tmp_path)
    assert (tmp_path / "last.ckpt").exists()
    result = fit(LinearRegression(), regression_table(), TrainingSpec(epochs=3, batch_size=512), tmp_path)
    assert result.resumed_from_epoch == 0 and len(result.history) == 3
    assert "belongs to other settings" in caplog.text


def test_a_checkpoint_of_other_code_is_not_resumed(tmp_path, caplog, monkeypatch):
    """The same settings with a changed model source (here its loss) retrain from scratch;
    unchanged code resumes the finished run without a step."""
    import importlib

    source = tmp_path / "changing_model.py"
    source.write_text("import torch\nfrom ecgcohort.learning.spec import TrainableModel\n\n"
                      "class Model(TrainableModel):\n    def __init__(self):\n        super().__init__()\n"
                      "        torch.manual_seed(0)\n        self.net = torch.nn.Linear(3, 1)\n\n"
                      "    def training_loss(self, batch):\n        mse = ((self.net(batch['x']) - batch['y']) ** 2).mean()\n"
                      "        return mse, {'mse': mse}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("changing_model")
    spec, workdir = TrainingSpec(epochs=2, batch_size=512), tmp_path / "run"
    fit(module.Model(), regression_table(), spec, workdir)
    assert fit(module.Model(), regression_table(), spec, workdir).resumed_from_epoch == 2
    source.write_text(source.read_text().replace("** 2).mean()", "** 2).mean() * 2.0"))
    module = importlib.reload(module)
    result = fit(module.Model(), regression_table(), spec, workdir)
    assert result.resumed_from_epoch == 0 and len(result.history) == 2
    assert "belongs to other settings" in caplog.text


def test_validation_keeps_the_best_epoch(tmp_path):
    table = regression_table(noise=0.2)
    # validation rows with another target: training makes them worse after the first epochs
    generator = torch.Generator().manual_seed(9)
    x = torch.rand(512, 3, generator=generator) * 2 - 1
    validation = TensorTable({"x": x, "y": torch.zeros(512, 1)})
    model = LinearRegression()
    result = fit(model, table, TrainingSpec(epochs=6, batch_size=256, learning_rate=5e-2), tmp_path,
                 validation=validation)
    scores = [row["validation_loss"] for row in result.history]
    assert result.best_epoch == int(np.argmin(scores)) + 1
    best = LinearRegression()
    best.load_state_dict(result.best_state_dict)
    with torch.no_grad():
        assert float(((best.net(x)) ** 2).mean()) == pytest.approx(min(scores), rel=1e-5)


def test_patience_stops_early_with_the_full_runs_best_weights(tmp_path):
    """Validation that only gets worse after its best epoch: a run with patience stops that many
    validations after the best and returns the same best weights, bit for bit, as the run that
    trains every epoch; a resumed stopped run stays stopped."""
    table = regression_table(noise=0.2)
    generator = torch.Generator().manual_seed(9)
    validation = TensorTable({"x": torch.rand(512, 3, generator=generator) * 2 - 1, "y": torch.zeros(512, 1)})
    full = fit(LinearRegression(), table, TrainingSpec(epochs=12, batch_size=256, learning_rate=5e-2),
               tmp_path / "full", validation=validation)
    scores = [row["validation_loss"] for row in full.history]
    assert full.best_epoch <= 4 and min(scores[full.best_epoch:]) > scores[full.best_epoch - 1]
    spec = TrainingSpec(epochs=12, batch_size=256, learning_rate=5e-2, patience=3)
    early = fit(LinearRegression(), table, spec, tmp_path / "early", validation=validation)
    assert len(early.history) == full.best_epoch + 3 < 12
    assert early.best_epoch == full.best_epoch
    for name, weights in full.best_state_dict.items():
        assert torch.equal(weights, early.best_state_dict[name]), name
    again = fit(LinearRegression(), table, spec, tmp_path / "early", validation=validation)
    assert again.resumed_from_epoch == len(early.history) and len(again.history) == len(early.history)
    with pytest.raises(ValueError, match="patience"):
        TrainingSpec(epochs=2, batch_size=8, patience=-1)


def _visits(table, epochs=2, batch=100, seed=4):
    seen = []
    for epoch in range(epochs):
        rows = torch.cat([table.gather(key)["row"] for key in table.batch_keys(epoch, batch, seed)])
        seen.append(rows)
    return seen


def test_every_row_is_visited_once_per_epoch_resident_and_streamed():
    rows = torch.arange(1000)
    resident = TensorTable({"row": rows, "x": rows.float()[:, None]})
    blocks = [np.arange(start, start + 250) for start in range(0, 1000, 250)]
    streamed = StreamedTable(lambda b: {"row": blocks[b], "x": blocks[b].astype(np.float32)[:, None]},
                             [250] * 4, blocks_in_memory=2)
    for table in (resident, streamed):
        first, second = _visits(table)
        assert torch.equal(first.sort().values, rows) and torch.equal(second.sort().values, rows)
        assert not torch.equal(first, second)            # shuffled anew each epoch
        assert torch.equal(_visits(table)[0], first)     # from (seed, epoch) alone
    shares = [torch.cat(resident.batch_keys(0, 64, 4, rank, 2)) for rank in (0, 1)]
    assert len(set(shares[0].tolist()) & set(shares[1].tolist())) == 0 and sum(map(len, shares)) == 1000


def test_streamed_and_resident_training_agree_on_the_solution(tmp_path):
    table = regression_table()
    x, y = table.columns["x"].numpy(), table.columns["y"].numpy()
    streamed = StreamedTable(lambda b: {"x": x[b * 1024:(b + 1) * 1024], "y": y[b * 1024:(b + 1) * 1024]},
                             [1024] * 4)
    model = LinearRegression()
    fit(model, streamed, TrainingSpec(epochs=40, batch_size=128, learning_rate=2e-2, lr_milestones=(0.5, 0.75)),
        tmp_path)
    assert torch.allclose(model.net.weight.detach().T, TRUE_WEIGHTS, atol=2e-3)


def test_validation_split_is_seeded_and_disjoint():
    ids = [f"train-{i:04d}" for i in range(10)]
    train, validation = validation_split(ids, 0.2, seed=1)
    assert len(validation) == 2 and not set(train) & set(validation) and sorted(train + validation) == ids
    assert validation_split(ids, 0.2, seed=1) == (train, validation)
    assert validation_split(ids, 0.2, seed=2) != (train, validation)
    assert validation_split(ids[:1], 0.2, seed=1) == (ids[:1], [])


def test_model_files_round_trip_and_refuse_what_does_not_fit(tmp_path):
    model = LinearRegression(8)
    path = tmp_path / "model.pt"
    save_model(path, model.state_dict(), {"kind": "toy", "config": {"hidden": 8, "surfaces": ["a", "b"]},
                                          "normalisation": {"scale_mm": 300.0}})
    state, meta = load_model(path, kind="toy")
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert meta["config"]["hidden"] == 8 and meta["code_version"]["torch"] == torch.__version__
    torch.load(path, weights_only=True)  # no arbitrary objects
    with pytest.raises(ModelFileError, match="holds a 'toy' model, expected 'deepsdf'"):
        load_model(path, kind="deepsdf")
    check_compatible(path, meta, {"config": {"hidden": 8}})
    with pytest.raises(ModelFileError, match=r"config.hidden: model has 8, this config asks for 16"):
        check_compatible(path, meta, {"config": {"hidden": 16}})
    with pytest.raises(ModelFileError, match="normalisation.scale_mm"):
        check_compatible(path, meta, {"normalisation": {"scale_mm": 310.0}})
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="not an ecgcohort model file"):
        load_model(tmp_path / "junk.pt")


def test_history_is_written_as_csv_and_png(tmp_path):
    history = [{"epoch": e, "learning_rate": 1e-3, "loss": 1.0 / e, "seconds": 0.1, "samples_per_second": 10.0}
               for e in range(1, 5)]
    write_history(history, tmp_path / "losses.csv", tmp_path / "losses.png", title="toy")
    text = (tmp_path / "losses.csv").read_text().splitlines()
    assert text[0].startswith("epoch,learning_rate,loss") and len(text) == 5
    assert (tmp_path / "losses.png").stat().st_size > 5000


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_on_cuda_in_bf16_reaches_the_solution(tmp_path):
    model = LinearRegression()
    result = fit(model, regression_table(), TrainingSpec(epochs=40, batch_size=128, learning_rate=2e-2,
                                                          lr_milestones=(0.5, 0.75), device="cuda"), tmp_path)
    assert result.device.startswith("cuda") and result.precision == "bf16-mixed"
    assert torch.allclose(model.net.weight.detach().cpu().T, TRUE_WEIGHTS, atol=2e-2)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_memory_budget_is_what_the_jobs_control_group_has_left(tmp_path, version, monkeypatch):
    """A SLURM job is confined to its request by a control group: the training data held in
    memory are sized from its limit less its usage, not from the node's free memory; no limit
    ("max", or cgroup v1's 2**63 rounded to pages) leaves the node's figure."""
    from ecgcohort.learning import device as devices

    gib = 2 ** 30
    if version == "v2":
        membership, folder = "0::/slurm/job_42\n", tmp_path / "slurm/job_42"
        limit_name, usage_name = "memory.max", "memory.current"
    else:
        membership, folder = "4:memory:/slurm/job_42\n1:cpu:/\n", tmp_path / "memory/slurm/job_42"
        limit_name, usage_name = "memory.limit_in_bytes", "memory.usage_in_bytes"
    folder.mkdir(parents=True)
    (tmp_path / "cgroup").write_text(membership)
    (folder / limit_name).write_text(f"{6 * gib}\n")
    (folder / usage_name).write_text(f"{gib}\n")
    left = devices.cgroup_memory_left
    assert left(tmp_path, tmp_path / "cgroup") == 5 * gib
    for unlimited in ("max", str(9223372036854771712)):
        (folder / limit_name).write_text(unlimited + "\n")
        assert left(tmp_path, tmp_path / "cgroup") is None
    assert left(tmp_path, tmp_path / "absent") is None

    # a job confined to 1 GiB (less than any test machine has free) keeps half of it resident
    monkeypatch.setattr(devices, "cgroup_memory_left", lambda: gib)
    assert devices.memory_budget_bytes(torch.device("cpu")) == gib // 2
    # and a job that declared 512 MB (its rule's mem_mb) half of that
    assert devices.memory_budget_bytes(torch.device("cpu"), job_mb=512) == 256 * 2 ** 20
    assert devices.memory_budget_bytes(torch.device("cpu"), job_mb=4096) == gib // 2


@pytest.mark.parametrize("world", [1, 2])
def test_streamed_batch_keys_are_drawn_a_group_at_a_time_as_one_list_drew_them(world):
    """A streamed epoch's keys come a group of blocks at a time (an epoch of 7,200 patients'
    rows drawn up front was 5.9 GB of indices): the same keys, in the same order, as drawing the
    whole epoch at once from the same generator, and batch_count says how many without drawing."""
    from ecgcohort.learning.data import StreamedTable, epoch_generator

    sizes = [7, 3, 12, 5, 9, 1, 4]
    table = StreamedTable(lambda index: {"row": np.arange(sizes[index])}, sizes, blocks_in_memory=3)
    for epoch, batch in ((0, 4), (5, 3)):
        generator = epoch_generator(11, epoch)
        blocks = torch.randperm(len(sizes), generator=generator).tolist()
        expected = []
        for start in range(0, len(blocks), 3):
            group = tuple(blocks[start:start + 3])
            order = torch.randperm(sum(sizes[b] for b in group), generator=generator)[1 % world::world]
            expected += [(group, piece) for piece in order.split(batch)]
        keys = table.batch_keys(epoch, batch, 11, rank=1 % world, world=world)
        assert not isinstance(keys, list)
        keys = list(keys)
        assert [group for group, _ in keys] == [group for group, _ in expected]
        assert all(torch.equal(piece, other) for (_, piece), (_, other) in zip(keys, expected))
        assert table.batch_count(epoch, batch, 11, rank=1 % world, world=world) == len(expected)


def test_a_streamed_epoch_reads_the_next_group_ahead_and_gives_the_same_batches():
    """Threads read a group's blocks and the next group ahead of its first batch; the batches are
    those of a table read by one thread on demand, epoch after epoch."""
    import threading

    sizes = [5, 3, 7, 4, 6, 2, 8]
    seen: list[tuple[int, str]] = []

    def load(index: int) -> dict[str, np.ndarray]:
        seen.append((index, threading.current_thread().name))
        return {"row": np.arange(sizes[index]) + 100 * index}

    ahead = StreamedTable(load, sizes, blocks_in_memory=2, readers=3)
    plain = StreamedTable(lambda index: {"row": np.arange(sizes[index]) + 100 * index}, sizes, blocks_in_memory=2,
                          readers=1)
    for epoch in (0, 1):
        keys = list(ahead.batch_keys(epoch, 4, seed=9))
        first_of_second_group = next(k for k, (group, _) in enumerate(keys) if group != keys[0][0])
        for number, key in enumerate(keys):
            if number == first_of_second_group:  # read ahead while the first group was used
                assert ahead._pending[0] == key[0]
                ahead._pending[1].result()
                assert {index for index, _ in seen} >= set(key[0])
            assert torch.equal(ahead.gather(key)["row"], plain.gather(key)["row"])
        assert sorted(torch.cat([ahead.gather(k)["row"] for k in keys]).tolist()) == sorted(
            r + 100 * b for b, n in enumerate(sizes) for r in range(n))
    assert {name.split("_")[0] for _, name in seen} == {"block-reader"}


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_the_cpu_only_where_it_is_asked_for_and_native(monkeypatch, caplog, native):
    """``auto`` stays fp32 on the CPU (recorded CPU runs reproduce bit for bit); ``bf16`` is
    autocast where the CPU multiplies bf16 natively, fp32 with a warning where it would be
    emulated; an unknown precision is refused naming it."""
    from ecgcohort.learning import device as device_module
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert device_module.resolve_precision("auto", cpu) == "32-true"
    assert device_module.resolve_precision("32", cpu) == "32-true"
    with caplog.at_level("WARNING"):
        assert device_module.resolve_precision("bf16", cpu) == ("bf16-mixed" if native else "32-true")
    assert ("no native bf16" in caplog.text) != native
    assert device_module.resolve_precision("bf16", torch.device("cuda")) == "bf16-mixed"
    with pytest.raises(ValueError, match="'fp16'"):
        device_module.resolve_precision("fp16", cpu)
