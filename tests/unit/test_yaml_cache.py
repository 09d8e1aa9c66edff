"""The parsed catalogue and profiles are cached beside Python's bytecode: read
from the cache while the file is as it was, from the file once it changed."""

from __future__ import annotations

import sys

import pytest

from lxc_compliance.model import yamlfile
from lxc_compliance.model.yamlfile import YamlError, load_yaml


@pytest.fixture
def later(monkeypatch):
    """The clock a minute ahead: what was written now is 'changed a while ago'."""
    import time

    real = time.time
    monkeypatch.setattr(yamlfile.time, "time", lambda: real() + 60)


def _cache_of(path):
    return path.parent / "__pycache__" / f"{path.name}.lxcc-{yamlfile._CACHE_FORMAT}.pickle"


def test_a_file_changed_a_while_ago_is_read_from_its_cache(tmp_path, later, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    path = tmp_path / "p.yaml"
    path.write_text("a: 1\nb: [x]\n")
    assert load_yaml(path) == {"a": 1, "b": ["x"]}
    assert _cache_of(path).exists()
    monkeypatch.setattr(yamlfile, "_parse", lambda p: pytest.fail("parsed again"))
    again = load_yaml(path)
    assert again == {"a": 1, "b": ["x"]} and again.lines == {"a": 1, "b": 2}  # lines survive, for errors


def test_a_changed_file_of_the_same_size_is_read_again(tmp_path, later, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    path = tmp_path / "p.yaml"
    path.write_text("a: 1\n")
    load_yaml(path)
    path.write_text("a: 2\n")
    assert load_yaml(path) == {"a": 2}


def test_a_file_changed_just_now_is_not_cached(tmp_path, monkeypatch):
    """Its stamp could be the same after another change within the clock's granularity."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    path = tmp_path / "p.yaml"
    path.write_text("a: 1\n")
    load_yaml(path)
    assert not _cache_of(path).exists()


def test_nothing_is_written_where_python_writes_no_bytecode(tmp_path, later, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    path = tmp_path / "p.yaml"
    path.write_text("a: 1\n")
    load_yaml(path)
    assert not (tmp_path / "__pycache__").exists()


def test_a_damaged_cache_is_read_past(tmp_path, later, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    path = tmp_path / "p.yaml"
    path.write_text("a: 1\n")
    load_yaml(path)
    _cache_of(path).write_bytes(b"not a pickle")
    assert load_yaml(path) == {"a": 1}


def test_errors_are_the_files_own_with_or_without_a_cache(tmp_path, later, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    path = tmp_path / "p.yaml"
    path.write_text("a: 1\na: 2\n")
    for _ in range(2):
        with pytest.raises(YamlError, match=r"p.yaml:2: duplicate key 'a' \(first at line 1\)"):
            load_yaml(path)
