"""Network I's error by scenario kind (ecgcohort.ecg2act.kinds) on hand-made predictions."""

from __future__ import annotations

import numpy as np
import pytest

from ecgcohort.ecg2act.kinds import errors_by_kind, kind_labels


def test_pacing_is_split_by_its_site_count():
    assert kind_labels(["sinus", "pacing", "pacing", "lbbb"], [0.0, 1.0, 3.0, 0.0]) == \
        ["sinus", "pacing-1", "pacing-3", "lbbb"]


def test_errors_by_kind_are_the_samples_mean_errors_and_their_shares():
    truth = np.zeros((4, 3))
    # sinus samples off by 2 and 4 ms at every site, a pacing sample by 10 ms at two sites (one NaN)
    predicted = np.array([[2.0, 2.0, 2.0], [4.0, 4.0, 4.0], [10.0, 10.0, np.nan], [0.0, 0.0, 0.0]])
    rows = {row["kind"]: row for row in errors_by_kind(["sinus", "sinus", "pacing-1", "lbbb"], predicted, truth)}
    assert list(rows) == ["lbbb", "pacing-1", "sinus", "all"]
    assert rows["sinus"]["samples"] == 2 and rows["sinus"]["activation_mae_ms"] == pytest.approx(3.0)
    assert rows["sinus"]["sample_mae_sd_ms"] == pytest.approx(1.0)
    assert rows["pacing-1"]["activation_mae_ms"] == pytest.approx(10.0)  # the NaN site left out
    assert rows["all"]["activation_mae_ms"] == pytest.approx(16.0 / 4)
    assert rows["pacing-1"]["error_share"] == pytest.approx(10.0 / 16.0)
    assert sum(rows[kind]["error_share"] for kind in ("lbbb", "pacing-1", "sinus")) == pytest.approx(1.0)
