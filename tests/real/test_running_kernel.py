"""The kernel checks that read the running kernel rather than its config (namespace
limits, a user namespace made for real), on this machine and with one of its limits
lowered for real: a file bound over /proc/sys/user/max_user_namespaces in a private
mount namespace (this sandbox refuses the sysctl itself; the host is untouched)."""

from __future__ import annotations

from pathlib import Path

LOWERED = ("unshare", "--mount", "--propagation", "private", "sh", "-c",
           'mount --bind "$LXCC_LIMIT_FILE" /proc/sys/user/max_user_namespaces && exec "$@"', "lowered-limit")


def _checks(suite, *args, **kwargs) -> dict[str, dict]:
    result = suite.run("-q", *args, **kwargs)
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-2000:]
    return {c["id"]: c for c in suite.results()["checks"]}


def test_namespace_limits_and_a_real_user_namespace_pass_here(suite):
    checks = _checks(suite, "--checkconfig-version=6.0")
    limit = Path("/proc/sys/user/max_user_namespaces").read_text().strip()
    assert checks["kernel.user_namespace_limit"]["outcome"] == "passed"
    assert checks["kernel.user_namespace_limit"]["lxc_checkconfig"] == f"  user: {limit}"
    assert checks["kernel.user_namespace_made"]["outcome"] == "passed", checks["kernel.user_namespace_made"]
    assert checks["kernel.user_namespace_made"]["actual"] == "made by nobody"


def test_a_zero_user_namespace_limit_is_one_failure(suite, tmp_path):
    zero = tmp_path / "zero"
    zero.write_text("0\n")
    checks = _checks(suite, "--checkconfig-version=6.0", prefix=LOWERED, env={"LXCC_LIMIT_FILE": str(zero)})
    failed = sorted(i for i, c in checks.items() if c["outcome"] == "failed")
    assert failed == ["kernel.user_namespace_limit"], {i: checks[i]["message"] for i in failed}
    assert checks["kernel.user_namespace_limit"]["lxc_checkconfig"] == "  user: 0"
    assert "user.max_user_namespaces is 0; 1 container needs at least 1" in checks["kernel.user_namespace_limit"]["message"]
    assert checks["kernel.user_namespace_made"]["blocked_by"] == "kernel.user_namespace_limit"
