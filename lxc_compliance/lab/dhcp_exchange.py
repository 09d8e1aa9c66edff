"""A real DHCP exchange on a bridge: one client in a network namespace of the
run's own asks for a lease, listens for other servers, and releases it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass

from lxc_compliance.lab.lifecycle import Heartbeat
from lxc_compliance.lab.network import LabNetworkError, Probe
from lxc_compliance.readers import dhcp_probe
from lxc_compliance.readers.lxc import last_words


@dataclass
class DhcpExchange:
    """What one client on the bridge saw."""

    result: dict
    namespace: str
    elapsed_s: float

    @property
    def lease(self) -> dict | None:
        return self.result.get("lease")

    @property
    def servers(self) -> dict[str, str]:
        """server id -> the address it offered."""
        return self.result.get("servers", {})

    @property
    def error(self) -> str | None:
        return self.result.get("error")


def exchange_on(bridge: str, run_id: str, number: int, timeout: float, window: float, progress) -> DhcpExchange:
    """One DHCP client in a namespace of the run's own (probe NUMBER) on BRIDGE: its
    lease, released after, and WINDOW seconds listening for other servers."""
    started = time.monotonic()
    try:
        with Probe(bridge, run_id, number=number) as probe:
            # A script of its own, not a module of the package: it joins a namespace, which is per process.
            command = [sys.executable, dhcp_probe.__file__, probe.namespace, "eth0", str(timeout), str(window)]
            try:
                with Heartbeat(progress, f"dhcp: a test client on {bridge} asks for a lease "
                               f"(up to {timeout:g} s, then {window:g} s listening for other servers)", every=5):
                    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout + window + 15)
                result = json.loads(done.stdout) if done.stdout.strip() else {
                    "error": last_words(done.stderr, 500) or "the probe printed nothing"}
            except subprocess.TimeoutExpired:
                result = {"error": f"the probe did not finish within {timeout + window + 15:g} s"}
            namespace = probe.namespace
    except LabNetworkError as exc:
        result, namespace = {"error": str(exc)}, ""
    return DhcpExchange(result, namespace, round(time.monotonic() - started, 3))
