"""What ships in the repository: the cluster config keeps job submission private, committed reports
can be rerun anywhere (no absolute paths of the machine they ran on)."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_cluster_dashboard_is_loopback_only_and_ray_asks_for_a_token():
    cluster = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    head = " ".join(cluster["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in head  # job submission runs code
    for command in cluster["head_start_ray_commands"] + cluster["worker_start_ray_commands"]:
        if command.split()[-1] != "stop" and "ray start" in command:
            assert command.startswith("RAY_AUTH_MODE=token "), command
    assert "~/.ray/auth_token" in cluster["file_mounts"]  # the one shared token reaches every node


REPORTS = sorted(p for p in (ROOT / "bench").rglob("*") if p.suffix in {".md", ".json", ".csv", ".jsonl"}
                 and p.is_file())
_ABSOLUTE = re.compile(r"""(?:^|[\s"'`=(\[])(/(?:work|home|root|tmp|Users|mnt|opt|var)/[^\s"'`]*)""")


@pytest.mark.parametrize("report", REPORTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_reports_use_repository_relative_paths(report):
    found = _ABSOLUTE.findall(report.read_text(errors="replace"))
    assert not found, f"absolute paths in {report.relative_to(ROOT)}: {found[:3]}"
