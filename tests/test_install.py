"""The service installation (systemd/install.sh), staged into a temporary root.

What an equipment engineer checks after `sudo systemd/install.sh`: the code and a venv with
the locked dependencies under /opt/bonderd whose `bonderd` runs; the unit, sysusers and
tmpfiles files where systemd reads them, and valid (`systemd-analyze verify`,
`systemd-sysusers`, `systemd-tmpfiles` on the staged root); the documentation the unit
points at; an example configuration with devices that loads; a unit that does not
restart-loop on a configuration error; and the broker's example configuration starting on
top of Debian's own mosquitto.conf.
"""

from __future__ import annotations

import getpass
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.config import load_settings
from daemon.machine.factory import real_transports
from tests.mqtt_broker import REPO, free_port, wait_port

INSTALL = REPO / "systemd" / "install.sh"
UV = REPO / ".tools" / "uv"
SYSTEMD_UNITS = Path("/usr/lib/systemd/system")
ANALYZE = shutil.which("systemd-analyze")
SYSUSERS = shutil.which("systemd-sysusers")
TMPFILES = shutil.which("systemd-tmpfiles")
MOSQUITTO = shutil.which("mosquitto")
OPENSSL = shutil.which("openssl")
DEBIAN_MOSQUITTO_CONF = Path("/etc/mosquitto/mosquitto.conf")


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not UV.is_file():
        pytest.skip("the pinned uv is not bootstrapped (./dev does it: .tools/uv)")
    root = tmp_path_factory.mktemp("root")
    done = subprocess.run(
        [str(INSTALL), "--root", str(root), "--offline", "--with-broker"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "systemctl enable --now bonderd" in done.stderr  # the next steps are printed
    return root


def _unit(root: Path) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in (root / "etc/systemd/system/bonderd.service").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            keys.setdefault(k, []).append(v)
    return keys


def test_code_and_venv_with_the_locked_dependencies(staged: Path) -> None:
    opt = staged / "opt/bonderd"
    for item in ("daemon", "drivers", "recipes", "pyproject.toml", "uv.lock"):
        assert (opt / item).exists(), item
    assert not list(opt.rglob("__pycache__"))
    bonderd = opt / ".venv/bin/bonderd"
    out = subprocess.run([str(bonderd), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("bonderd ")
    assert (opt / ".venv/bin/bonderctl").is_file()
    # The venv's wheel carries the C twins it compiled, and nothing built came with the code.
    twins = subprocess.run(
        [
            str(opt / ".venv/bin/python"),
            "-c",
            "from drivers.sim.plant import panel_substeps; from daemon.judge import series; "
            "print(panel_substeps.NATIVE, series._native is not None)",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=staged,
    )
    assert twins.stdout.split() == ["True", "True"]
    assert not [*(opt / "daemon").rglob("*.so"), *(opt / "drivers").rglob("*.so")]
    # Exactly the lock's versions, and no dev tools in the service's venv.
    site = next((opt / ".venv/lib").glob("python3*/site-packages"))
    installed = {
        m.group(1).lower().replace("_", "-"): m.group(2)
        for d in site.glob("*.dist-info")
        if (m := re.match(r"(.+)-([^-]+)\.dist-info$", d.name))
    }
    lock = (REPO / "uv.lock").read_text()
    for name in ("pydantic", "structlog", "pymodbus", "aiomqtt", "watchfiles"):
        assert f'name = "{name}"\nversion = "{installed[name]}"' in lock, name
    assert "pytest" not in installed and "mypy" not in installed
    # The code the service runs is the installed copy, not this checkout.
    where = subprocess.run(
        [str(opt / ".venv/bin/python"), "-c", "import daemon; print(daemon.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    assert where.stdout.startswith(str(opt / ".venv")), where.stdout


def test_unit_companions_and_documentation_are_installed(staged: Path) -> None:
    for path in (
        "etc/systemd/system/bonderd.service",
        "usr/lib/sysusers.d/bonderd.conf",
        "usr/lib/tmpfiles.d/bonderd.conf",
        "etc/bonderd/bonderd.toml",
        "etc/mosquitto/conf.d/bonderd.conf",
        "etc/mosquitto/bonderd.acl",
        "usr/share/doc/bonderd/bonderd.toml.example",
    ):
        assert (staged / path).is_file(), path
    unit = _unit(staged)
    docs = [d for v in unit["Documentation"] for d in v.split()]
    assert docs
    for doc in docs:
        assert doc.startswith("file:///"), doc
        assert (staged / doc.removeprefix("file:///")).is_file(), f"{doc} is not installed"
    exe = unit["ExecStart"][0].split()[0]
    assert (staged / exe.lstrip("/")).is_file()
    assert oct((staged / "etc/bonderd/bonderd.toml").stat().st_mode & 0o777) == "0o640"


def test_no_restart_loop_on_a_configuration_error(staged: Path) -> None:
    unit = _unit(staged)
    assert unit["RestartPreventExitStatus"] == ["2"]
    assert unit["StartLimitBurst"] and unit["StartLimitIntervalSec"]


def test_a_config_without_devices_stops_with_a_clear_message(tmp_path: Path) -> None:
    """Exit 2 (which the unit does not restart) naming what is missing."""
    conf = tmp_path / "bonderd.toml"
    conf.write_text(f'data_dir = "{tmp_path}"\nwatch_dir = "{tmp_path}/watch"\n')
    done = subprocess.run(
        [sys.executable, "-m", "daemon.app.cli", "serve", "--config", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "no real device is configured" in done.stderr
    assert "--sim" in done.stderr


def test_the_example_configuration_loads_with_devices(staged: Path) -> None:
    settings = load_settings(staged / "etc/bonderd/bonderd.toml", required=True)
    real = real_transports(settings)  # every transport validated, nothing connected
    assert {"dio", "valves", "thermocouples", "lamps", "gauge", "pump", "chiller", "o2"} <= set(
        real
    )
    text = (staged / "etc/bonderd/bonderd.toml").read_text()
    assert "bonderd tune --config /etc/bonderd/bonderd.toml --write" in text  # [thermal]


def test_an_existing_configuration_is_kept(staged: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/bonderd").mkdir(parents=True)
    (root / "etc/bonderd/bonderd.toml").write_text('equipment_id = "bonder-07"\n')
    done = subprocess.run(
        [str(INSTALL), "--root", str(root), "--offline"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (root / "etc/bonderd/bonderd.toml").read_text() == 'equipment_id = "bonder-07"\n'
    assert "kept the existing" in done.stderr


def _with_systemd_units(staged: Path) -> Path:
    """The staged root with this host's systemd units (sysinit.target, ...) beside ours."""
    target = staged / "usr/lib/systemd/system"
    if not target.exists():
        shutil.copytree(SYSTEMD_UNITS, target, symlinks=True)
    return staged


@pytest.mark.skipif(
    ANALYZE is None or not SYSTEMD_UNITS.is_dir(),
    reason="systemd-analyze missing (tools/debian-packages.txt: systemd)",
)
def test_systemd_analyze_verify_passes_on_the_installed_unit(staged: Path) -> None:
    assert ANALYZE is not None
    root = _with_systemd_units(staged)
    done = subprocess.run(
        [ANALYZE, "verify", f"--root={root}", "bonderd.service"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr


@pytest.mark.skipif(
    SYSUSERS is None or TMPFILES is None,
    reason="systemd-sysusers / systemd-tmpfiles missing (tools/debian-packages.txt: systemd)",
)
def test_sysusers_and_tmpfiles_create_the_user_and_folders(staged: Path) -> None:
    assert SYSUSERS is not None and TMPFILES is not None
    subprocess.run([SYSUSERS, f"--root={staged}"], check=True, capture_output=True)
    passwd = (staged / "etc/passwd").read_text()
    assert re.search(r"^bonderd:x:\d+:\d+:.*:/var/lib/bonderd:/usr/sbin/nologin$", passwd, re.M)
    assert re.search(r"^dialout:x:\d+:.*\bbonderd\b", (staged / "etc/group").read_text(), re.M)
    subprocess.run([TMPFILES, f"--root={staged}", "--create"], check=True, capture_output=True)
    watch = staged / "var/lib/bonderd/watch"
    assert (watch / "rejected").is_dir()
    assert oct(watch.stat().st_mode & 0o7777) == "0o2770"


@pytest.mark.skipif(
    MOSQUITTO is None or OPENSSL is None or not DEBIAN_MOSQUITTO_CONF.is_file(),
    reason="mosquitto (with Debian's mosquitto.conf) or openssl missing (tools/debian-packages.txt)",
)
def test_broker_example_starts_on_debians_mosquitto_conf(staged: Path, tmp_path: Path) -> None:
    """Debian's mosquitto.conf includes conf.d/: the two together must start a broker."""
    from tests.test_mqtt_tls import _ca, _leaf  # noqa: PLC0415 - the throw-away PKI

    assert MOSQUITTO is not None
    ca = _ca(tmp_path, "line-ca")
    broker = _leaf(tmp_path, "broker", ca, usage="serverAuth", san="IP:127.0.0.1")
    confd = tmp_path / "conf.d"
    confd.mkdir()
    port = free_port()
    ours = (staged / "etc/mosquitto/conf.d/bonderd.conf").read_text()
    for old, new in {
        "/etc/mosquitto/bonderd.passwd": str(tmp_path / "passwd"),
        "/etc/mosquitto/bonderd.acl": str(staged / "etc/mosquitto/bonderd.acl"),
        "/etc/mosquitto/tls/line-ca.pem": str(ca.cert),
        "/etc/mosquitto/tls/broker.pem": str(broker.cert),
        "/etc/mosquitto/tls/broker.key": str(broker.key),
        "listener 8883": f"listener {port} 127.0.0.1",
    }.items():
        assert old in ours, old
        ours = ours.replace(old, new)
    (tmp_path / "passwd").write_text("")
    (confd / "bonderd.conf").write_text(ours)
    # Debian's file as shipped, with its paths moved into the test's folder.
    debian = DEBIAN_MOSQUITTO_CONF.read_text()
    (tmp_path / "persist").mkdir()
    for old, new in {
        "/run/mosquitto/mosquitto.pid": str(tmp_path / "mosquitto.pid"),
        "/var/lib/mosquitto/": f"{tmp_path}/persist/",
        "/var/log/mosquitto/mosquitto.log": str(tmp_path / "mosquitto.log"),
        "/etc/mosquitto/conf.d": str(confd),
    }.items():
        debian = debian.replace(old, new)
    main = tmp_path / "mosquitto.conf"
    main.write_text(debian + f"\nuser {getpass.getuser()}\n")
    proc = subprocess.Popen(
        [MOSQUITTO, "-c", str(main)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        try:
            wait_port(port, timeout_s=5.0)
        except TimeoutError:
            proc.kill()
            _, err = proc.communicate()
            log = tmp_path / "mosquitto.log"
            text = log.read_text() if log.exists() else ""
            pytest.fail(f"mosquitto did not start: {err.decode()} {text}")
        assert proc.poll() is None
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()
