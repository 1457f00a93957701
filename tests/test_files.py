"""Atomic outputs: a failed write leaves no file that looks finished and keeps what was there."""

import pytest

from wsss.files import atomic_output, write_text


def test_success_renames_into_place(tmp_path):
    write_text(tmp_path / "sub" / "a.json", "{}\n")
    assert (tmp_path / "sub" / "a.json").read_text() == "{}\n"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.json"]


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
