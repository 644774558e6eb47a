"""The agent as a systemd service: the unit systemd would load, readiness and watchdog over a real
notify socket, the journal's priorities with libindi's chatter kept out, and `service install`."""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli import main
from agent.service.install import InstallError, check_readable_by
from agent.service.unit import UnitSettings, render_unit, unit_path
from tests.config_fixtures import MINIMAL_SEQUENCE

VENV_BIN = Path(sys.executable).parent


def _fields(text: str) -> dict[str, dict[str, list[str]]]:
    """The unit's sections and keys, the way systemd reads them (a key may repeat: Environment=)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None and "=" in line, f"not KEY=VALUE inside a section: {line!r}"
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


@pytest.fixture()
def sequence_file(tmp_path: Path) -> Path:
    path = tmp_path / "night.yaml"
    path.write_text(MINIMAL_SEQUENCE)
    return path


def test_the_system_unit_runs_serve_as_its_own_user_with_readiness_watchdog_and_restarts(sequence_file: Path) -> None:
    unit = _fields(render_unit(UnitSettings(sequence=sequence_file, python=Path(sys.executable))))
    service = unit["Service"]
    one = {key: values[-1] for key, values in service.items()}
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main"
    assert int(one["WatchdogSec"]) > 0 and one["Restart"] == "on-failure"
    assert one["User"] == "obsagent" and one["StateDirectory"] == "obsagent"
    assert "OBSAGENT_DATA=%S/obsagent" in service["Environment"]  # /var/lib/obsagent
    assert one["ExecStart"] == f"{VENV_BIN / 'obsagent'} serve {sequence_file}"
    assert one["ExecStartPre"] == f"-{sys.executable} -m agent.stacking.warmup"
    assert one["ExecReload"] == "/bin/kill -HUP $MAINPID"  # serve rereads the sequence file on SIGHUP
    assert "NUMBA_CACHE_DIR=%C/obsagent/numba" in service["Environment"]  # the warm-up and the agent share it
    assert one["KillSignal"] == "SIGTERM" and int(one["TimeoutStopSec"]) >= 60
    assert one["StandardError"] == "journal" and one["SyslogIdentifier"] == "obsagent"
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_a_user_unit_keeps_the_data_in_the_users_folder_and_quotes_odd_paths(tmp_path: Path) -> None:
    odd = tmp_path / "my nights" / "50% moon.yaml"
    text = render_unit(UnitSettings(sequence=odd, scope="user", data=tmp_path / "data dir"))
    service = _fields(text)["Service"]
    assert "User" not in service and "StateDirectory" not in service
    assert service["Environment"][0] == f'"OBSAGENT_DATA={tmp_path}/data dir"'
    # systemd would expand %m and split at the space: the path is quoted and % doubled
    assert service["ExecStart"] == [f'{VENV_BIN / "obsagent"} serve "{tmp_path}/my nights/50%% moon.yaml"']
    assert _fields(text)["Install"]["WantedBy"] == ["default.target"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit(tmp_path: Path, sequence_file: Path) -> None:
    folder = tmp_path / "units"
    folder.mkdir()
    unit = folder / "obsagent.service"

    def verify(text: str) -> str:
        unit.write_text(text)
        done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
        return "\n".join(line for line in (done.stdout + done.stderr).splitlines() if "obsagent.service" in line)

    good = render_unit(UnitSettings(sequence=sequence_file, data=tmp_path / "data"))
    assert verify(good) == ""
    # the verifier does read our fields: a broken one is reported
    assert "kill mode" in verify(good.replace("KillMode=mixed", "KillMode=sometimes"))


NOTIFY_CHILD = textwrap.dedent("""
    import sys
    from agent.service.systemd import ServiceNotifier
    n = ServiceNotifier()
    print(n.enabled, n.watchdog_interval, flush=True)
    n.ready("connected to localhost:7624")
    n.status("imaging M31\\n(L 3/40)")
    n.watchdog()
    n.extend_timeout(90)
    n.stopping()
