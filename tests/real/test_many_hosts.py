"""Many hosts, one report: containers with sshd act as hosts on a bridge of the
test's own (static addresses, a root key, hostnames of their own), differing on
purpose; one address answers nothing, one host's key is not known. Each host's
facts must be its own, every check names its host, the unreachable ones are
one line each, and serial and -n 2 runs agree."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import psutil
import pytest

from conftest import ROOT
from hoststate import HostState
from remote_hosts import ssh_hosts, with_uidmap_helpers

DEAD = 250  # host number in the bridge's subnet where nothing answers

# It holds the host shared: run after the tests that hold it alone (tests/conftest.py).
pytestmark = pytest.mark.shares_host


def _default_conf(link: str, uidmap: bool = True):
    """A host with /etc/lxc/default.conf linking new containers to LINK (and, with UIDMAP, newuidmap)."""
    def change(rootfs: Path) -> None:
        if uidmap:
            with_uidmap_helpers(rootfs)
        (rootfs / "etc/lxc").mkdir(parents=True, exist_ok=True)
        (rootfs / "etc/lxc/default.conf").write_text(f"lxc.net.0.type = veth\nlxc.net.0.link = {link}\n")
    return change


VARIANTS = {
    "rh1": _default_conf("br0"),
    "rh2": _default_conf("br0", uidmap=False),  # no newuidmap, no newgidmap
    "rh3": _default_conf("lxcbr0"),  # new containers on the wrong bridge
    "rh4": _default_conf("br0"),  # its host key is not in known_hosts
}
PROFILE = "extends: host\nhost:\n  network: {link: br0}\n"


@pytest.fixture
def remote_hosts(lab_gold, tmp_path):
    """(hosts, ssh config, dead spec): the sshd containers, all running, on the test's own bridge."""
    from lxc_compliance.lab.network import LabNetwork

    with HostState(shared=True), LabNetwork(uuid.uuid4().hex, dhcp_hosts=(20, 80)) as network, \
            ssh_hosts(lab_gold, network, tmp_path / "ssh", VARIANTS, unknown_key={"rh4"}) as (hosts, config):
        yield hosts, config, f"ssh://root@{network.subnet.network_address + DEAD}"


