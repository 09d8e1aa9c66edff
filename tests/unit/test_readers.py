"""Unit tests of the readers (lxc_compliance.readers): parsers, version gates, host views."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import pytest
from recorded_host import RecordedHost

from configs import SYNTHETIC
from lxc_compliance.readers import checkconfig
from lxc_compliance.model.catalog import Catalog
from lxc_compliance.readers.cgroups import Cgroups
from lxc_compliance.model.versions import parse_version
from lxc_compliance.readers.kernel_config import KernelConfig
from lxc_compliance.readers.kernel import KernelFeature, PrivilegedHelper
from lxc_compliance.model.yamlfile import YamlError, load_yaml

# The unit tier (./lxcc test --unit): no root, no container, no network.
pytestmark = pytest.mark.unit

CATALOG = Catalog.load()
HYBRID = Cgroups("cgroup /sys/fs/cgroup/freezer cgroup rw,freezer 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0")


def parsed(name: str) -> KernelConfig:
    return KernelConfig.from_bytes(Path(name), SYNTHETIC[name])


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("2.6.32", (2, 6, 32)),
        ("2.6.32-old-header", (2, 6, 32)),
        ("3.2", (3, 2, 0)),
        ("4.4", (4, 4, 0)),
        ("4.9", (4, 9, 0)),
        ("5.10", (5, 10, 0)),
        ("6.12", (6, 12, 48)),
        ("10.1.0", (10, 1, 0)),
        ("no-header", None),
        ("gzip-6.1", (6, 1, 0)),
        ("empty", None),
        ("binary-garbage", None),
    ],
)
def test_version_from_header(name, version):
    assert parsed(name).version == version


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("6.1", None),
        ("gzip-6.1", None),
        ("empty", "empty"),
        ("binary-garbage", "binary"),
        ("gzip-truncated", "damaged gzip"),
        ("binary-with-header", "binary"),
    ],
)
def test_config_problems(name, problem):
    found = parsed(name).problem
    assert (found is None) if problem is None else (problem in found)


def test_option_states():
    config = parsed("commented-out")
    assert config.state("CONFIG_USER_NS") == "n"
    assert not config.enabled("CONFIG_USER_NS")
    assert config.state("CONFIG_VETH") == "m" and config.enabled("CONFIG_VETH")
    assert config.state("CONFIG_NOPE") is None
    assert parsed("pipe-value").state("CONFIG_VETH") == "|"
    assert not parsed("pipe-value").enabled("CONFIG_VETH")


def test_gzip_and_plain_read_the_same(tmp_path):
    plain, packed = tmp_path / "plain", tmp_path / "packed.gz"
    plain.write_bytes(SYNTHETIC["6.1"])
    packed.write_bytes(gzip.compress(SYNTHETIC["6.1"]))
    assert KernelConfig.read(plain).options == KernelConfig.read(packed).options
    assert KernelConfig.read(packed).compressed


@pytest.mark.parametrize(
    ("name", "option"),
    [("2.6.32", "CONFIG_CGROUP_MEM_RES_CTLR"), ("3.2", "CONFIG_CGROUP_MEM_RES_CTLR"),
     ("3.10", "CONFIG_MEMCG"), ("10.1.0", "CONFIG_MEMCG"), ("no-header", "CONFIG_MEMCG")],
)
def test_memory_controller_option_follows_the_version(name, option):
    assert CATALOG.by_id["kernel.cgroup_memory"].option_for(parsed(name)) == option


@pytest.mark.parametrize(
    ("check_id", "name", "applies"),
    [
        ("kernel.devpts_multiple_instances", "4.4", True),
        ("kernel.devpts_multiple_instances", "4.9", False),
        ("kernel.devpts_multiple_instances", "no-header", False),
        ("kernel.nf_nat_ipv4", "4.4", False),
        ("kernel.nf_nat_ipv4", "4.9", True),
        ("kernel.nf_nat_ipv4", "4.19", True),
        ("kernel.nf_nat_ipv4", "5.10", False),
        ("kernel.nf_nat_ipv6", "10.1.0", False),
        ("kernel.cgroup_cpuset", "6.1", True),
        ("kernel.cgroup_cpuset", "6.1-no-smp", False),
        ("kernel.newuidmap", "6.1-no-userns", False),
        ("kernel.cgroup_v1_systemd", "6.1", True),
        ("kernel.cgroup2_memory", "6.1", False),
    ],
)
def test_version_and_option_gates(check_id, name, applies):
    reason = CATALOG.by_id[check_id].not_applicable(parsed(name), HYBRID)
    assert (reason is None) == applies, reason


@pytest.mark.parametrize(
    ("name", "enabled"),
    [("2.6.32", True), ("2.6.32-no-filecaps", False), ("3.2", True), ("6.1", True)],
)
def test_file_capabilities_are_built_in_from_2_6_33(name, enabled):
    feature = KernelFeature(CATALOG.by_id["kernel.file_capabilities"], parsed(name))
    assert feature.enabled is enabled


def test_parse_version():
    assert parse_version("4.7") == (4, 7, 0)
    with pytest.raises(ValueError):
        parse_version("four")


# --- cgroups -----------------------------------------------------------------


def test_cgroup_layouts():
    assert Cgroups("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0").layout == "unified"
    assert HYBRID.layout == "hybrid"
    assert Cgroups("cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0").layout == "legacy"
    assert Cgroups("").v1 == []


def test_v1_hierarchy_is_found_by_option_not_by_path():
    odd = Cgroups("cgroup /cg/elogind cgroup rw,nosuid,name=systemd 0 0\ncgroup /cg/fz cgroup rw,freezer 0 0")
    assert odd.v1_hierarchy("name=systemd").path == "/cg/elogind"
    assert odd.v1_hierarchy("freezer").path == "/cg/fz"
    assert odd.v1_hierarchy("memory") is None


def test_cgroup_files_of_a_recorded_host():
    host = RecordedHost({"/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory pids\n"})
    unified = Cgroups("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0", host)
    assert unified.v2_controllers() == {"cpuset", "cpu", "io", "memory", "pids"}
    host.files["/sys/fs/cgroup/cpu/cgroup.clone_children"] = "0\n"
    legacy = Cgroups("cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0", host)
    assert legacy.clone_children() == ["/sys/fs/cgroup/cpu"]


def test_script_port_on_a_pure_cgroup2_host():
    host = checkconfig.ScriptHost(mounts="cgroup2 /sys/fs/cgroup cgroup2 rw 0 0", read=lambda p: SYNTHETIC["6.1"],
                                  is_file=lambda p: p == "/cfg")
    lines = checkconfig.run(host, "/cfg").lines
    assert "Cgroup v2 mount points: " in lines and " - /sys/fs/cgroup" in lines
    assert not any(line.startswith("Cgroup v1 systemd") for line in lines)


def test_script_port_probes_modules_where_proc_modules_exists():
    modules = "veth 40960 0 - Live 0x0\nbridge 311296 1 br_netfilter, Live 0x0\n"
    host = checkconfig.ScriptHost(modules=modules, read=lambda p: SYNTHETIC["6.1"], is_file=lambda p: p == "/cfg")
    items = checkconfig.items(checkconfig.run(host, "/cfg").lines)
    assert items["Veth pair device"] == "Veth pair device: enabled, loaded"
    assert items["Macvlan"] == "Macvlan: enabled, not loaded"
    assert items["Bridges"] == "Bridges: enabled, loaded"


# --- privileged helpers: real files with a real setuid bit or file capability --


@pytest.fixture
def fake_helper(tmp_path, monkeypatch):
    program = tmp_path / "newuidmap"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    return program


@pytest.mark.needs_root  # chowns the fake helper to root
def test_helper_setuid_root(fake_helper):
    assert not PrivilegedHelper.for_program("newuidmap").privileged
    fake_helper.chmod(0o4755)
    helper = PrivilegedHelper.for_program("newuidmap")  # a helper is read once
    assert helper.setuid_root and helper.privileged
    assert "setuid-root" in helper.describe()


@pytest.mark.needs_root  # sets a security.* extended attribute
def test_helper_with_file_capability(fake_helper):
    # vfs_cap_data revision 2: magic, permitted (lo, hi), inheritable (lo, hi).
    os.setxattr(fake_helper, "security.capability", struct.pack("<IIIII", 0x02000001, 1 << 7, 0, 0, 0))
    helper = PrivilegedHelper.for_program("newuidmap")
    assert helper.file_capability and helper.privileged and not helper.setuid_root


def test_helper_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert PrivilegedHelper.for_program("newgidmap").describe() == "not installed"


# --- strict YAML ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a: 1\na: 2\n", ["x.yaml:2:", "duplicate key 'a'"]),
        ("a: [1\n", ["x.yaml", "YAML syntax error"]),
        ("? [a, b]\n: 1\n", ["keys must be plain"]),
        ("- 1\n", ["mapping"]),
    ],
)
def test_strict_yaml(tmp_path, text, words):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(YamlError) as raised:
        load_yaml(path)
    for word in words:
        assert word in str(raised.value)


def test_yaml_that_is_not_utf8(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(YamlError, match="not a UTF-8 text file"):
        load_yaml(path)


def test_catalogue_ids_are_unique_and_every_test_exists():
    import importlib

    assert len(CATALOG.by_id) == len(CATALOG.checks)
    for check in CATALOG.checks:
        assert check.id.startswith(f"{check.category}."), check.id
        module = importlib.import_module(f"checks.test_{check.category}")
        assert hasattr(module, check.test), f"{check.id}: no function {check.test} in {module.__name__}"


def test_dnsmasq_as_lxd_starts_it_serves_its_range():
    """LXD passes some values as the next argument (--dhcp-range 10.x.y.2,...), not after '='."""
    from lxc_compliance.readers.dnsmasq import DnsmasqConfig

    argv = ["dnsmasq", "--keep-in-foreground", "--strict-order", "--bind-interfaces", "--except-interface=lo",
            "--pid-file=", "--no-ping", "--interface=lxdbr0", "--listen-address=10.1.2.1",
            "--dhcp-leasefile=/var/lib/lxd/networks/lxdbr0/dnsmasq.leases", "--dhcp-range", "10.1.2.2,10.1.2.254,1h",
            "-s", "lxd", "--interface-name", "_gateway.lxd,lxdbr0", "-S", "/lxd/",
            "--conf-file=/var/lib/lxd/networks/lxdbr0/dnsmasq.raw", "-u", "nobody", "-g", "lxd"]
    config = DnsmasqConfig.from_cmdline(argv, read=lambda path: "", listdir=lambda directory: [])
    assert [(str(r.first), str(r.last), r.lease_time) for r in config.ranges] == [("10.1.2.2", "10.1.2.254", "1h")]
    assert config.leasefile == "/var/lib/lxd/networks/lxdbr0/dnsmasq.leases"
    assert config.interfaces == ["lxdbr0"]


def _chain(name, hook=None, policy=None):
    chain = {"family": "ip", "table": "filter", "name": name}
    return {"chain": {**chain, **({"hook": hook, "policy": policy} if hook else {})}}


def _rule(chain, handle, *expressions):
    return {"rule": {"family": "ip", "table": "filter", "chain": chain, "handle": handle, "expr": list(expressions)}}


IIF = lambda name: {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": name}}  # noqa: E731


def test_docker_s_forward_drop_is_found_unless_docker_user_accepts_the_bridge():
    from lxc_compliance.readers.firewall import Firewall

    docker = [_chain("FORWARD", "forward", "drop"), _chain("DOCKER-USER"),
              _rule("FORWARD", 1, {"jump": {"target": "DOCKER-USER"}}),
              _rule("FORWARD", 2, IIF("docker0"), {"accept": None})]
    found = Firewall({"nftables": docker}).dropping("lxdbr0")
    assert found == ["nft ip filter FORWARD: policy drop on the forward hook, and no rule it reaches accepts lxdbr0"]
    fixed = docker + [_rule("DOCKER-USER", 3, IIF("lxdbr0"), {"accept": None})]
    assert Firewall({"nftables": fixed}).dropping("lxdbr0") == []
    assert Firewall({"nftables": docker}).dropping("docker0") == []


def test_an_input_drop_counts_only_where_it_can_match_a_dhcp_request():
    from lxc_compliance.readers.firewall import Firewall

    ssh = {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}
    dhcp = {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 67}}
    input_chain = _chain("INPUT", "input", "accept")
    assert Firewall({"nftables": [input_chain, _rule("INPUT", 1, IIF("lxdbr0"), ssh, {"drop": None})]}).dropping("lxdbr0") == []
    accepted_first = [input_chain, _rule("INPUT", 1, dhcp, {"accept": None}), _rule("INPUT", 2, {"drop": None})]
    assert Firewall({"nftables": accepted_first}).dropping("lxdbr0") == []
    dropped = [input_chain, _rule("INPUT", 1, IIF("lxdbr0"), dhcp, {"reject": None})]
    assert Firewall({"nftables": dropped}).dropping("lxdbr0") == [
        "nft ip filter INPUT (handle 1): rejects its DHCP requests (UDP 67) coming in on lxdbr0"]


def test_defaults_live_in_the_schema_and_are_valid_values():
    """profile.setting() answers a key the profile leaves unset with the schema's default,
    and every default is a value the schema itself accepts."""
    from lxc_compliance.model.catalog import Catalog
    from lxc_compliance.model.profiles import load
    from lxc_compliance.model.schema import SCHEMA

    defaults = []

    def walk(node, path):
        for name, child in (node.get("properties") or {}).items():
            if "default" in child:
                defaults.append((f"{path}{name}", child))
            walk(child, f"{path}{name}.")

    walk(SCHEMA, "")
    assert len(defaults) >= 15
    for dotted, child in defaults:
        from lxc_compliance.model.yamlfile import _problem

        assert _problem(child["default"], child, [dotted]) is None, dotted
    kernel = load("kernel", Catalog.load())
    assert kernel.setting("containers.concurrency") == 4 and kernel.given("containers.concurrency") is None
    assert kernel.setting("lxd.server") == "lxd" and kernel.containers == 1
