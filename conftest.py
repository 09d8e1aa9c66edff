"""Loads the lxc-compliance plugin for every run from this checkout (the package
lxc_compliance/ is importable from the checkout's root, where pytest runs)."""

pytest_plugins = ["lxc_compliance.plugin"]
