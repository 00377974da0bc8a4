"""Atomic outputs: a failing job leaves nothing that looks complete."""

import pytest

from ecgcohort.io import atomic_path


def test_output_appears_only_when_the_writer_succeeds(tmp_path):
    target = tmp_path / "deep" / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("killed half-way")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []

    with atomic_path(target) as temporary:
        temporary.write_text("whole")
        assert not target.exists()
    assert target.read_text() == "whole"


def test_outputs_get_the_usual_permissions_not_mkstemps_private_ones(tmp_path):
    import os
    import stat

    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "shared.txt") as temporary:
            temporary.write_text("for the whole group")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "shared.txt").stat().st_mode) == 0o644


def test_npz_members_map_stored_arrays_and_read_only_the_rows_asked_for(tmp_path):
    """Stored members come back as read-only memory maps equal to numpy.load's arrays (C and
    Fortran order, strings), compressed ones loaded, scalars and empty arrays read; a missing
    member is named. Several chunks stacked along the electrodes index like their concatenation."""
    import numpy as np

    from ecgcohort.io import npz_members
    from ecgcohort.surrogate.jobs import ElectrodeStack

    rng = np.random.default_rng(0)
    arrays = {"cells": rng.normal(size=(4, 1000, 3)).astype(np.float32),
              "fortran": np.asfortranarray(rng.normal(size=(5, 7))), "names": np.array(["V1", "V2", "RA"]),
              "scalar": np.array(3.5), "empty": np.zeros((0, 3))}
    np.savez(tmp_path / "stored.npz", **arrays)
    np.savez_compressed(tmp_path / "compressed.npz", **arrays)
    for name in ("stored", "compressed"):
        read = npz_members(tmp_path / f"{name}.npz", list(arrays))
        for key, value in arrays.items():
            np.testing.assert_array_equal(read[key], value)
            assert read[key].dtype == value.dtype, key
        assert isinstance(read["cells"], np.memmap) == (name == "stored")
    mapped = npz_members(tmp_path / "stored.npz", ["cells"])["cells"]
    with pytest.raises(ValueError):
        mapped[0, 0, 0] = 1.0  # read-only
    with pytest.raises(KeyError, match="no array 'lead_matrix'"):
        npz_members(tmp_path / "stored.npz", ["lead_matrix"])

    second = rng.normal(size=(2, 1000, 3)).astype(np.float32)
    np.savez(tmp_path / "second.npz", cells=second)
    stack = ElectrodeStack([mapped, npz_members(tmp_path / "second.npz", ["cells"])["cells"]])
    whole = np.concatenate([arrays["cells"], second])
    chosen = np.sort(rng.choice(1000, 50, replace=False))
    assert stack.shape == (6, 1000, 3)
    np.testing.assert_array_equal(stack[:, chosen], whole[:, chosen])
    np.testing.assert_array_equal(np.asarray(stack), whole)
    with pytest.raises(IndexError):
        stack[0]
