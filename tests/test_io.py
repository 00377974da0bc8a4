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
