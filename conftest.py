"""Loads the lxc-compliance plugin for every run from this directory."""

pytest_plugins = ["fixtures.plugin", "fixtures.network_fixtures", "fixtures.container_fixtures"]