""")


def _run_notifier(env_extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    done = subprocess.run([sys.executable, "-c", NOTIFY_CHILD], env={**env, **env_extra},
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    return done.stdout.strip()


def _received(sock: socket.socket) -> list[str]:
    sock.settimeout(0.2)
    messages = []
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except TimeoutError:
        return messages


def test_readiness_status_watchdog_and_stopping_reach_the_notify_socket(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify"))
        shown = _run_notifier({"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "30000000"})
        assert shown == "True 15.0"  # ping every half of WatchdogSec
        assert _received(sock) == [
            "READY=1\nSTATUS=connected to localhost:7624",
            "STATUS=imaging M31 (L 3/40)",  # one line: a newline would end the field
            "WATCHDOG=1",
            "EXTEND_TIMEOUT_USEC=90000000",
            "STOPPING=1",
        ]


def test_a_watchdog_meant_for_another_process_is_not_pinged_and_abstract_sockets_work() -> None:
    name = f"obsagent-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        shown = _run_notifier({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"})
        assert shown == "True None"
        assert "WATCHDOG=1" not in _received(sock)


def test_outside_systemd_the_notifier_does_nothing() -> None:
    assert _run_notifier({}) == "False None"


LOGGING_CHILD = textwrap.dedent("""
    import logging, os, sys
    from agent.service.logging import configure_service_logging
    setup = configure_service_logging(logging.DEBUG if "debug" in sys.argv else logging.INFO)
    log = logging.getLogger("agent.night")
    log.info("night started")
    log.debug("a detail")
    try:
        1 / 0
    except ZeroDivisionError:
        log.exception("the cap did not answer")
    import PyIndi
    client = PyIndi.BaseClient()
    client.setServer("127.0.0.1", int(sys.argv[1]))
    client.connectServer()   # libindi prints its chatter on descriptor 2
    os.write(2, b"Bad XML from localhost/7624: something real\\n")
    if "crash" in sys.argv:
        os.write(2, b"terminate called after throwing an instance of 'std::system_error'\\n")
        os.abort()
""")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _log_run(tmp_path: Path, *args: str, journal: bool = True) -> list[str]:
    out = tmp_path / "journal.txt"
    out.write_bytes(b"")
    env = dict(os.environ)
    env.pop("JOURNAL_STREAM", None)
    if journal:
        st = out.stat()
        env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    with out.open("ab") as stream:
        subprocess.run([sys.executable, "-c", LOGGING_CHILD, str(_closed_port()), *args], stderr=stream,
                       env=env, timeout=60, check=False)  # fmt: skip
    # the filter process writes until the agent's descriptor closes; give it a moment to finish
    last = "terminate called" if "crash" in args else "Bad XML"
    for _ in range(50):
        if last in out.read_text():
            break
        subprocess.run(["sleep", "0.1"], check=True)
    return out.read_text().splitlines()


def test_under_journald_lines_carry_priorities_and_no_timestamps_and_libindi_chatter_is_dropped(
    tmp_path: Path,
) -> None:
    lines = _log_run(tmp_path)
    assert "<6>agent.night: night started" in lines
    assert "<3>agent.night: the cap did not answer" in lines
    assert "<3>ZeroDivisionError: division by zero" in lines  # every traceback line at the record's priority
    assert not any("a detail" in line for line in lines)
    assert not any("INDI::BaseClient" in line for line in lines)
    assert "<4>Bad XML from localhost/7624: something real" in lines  # libindi's real complaints stay
    assert not any(re.search(r"\d\d:\d\d:\d\d", line) for line in lines)  # journald stamps the time


def test_with_debug_the_chatter_is_kept_at_debug_priority(tmp_path: Path) -> None:
    lines = _log_run(tmp_path, "debug")
    assert "<7>agent.night: a detail" in lines
    assert "<7>INDI::BaseClient::connectServer: creating new connection..." in lines


def test_in_a_terminal_lines_keep_their_timestamps(tmp_path: Path) -> None:
    lines = _log_run(tmp_path, journal=False)
    assert any(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO agent.night: night started", x) for x in lines)
    assert "Bad XML from localhost/7624: something real" in lines
    assert not any("INDI::BaseClient" in line for line in lines)


def test_the_last_words_of_a_crashing_agent_reach_the_journal(tmp_path: Path) -> None:
    lines = _log_run(tmp_path, "crash")
    assert "<4>terminate called after throwing an instance of 'std::system_error'" in lines


def test_install_print_shows_the_unit_and_writes_nothing(
    sequence_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    assert main(["service", "install", str(sequence_file), "--print", "--user"]) == 0
    shown = capsys.readouterr().out
    assert f"serve {sequence_file}\n" in shown and "Type=notify" in shown
    assert not (tmp_path / "config").exists()


def test_install_user_writes_the_unit_into_the_users_systemd_folder(
    sequence_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    monkeypatch.delenv("OBSAGENT_DATA", raising=False)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    monkeypatch.chdir(sequence_file.parent)
    assert main(["service", "install", sequence_file.name, "--user"]) == 0
    unit = tmp_path / "config" / "systemd" / "user" / "obsagent.service"
    assert unit_path("user") == unit
    said = capsys.readouterr().out
    assert said.startswith(f"wrote {unit}\n") and "systemctl --user enable --now obsagent" in said
    service = _fields(unit.read_text())["Service"]
    assert service["Environment"][0] == f"OBSAGENT_DATA={tmp_path / 'share' / 'obsagent'}"
    assert service["ExecStart"][0].endswith(f" serve {sequence_file}")  # made absolute
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    assert not (tmp_path / "share").exists()  # the agent makes its data folder when it runs
    assert sorted(p.name for p in (tmp_path / "config").rglob("*")) == ["obsagent.service", "systemd", "user"]

    assert main(["service", "install", str(sequence_file), "--user", "--data", str(tmp_path / "usb")]) == 0
    assert capsys.readouterr().out.startswith(f"replaced {unit}\n")
    assert f"OBSAGENT_DATA={tmp_path / 'usb'}" in unit.read_text()


def test_install_refuses_a_sequence_file_that_does_not_validate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINIMAL_SEQUENCE.replace("sensor: cmos", "sensor: cmoss"))
    assert main(["service", "install", str(bad), "--user"]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:5: camera.sensor" in err and "Traceback" not in err
    assert not (tmp_path / "config").exists()


@pytest.fixture()
def open_folder() -> Iterator[Path]:
    """A folder any user may enter (pytest's own temp folders are private to their owner)."""
    with tempfile.TemporaryDirectory(prefix="obsagent-service-") as name:
        folder = Path(name)
        folder.chmod(0o755)
        yield folder


def test_a_system_unit_needs_root(open_folder: Path) -> None:
    """Run as an ordinary user (nobody, through setpriv, when the tests run as root)."""
    sequence = open_folder / "night.yaml"
    sequence.write_text(MINIMAL_SEQUENCE)
    sequence.chmod(0o644)
    command = [str(VENV_BIN / "obsagent"), "service", "install", str(sequence), "--system"]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv is missing")
        closed = [p for p in VENV_BIN.resolve().parents if p != Path("/") and not os.stat(p).st_mode & 0o001]
        if closed:
            pytest.skip(f"the checkout is under {closed[-1]}, which other users cannot enter: nobody cannot run it")
        command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]
    env = dict(os.environ, HOME=str(open_folder), NUMBA_CACHE_DIR=str(open_folder / "numba"))
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("obsagent: error: installing a system unit needs root: run it with sudo")
    assert done.stderr.count("\n") == 1