def _audit(folder: Path, specs: list[str], config: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    """The host profile (new containers on br0) on SPECS; (the run, its JSON)."""
    folder.mkdir(parents=True)
    (folder / "site.yaml").write_text(PROFILE)
    command = [sys.executable, "-m", "pytest", "checks", f"--profile={folder / 'site.yaml'}", f"--report-dir={folder}",
               f"--hosts={','.join(specs)}", f"--ssh-config={config}", "--connect-timeout=3", *extra]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    return done, json.loads((folder / "site.json").read_text())


def _verdicts(document: dict) -> dict[tuple[str, str], str]:
    return {(c["host"], c["id"]): c["outcome"] for c in document["checks"]}


def test_each_host_audited_as_itself_in_one_report(remote_hosts, tmp_path):
    hosts, config, dead = remote_hosts
    specs = [h.spec for h in hosts] + [dead]
    serial, document = _audit(tmp_path / "serial", specs, config, "-p", "no:xdist")
    parallel, parallel_document = _audit(tmp_path / "parallel", specs, config, "-n", "2")

    output = serial.stdout + serial.stderr
    assert serial.returncode == 1, output[-3000:]
    assert "Traceback" not in output and "RuntimeError" not in output, output[-3000:]
    by_spec = {entry["spec"]: entry for entry in document["hosts"]}
    rh4, dead_address = hosts[3].address, dead.split("@")[1]
    # A host that cannot be reached is named by its address: its own name is unknown.
    assert {spec: (e["hostname"], e["reachable"]) for spec, e in by_spec.items()} == {
        **{h.spec: (h.hostname, True) for h in hosts[:3]}, hosts[3].spec: (rh4, False), dead: (dead_address, False)}
    assert by_spec[dead]["error"] == "connection timed out"
    assert by_spec[hosts[3].spec]["error"].startswith("unknown host key")
    assert f"{dead_address} {dead}: unreachable: connection timed out" in output
    assert f"{hosts[3].address} {hosts[3].spec}: unreachable: unknown host key" in output
    assert all(e["distribution"] == "Debian GNU/Linux 12 (bookworm)" for e in by_spec.values() if e["reachable"])

    verdicts = _verdicts(document)
    assert all(c.get("host") for c in document["checks"])
    # Each host's own facts: newuidmap is missing on rh2 alone.
    assert {host: verdicts[(host, "kernel.newuidmap")] for host in ("rh1", "rh2", "rh3")} == {
        "rh1": "passed", "rh2": "warned", "rh3": "passed"}  # optional in the host profile
    unreachable = {host for (host, _), outcome in verdicts.items() if outcome == "unreachable"}
    assert unreachable == {rh4, dead_address}
    assert {outcome for (host, _), outcome in verdicts.items() if host in unreachable} == {"unreachable"}
    # Only the kernel and host categories, once per host: nothing of this machine is counted.
    assert {c["category"] for c in document["checks"]} == {"kernel", "host"}
    assert {host for host, _ in verdicts} == {"rh1", "rh2", "rh3", rh4, dead_address}

    assert {host: verdicts[(host, "host.lxc_network_link")] for host in ("rh1", "rh2", "rh3")} == {
        "rh1": "passed", "rh2": "passed", "rh3": "failed"}
    causes = {(cause["host"], cause["id"]) for cause in document["root_causes"]}
    assert ("rh3", "host.lxc_network_link") in causes and ("rh1", "host.lxc_network_link") not in causes
    assert "FAILED host.lxc_network_link on rh3" in output
    assert parallel.returncode == 1, (parallel.stdout + parallel.stderr)[-3000:]
    assert _verdicts(parallel_document) == verdicts
    # The same hosts named by an Ansible inventory group: the same verdicts, the inventory's names.
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[lxchosts]\n" + "".join(f"{h.hostname} ansible_host={h.address} ansible_user=root\n"
                                                   for h in hosts[:3])
                         + f"[lxchosts:vars]\nansible_ssh_common_args=-F {config}\n")
    inventoried, inventoried_document = _audit(tmp_path / "ansible", ["ansible://lxchosts"], config,
                                               f"--ansible-inventory={inventory}", "-n", "2")
    assert [e["hostname"] for e in inventoried_document["hosts"]] == ["rh1", "rh2", "rh3"], inventoried.stdout[-3000:]
    assert _verdicts(inventoried_document) == {key: o for key, o in verdicts.items() if key[0] in ("rh1", "rh2", "rh3")}
    assert "@rh1]" in inventoried.stdout  # pytest's ids name each host as the inventory does

    # The runs closed the ssh connections they kept open, and removed their sockets.
    assert not list(Path(tempfile.gettempdir()).glob("lxc-compliance-*-ssh-*"))
    assert not [p for p in psutil.process_iter(["cmdline"]) if "ControlPersist" in " ".join(p.info["cmdline"] or [])]


