"""The site profile (a site's defaults for Slurm and the engines) and `workbench site show`;
the allocation read from Slurm's environment; where the controller listens."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from workbench.errors import InvalidValueError
from workbench.pool import Allocation, EngineCommand, load_site, site_file
from workbench.pool._address import controller_address, host_addresses, source_address
from workbench.pool._allocation import expand_counts

PROFILE = """
[slurm]
partition = "regular"
account = "m1234"
setup = ["module load cray-mpich", "export WB_SITE=1"]
container = "podman-hpc run --rm img"
controller_interface = "hsn0"
"""


def test_the_profile_is_found_read_and_loses_to_arguments(tmp_path, monkeypatch):
    path = tmp_path / "site.toml"
    path.write_text(PROFILE)
    monkeypatch.setenv("WORKBENCH_SITE", str(path))
    assert site_file() == str(path)
    site = load_site()
    assert site.path == str(path) and site.partition == "regular"
    assert site.setup == ("module load cray-mpich", "export WB_SITE=1")
    assert site.pick("partition", "debug") == "debug"  # an argument wins
    assert site.pick("partition", None) == "regular"  # else the profile
    assert site.pick("time", None, "30") == "30"  # else the default
    monkeypatch.delenv("WORKBENCH_SITE")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert load_site().path is None  # no file: an empty profile, not an error
    (tmp_path / "config" / "workbench").mkdir(parents=True)
    (tmp_path / "config" / "workbench" / "site.toml").write_text('[slurm]\ntime = "10"\n')
    assert load_site().time == "10"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[slurm]\npartiton = "x"\n', r"unknown settings \['partiton'\]"),
        ("[other]\nx = 1\n", r"unknown settings \['other'\]"),
        ("[slurm]\nsetup = 3\n", "setup must be a string or a list of strings"),
        ('[slurm]\naccount = ""\n', "account must be a non-empty string"),
        ("[slurm\n", "cannot be read"),
    ],
)
def test_a_bad_profile_names_the_file_and_the_setting(tmp_path, monkeypatch, text, words):
    path = tmp_path / "site.toml"
    path.write_text(text)
    monkeypatch.setenv("WORKBENCH_SITE", str(path))
    with pytest.raises(InvalidValueError, match=words) as info:
        load_site()
    assert str(path) in str(info.value)


def test_workbench_site_show_says_what_applies_and_from_where(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text(PROFILE)
    env = {**os.environ, "WORKBENCH_SITE": str(path)}
    env.pop("SLURM_JOB_ID", None)
    show = subprocess.run([sys.executable, "-m", "workbench.cli", "site", "show"], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert show.returncode == 0, show.stderr
    out = show.stdout
    assert f"site profile: {path}" in out
    assert "partition             regular  (site profile)" in out
    assert "setup                 module load cray-mpich; export WB_SITE=1  (site profile)" in out
    assert "time                  the partition's default  (default)" in out
    inside = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "site", "show"],
        env={**env, "SLURM_JOB_ID": "77", "SLURM_JOB_NODELIST": "nid001", "SLURM_NTASKS": "4"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "inside allocation 77" in inside.stdout and "(4 tasks)" in inside.stdout
    path.write_text("[slurm]\nbogus = 1\n")
    bad = subprocess.run([sys.executable, "-m", "workbench.cli", "site", "show"], env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "unknown settings ['bogus']" in bad.stderr


def test_the_allocation_is_read_from_slurms_environment():
    assert Allocation.current({}) is None
    env = {"SLURM_JOB_ID": "12", "SLURM_JOB_NODELIST": "nid001", "SLURM_NTASKS": "8"}
    alloc = Allocation.current(env)
    assert alloc is not None and (alloc.job_id, alloc.tasks) == ("12", 8)
    assert alloc.describe().startswith("inside allocation 12 (1 node: nid001)")
    no_ntasks = Allocation.current({"SLURM_JOB_ID": "3", "SLURM_JOB_CPUS_PER_NODE": "3,2(x2)"})
    assert no_ntasks is not None and no_ntasks.tasks == 7
    assert expand_counts("4(x3),1") == [4, 4, 4, 1]
    with pytest.raises(InvalidValueError, match="8 tasks on 1 node"):
        alloc.check(9)
    with pytest.raises(InvalidValueError, match="per-node count"):
        expand_counts("two")


def test_the_controller_listens_on_the_route_to_the_nodes_or_as_told():
    mine = host_addresses()
    assert mine, "this machine has an address besides loopback"
    name, address = next(iter(mine.items()))
    assert controller_address([], interface=name) == (address, f"interface {name}")
    with pytest.raises(InvalidValueError, match="has no IPv4 address"):
        controller_address([], interface="nosuch0")
    assert source_address(address) == address  # to itself: its own address
    chosen, why = controller_address(["localhost"])
    assert chosen in mine.values() or chosen.startswith("127."), (chosen, why)


def test_the_engine_command_wraps_setup_and_container_once():
    plain = EngineCommand()
    assert plain.argv()[1:] == ["-m", "ipyparallel.engine"]
    wrapped = EngineCommand(("export A=1",), "apptainer exec img.sif", "/opt/py")
    argv = wrapped.argv()
    assert argv[:2] == ["bash", "-c"] and "export A=1" in argv[2] and 'exec "$@"' in argv[2]
    assert argv[3:] == ["workbench-engine", "apptainer", "exec", "img.sif", "/opt/py", "-m",
                        "ipyparallel.engine"]  # fmt: skip
    assert EngineCommand.from_dict(wrapped.to_dict()) == wrapped
    assert EngineCommand("echo one") == EngineCommand(("echo one",))  # a line or lines
