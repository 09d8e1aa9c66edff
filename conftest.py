"""Loads the lxc-compliance plugin for every run from this checkout.

The package's source is fixtures/, imported as ``lxc_compliance`` (what `pip
install .` installs). A checkout that was not installed gets the name here.
"""

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("lxc_compliance") is None:
    _source = Path(__file__).resolve().parent / "fixtures"
    _spec = importlib.util.spec_from_file_location(
        "lxc_compliance", _source / "__init__.py", submodule_search_locations=[str(_source)])
    sys.modules["lxc_compliance"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["lxc_compliance"])

pytest_plugins = ["lxc_compliance.plugin"]
