"""The host checks' ``host``: testinfra's Host of the item's own target (see
lxc_compliance.plugin.hosts). It replaces testinfra's fixture of that name,
which --hosts would parametrize a second time; a conftest's fixture wins over
any plugin's, however the plugin was loaded."""

import pytest


@pytest.fixture(scope="module")
def host(target):
    """testinfra's Host of the audited host."""
    return target.host


@pytest.fixture(autouse=True)
def _audited_host(target):
    """Every check belongs to one audited host: --hosts parametrizes ``target``
    for all of them, also those whose own arguments never read it."""