def test_per_host_results_merged_and_compared_host_by_host(remote_hosts, tmp_path):
    """Each host audited on its own, the results merged into one JSON, HTML and
    JUnit; a later run against the merged baseline names the host of each change."""
    hosts, config, _ = remote_hosts
    rh1, rh2 = hosts[0], hosts[1]
    for host in (rh1, rh2):
        _audit(tmp_path / host.hostname, [host.spec], config)
    merged = subprocess.run([str(ROOT / "lxcc"), "merge", "rh1/site.json", "rh2/site.json", "--report-dir=merged"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert merged.returncode == 1, merged.stdout + merged.stderr  # both hosts have failures
    document = json.loads((tmp_path / "merged/merged.json").read_text())
    assert [entry["hostname"] for entry in document["hosts"]] == ["rh1", "rh2"]
    assert {c["host"] for c in document["checks"]} == {"rh1", "rh2"}
    assert sum(e["summary"]["passed"] for e in document["hosts"]) == document["summary"]["passed"]
    page = (tmp_path / "merged/merged.html").read_text()
    assert 'id="host-rh1"' in page and 'id="host-rh2"' in page and "Hosts by category" in page
    junit = (tmp_path / "merged/merged.xml").read_text()
    assert junit.count("<testsuite ") == 2
    assert merged.stdout.splitlines()[0].startswith("rh1: ")

    # rh1's new containers now go to the wrong bridge: a new failure, on rh1 only.
    subprocess.run(["ssh", "-F", str(config), rh1.address, "sed -i s/br0/lxcbr0/ /etc/lxc/default.conf"],
                   check=True, capture_output=True, timeout=30)
    done, again = _audit(tmp_path / "again", [rh1.spec, rh2.spec], config,
                         f"--baseline={tmp_path / 'merged/merged.json'}")
    assert again["baseline"]["new"] == ["rh1: host.lxc_network_link"], done.stdout[-3000:]
    assert not [i for i in again["baseline"]["removed"]]


def test_each_host_network_read_there_and_what_runs_here_is_not_run_remotely(remote_hosts, tmp_path):
    """The read-only network checks read each host's own bridge and dnsmasq (rh1 has
    a br0, rh2 none), the fleet audit each host's own lxcpaths (none here); the DHCP
    exchange and the samples run where lxcc runs: on a remote host they are skipped
    saying how to get them, never run against this machine instead."""
    hosts, config, _ = remote_hosts
    rh1, rh2 = hosts[0], hosts[1]
    subprocess.run(["ssh", "-F", str(config), rh1.address,
                    "ip link add br0 type bridge && ip addr add 10.99.0.1/24 dev br0 && ip link set br0 up"],
                   check=True, capture_output=True, timeout=30)
    command = [sys.executable, "-m", "pytest", "checks", "--profile=workshop", f"--report-dir={tmp_path}",
               f"--hosts={rh1.spec},{rh2.spec}", f"--ssh-config={config}", "-m", "network or fleet or security"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    document = json.loads((tmp_path / "workshop.json").read_text())
    checks = {(c["host"], c["id"]): c for c in document["checks"]}
    assert {host for host, _ in checks} == {"rh1", "rh2"}, done.stdout[-3000:]
    outcome = {key: c["outcome"] for key, c in checks.items()}
    assert (outcome[("rh1", "network.bridge_exists")], outcome[("rh2", "network.bridge_exists")]) == ("passed", "failed"), \
        checks[("rh2", "network.bridge_exists")]["message"]
    assert outcome[("rh1", "network.bridge_up")] == "passed"
    assert checks[("rh1", "network.bridge_address")]["actual"] == "10.99.0.1/24"
    assert "forward delay 15.0s" in checks[("rh1", "network.bridge_exists")]["actual"]
    assert checks[("rh1", "network.dnsmasq_serves_bridge")]["message"] == "no dnsmasq serves br0 (no dnsmasq runs at all)"
    assert checks[("rh2", "network.bridge_up")]["message"].startswith("not checked: network.bridge_exists failed")
    exchange = checks[("rh1", "network.dhcp_exchange")]
    assert exchange["outcome"] == "skipped" and exchange["message"].startswith(
        "not run over ssh: the DHCP exchange runs where lxcc runs; run lxcc on 10."), exchange["message"]
    # The fleet is read there too: these hosts have no LXC, so no container (and no sample is started).
    fleet = [c for c in document["checks"] if c["category"] == "fleet"]
    assert fleet and {c["outcome"] for c in fleet} == {"skipped"}
    quota = [c for c in fleet if c["id"] == "fleet.usernet_quota"]
    assert len(quota) == 2 and all(c["message"].startswith("no container of the fleet is defined (read no lxcpath; "
                                                           "not there: ") and "/var/lib/lxc" in c["message"] for c in quota)
    assert checks[("rh2", "fleet.dhcp_pool")]["message"] == "not checked: network.bridge_exists failed"
    assert not [c for c in document["checks"] if c["category"] == "security"]
    assert "lxc-compliance: -n ignored" not in done.stdout  # no lab is built here, so nothing forces one process


def test_a_host_that_refuses_is_one_line_and_this_machine_is_still_audited(tmp_path):
    """local:// beside a loopback port where nothing listens: this machine's kernel
    checks run, the other host is one line and its checks are unreachable (exit 1),
    and the report has a host column and the hosts table."""
    command = [sys.executable, "-m", "pytest", "checks", "--profile=kernel", f"--report-dir={tmp_path}",
               "--hosts=local://,ssh://root@127.0.0.1:1", "--connect-timeout=2", "--junitxml", str(tmp_path / "j.xml")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout[-3000:]
    assert done.stdout.count("127.0.0.1 ssh://root@127.0.0.1:1: unreachable: connection refused") == 2  # header, end
    assert "Traceback" not in done.stdout + done.stderr
    document = json.loads((tmp_path / "kernel.json").read_text())
    outcomes = {(c["host"], c["outcome"]) for c in document["checks"]}
    assert ("127.0.0.1", "unreachable") in outcomes and (document["host"]["hostname"], "passed") in outcomes
    assert document["summary"]["unreachable"] == sum(c["host"] == "127.0.0.1" for c in document["checks"]) > 40
    page = (tmp_path / "kernel.html").read_text()
    assert "Hosts by category" in page and "<small>on 127.0.0.1</small>" in page  # each row names its host
    assert 'value="unreachable"' in (tmp_path / "j.xml").read_text()


@pytest.fixture
def python_hosts(lab_gold, tmp_path):
    """(hosts, ssh config, bare host, its ssh config): two sshd containers as rh1 and rh3 of
    the variants, from a copy of the lab's gold given python3-venv (the suite and Ansible's
    modules run on them), and rh5, from the lab's gold itself, without Python."""
    from lxc_compliance.lab.gold import GoldImage
    from lxc_compliance.lab.network import LabNetwork
    from nested import in_chroot

    gold = GoldImage(f"lxcct-pygold-{uuid.uuid4().hex[:6]}")
    with HostState(shared=True), contextlib.ExitStack() as cleanup:
        cleanup.callback(gold.remove)  # registered before it exists
        subprocess.run(["lxc-copy", "-n", lab_gold.name, "-N", gold.name], check=True, capture_output=True, timeout=300)
        in_chroot(gold.rootfs, "apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv",
                  timeout=600)
        network = cleanup.enter_context(LabNetwork(uuid.uuid4().hex, dhcp_hosts=(20, 80)))
        variants = {name: VARIANTS[name] for name in ("rh1", "rh3")}
        hosts, config = cleanup.enter_context(ssh_hosts(gold, network, tmp_path / "ssh", variants))
        # And one host as the lab's gold is: no Python at all.
        bare, bare_config = cleanup.enter_context(ssh_hosts(lab_gold, network, tmp_path / "ssh-bare",
                                                            {"rh5": VARIANTS["rh1"]}, first=5))
        yield hosts, config, bare[0], bare_config


def test_the_playbook_runs_the_suite_on_each_host_and_merges_what_they_found(python_hosts, tmp_path):
    """ansible/audit.yml against the same kind of hosts: each runs its own suite from
    wheels the controller built (the hosts reach no package index), the results come
    back and merge into one report; each host's verdicts are those of the same profile
    read over ssh from here, and nothing of the run stays on a host or beside the checkout."""
    hosts, config, bare, bare_config = python_hosts
    reached = [(host, config) for host in hosts] + [(bare, bare_config)]  # each with its ssh config
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[lxchosts]\n" + "".join(f"{h.hostname} ansible_host={h.address} ansible_ssh_common_args='-F {c}'\n"
                                                   for h, c in reached)
                         + "[lxchosts:vars]\nansible_user=root\nansible_python_interpreter=/usr/bin/python3\n")
    profile = tmp_path / "site.yaml"
    profile.write_text(PROFILE)
    results = tmp_path / "results"
    beside = sorted(p.name for p in ROOT.iterdir())
    env = {**os.environ, "ANSIBLE_HOME": str(tmp_path / "ansible-home"), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    played = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), str(ROOT / "ansible/audit.yml"),
         "-e", "lxcc_hosts=lxchosts", "-e", f"lxcc_profile={profile}", "-e", f"lxcc_results={results}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    # rh5 is one failure, naming why; the others are audited and merged all the same.
    assert played.returncode == 2, played.stdout[-4000:] + played.stderr[-2000:]
    recap = dict(re.findall(r"^(rh\d)\s+: .*failed=(\d+)", played.stdout, re.M))
    assert recap == {"rh1": "0", "rh3": "0", "rh5": "1"}, played.stdout[-4000:]
    assert "rh5 was not audited: rh5 needs python3 with its venv module" in played.stdout, played.stdout[-4000:]
    assert sorted(p.name for p in results.glob("*.json")) == ["merged.json", "rh1.json", "rh3.json"]
    merged = json.loads((results / "merged.json").read_text())
    assert [entry["hostname"] for entry in merged["hosts"]] == ["rh1", "rh3"]
    assert (results / "merged.html").exists() and (results / "merged.xml").exists()

    _, over_ssh = _audit(tmp_path / "over-ssh", [h.spec for h in hosts], config, "-p", "no:xdist")
    assert _verdicts(merged) == _verdicts(over_ssh)
    assert _verdicts(merged)[("rh3", "host.lxc_network_link")] == "failed"
    for host, ssh_config in reached:
        left = subprocess.run(["ssh", "-F", str(ssh_config), host.address, "ls -d /tmp/lxc-compliance-* 2>/dev/null"],
                              capture_output=True, text=True, timeout=30).stdout
        assert left == "", f"{host.hostname} keeps {left}"
    assert sorted(p.name for p in ROOT.iterdir()) == beside, "the build wrote beside the checkout"
    assert not list(Path(tempfile.gettempdir()).glob("lxc-compliance-wheels-*")), "the controller's wheels are left"
