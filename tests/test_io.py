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
