"""A check's failed assertion is drawn as pytest's --tb=short draws it, without pytest's
parse of the check's whole module (pytest_internals.short_assertion_repr)."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest

from lxc_compliance.pytest_internals import short_assertion_repr

pytestmark = pytest.mark.unit

MODULE = '''
def helper():
    raise ValueError("not an assertion")


def test_probe():
    value = 3
    assert value == 4, (
        "three is not four\\nsecond line")


def test_calls_helper():
    helper()
'''


def _module(tmp_path):
    path = tmp_path / "test_probe.py"
    path.write_text(MODULE)
    spec = importlib.util.spec_from_file_location("test_probe_for_repr", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return path, module


def _failure(function) -> pytest.ExceptionInfo:
    with pytest.raises(Exception) as excinfo:
        function()
    return excinfo


def _item(path, function, tbstyle="short"):
    return SimpleNamespace(path=path, obj=function,
                           config=SimpleNamespace(option=SimpleNamespace(tbstyle=tbstyle, fulltrace=False,
                                                                         showlocals=False)))


def test_an_assertion_in_the_check_is_drawn_as_pytest_draws_it(tmp_path):
    path, module = _module(tmp_path)
    excinfo = _failure(module.test_probe)
    ours = short_assertion_repr(_item(path, module.test_probe), excinfo)
    pytests = excinfo.getrepr(style="short", tbfilter=lambda info: info.traceback[-1:])
    assert ours is not None and str(ours) == str(pytests)
    assert ours.reprcrash.message == pytests.reprcrash.message
    assert "E   AssertionError: three is not four" in str(ours) and "E   second line" in str(ours)


def test_anything_else_is_left_to_pytest(tmp_path):
    path, module = _module(tmp_path)
    deeper = _failure(module.test_calls_helper)
    assert short_assertion_repr(_item(path, module.test_calls_helper), deeper) is None  # not an assertion
    assertion = _failure(module.test_probe)
    assert short_assertion_repr(_item(path, module.test_probe, tbstyle="long"), assertion) is None
    assert short_assertion_repr(_item(tmp_path / "elsewhere.py", module.test_probe), assertion) is None