def test_the_service_user_must_be_able_to_read_the_sequence_file(open_folder: Path) -> None:
    home = open_folder / "pi"
    home.mkdir()
    home.chmod(0o700)  # bookworm's private home folders
    sequence = home / "night.yaml"
    sequence.write_text(MINIMAL_SEQUENCE)
    # an agent installed where everyone may read it (wherever this checkout happens to be)
    python, package = Path("/usr/bin/env"), Path("/usr/lib")
    with pytest.raises(InstallError, match=f"{home} is closed to it; copy it to /etc/obsagent/"):
        check_readable_by("nobody", sequence, python, package)
    readable = open_folder / "night.yaml"
    readable.write_text(MINIMAL_SEQUENCE)
    readable.chmod(0o644)
    check_readable_by("nobody", readable, python, package)
    readable.chmod(0o600)
    with pytest.raises(InstallError, match=f"cannot read the sequence file .*: {readable} is closed to it"):
        check_readable_by("nobody", readable, python, package)


def test_the_filter_drops_libindis_dump_of_an_update_for_an_undefined_property() -> None:
    """A driver's timer update racing a new client's definitions makes libindi print the error and
    the whole XML message; none of it is for a person. Other lines pass."""
    import subprocess
    import sys
    from pathlib import Path

    import agent.service.libindi_filter as filt

    noise = (
        "Dispatch command error(-1): INDI: Could not find property WEATHER_PARAMETERS in Sim Weather\n"
        '<setNumberVector device="Sim Weather" name="WEATHER_PARAMETERS" state="Ok">\n'
        '    <oneNumber name="WEATHER_CLOUD_COVER">\n100.0\n    </oneNumber>\n</setNumberVector>\n'
    )
    done = subprocess.run([sys.executable, "-I", "-S", str(Path(filt.__file__))],
                          input=f"before\n{noise}after\n", capture_output=True, text=True, timeout=30)
    assert done.stdout.splitlines() == ["before", "after"]
