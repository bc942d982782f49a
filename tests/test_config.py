"""Publisher options from flags, TVPOWER_* variables and a TOML file, in that order."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tvpower.errors import UsageError
from tvpower.publish import build_parser

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "publish.toml"
    path.write_text(
        "[tvpower]\n"
        'schedule = "from-file.yaml"\n'
        'broker = "mqtt://file.example:1883"\n'
        'topic-prefix = "file"\n'
        "keepalive = 15\n"
        "dry-run = true\n"
        'only-groups = "lobby,hall"\n'
    )
    return path


def test_the_file_sets_options(config: Path) -> None:
    args = build_parser().parse_args(["--config", str(config)])
    assert args.schedule == "from-file.yaml"
    assert args.broker == "mqtt://file.example:1883"
    assert args.keepalive == 15
    assert args.dry_run is True
    assert args.only_groups == "lobby,hall"


def test_environment_wins_over_the_file_and_flags_over_both(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TVPOWER_TOPIC_PREFIX", "env")
    monkeypatch.setenv("TVPOWER_KEEPALIVE", "30")
    args = build_parser().parse_args(["--config", str(config), "--keepalive", "45"])
    assert args.topic_prefix == "env"
    assert args.keepalive == 45
    assert args.broker == "mqtt://file.example:1883"


def test_the_config_file_may_come_from_the_environment(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TVPOWER_CONFIG", str(config))
    assert build_parser().parse_args([]).topic_prefix == "file"


def test_defaults_without_any_source() -> None:
    args = build_parser().parse_args([])
    assert (args.topic_prefix, args.keepalive, args.listen) == (
        "infoscreen",
        60,
        ("127.0.0.1", 1883),
    )
    assert args.expiry_policy == "ttl"
    assert not args.dry_run


def _publish(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tvpower.publish", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env=env,
    )


def test_help_lists_every_environment_variable() -> None:
    result = _publish("--help")
    assert result.returncode == 0
    for name in (
        "TVPOWER_BROKER",
        "TVPOWER_PASSWORD_FILE",
        "TVPOWER_ONLY_GROUPS",
        "TVPOWER_METRICS_PORT",
        "TVPOWER_CONFIG",
        "TVPOWER_EXPIRY_POLICY",
    ):
        assert name in result.stdout


def test_an_unknown_key_in_the_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[tvpower]\nbrokr = "mqtt://x"\n')
    result = _publish("--config", str(path))
    assert result.returncode == 2
    assert result.stderr == (
        f"tvpower.publish: error: {path}: unknown key 'brokr' in [tvpower]; "
        "see --help for the options\n"
    )


def _parse_file(path: Path, text: str) -> None:
    path.write_text(text)
    build_parser().parse_args(["--config", str(path)])


# schedul would abbreviate --schedule; a file cannot name a second one.
@pytest.mark.parametrize("key", ["schedul", "config"])
def test_a_key_that_names_no_option_is_refused(tmp_path: Path, key: str) -> None:
    path = tmp_path / "publish.toml"
    with pytest.raises(UsageError) as caught:
        _parse_file(path, f'[tvpower]\n{key} = "from-file.yaml"\n')
    assert str(caught.value) == (
        f"{path}: unknown key {key!r} in [tvpower]; see --help for the options"
    )


def test_a_flag_may_not_abbreviate_an_option() -> None:
    with pytest.raises(UsageError) as caught:
        build_parser().parse_args(["--schedul", "x.yaml"])
    assert str(caught.value) == "unrecognized arguments: --schedul x.yaml"


# MQTT sends the keep-alive in two bytes; 0 turns it off.
OUT_OF_RANGE = [
    ("--keepalive", "-1", "expected an integer from 0 to 65535, got -1"),
    ("--keepalive", "65536", "expected an integer from 0 to 65535, got 65536"),
    ("--keepalive", "soon", "expected an integer from 0 to 65535, got 'soon'"),
    ("--metrics-port", "0", "expected an integer from 1 to 65535, got 0"),
    ("--metrics-port", "99999", "expected an integer from 1 to 65535, got 99999"),
    (
        "--listen",
        "127.0.0.1:65536",
        "expected HOST:PORT with a port from 0 to 65535, such as 127.0.0.1:1883, "
        "got '127.0.0.1:65536'",
    ),
]


@pytest.mark.parametrize(("option", "value", "message"), OUT_OF_RANGE)
def test_a_flag_out_of_range_is_refused(option: str, value: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        build_parser().parse_args([option, value])
    assert str(caught.value) == f"{option}: {message}"


@pytest.mark.parametrize(("option", "value", "message"), OUT_OF_RANGE)
def test_a_variable_out_of_range_is_refused(
    monkeypatch: pytest.MonkeyPatch, option: str, value: str, message: str
) -> None:
    monkeypatch.setenv("TVPOWER_" + option[2:].upper().replace("-", "_"), value)
    with pytest.raises(UsageError) as caught:
        build_parser().parse_args([])
    assert str(caught.value) == f"{option}: {message}"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("keepalive = -1", "expected an integer from 0 to 65535, got -1"),
        ("keepalive = 65536", "expected an integer from 0 to 65535, got 65536"),
        ("metrics-port = 99999", "expected an integer from 1 to 65535, got 99999"),
        (
            'listen = "[::1]:65536"',
            "expected HOST:PORT with a port from 0 to 65535, such as 127.0.0.1:1883, "
            "got '[::1]:65536'",
        ),
    ],
)
def test_a_key_out_of_range_in_the_file_is_refused(
    tmp_path: Path, line: str, message: str
) -> None:
    _assert_key_refused(tmp_path, line, message)


def _assert_key_refused(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "publish.toml"
    key = line.split(" = ")[0]
    with pytest.raises(UsageError) as caught:
        _parse_file(path, f"[tvpower]\n{line}\n")
    assert str(caught.value) == f"{path}: key {key!r} in [tvpower]: {message}"


def test_the_ends_of_each_range_are_accepted() -> None:
    parse = build_parser().parse_args
    low = parse(["--keepalive", "0", "--metrics-port", "1", "--listen", "[::1]:0"])
    assert (low.keepalive, low.metrics_port, low.listen) == (0, 1, ("::1", 0))
    high = parse(["--keepalive", "65535", "--metrics-port", "65535"])
    assert (high.keepalive, high.metrics_port) == (65535, 65535)


@pytest.mark.parametrize(
    ("args", "variables", "message"),
    [
        (
            ["--metrics-port", "99999"],
            {},
            "--metrics-port: expected an integer from 1 to 65535, got 99999",
        ),
        (
            [],
            {"TVPOWER_KEEPALIVE": "-1"},
            "--keepalive: expected an integer from 0 to 65535, got -1",
        ),
    ],
)
def test_a_number_out_of_range_is_one_line_not_a_traceback(
    args: list[str], variables: dict[str, str], message: str
) -> None:
    result = _publish(*args, env={**os.environ, **variables})
    assert result.returncode == 2
    assert result.stderr == f"tvpower.publish: error: {message}\n"


@pytest.mark.parametrize("source", ["flag", "flag=", "variable"])
def test_a_missing_config_file_is_one_line(tmp_path: Path, source: str) -> None:
    path = tmp_path / "missing.toml"
    args = {
        "flag": ["--config", str(path)],
        "flag=": [f"--config={path}"],
        "variable": [],
    }[source]
    env = {**os.environ, "TVPOWER_CONFIG": str(path)} if source == "variable" else None
    result = _publish(*args, env=env)
    assert result.returncode == 2
    assert result.stderr == (
        f"tvpower.publish: error: --config {path}: "
        "cannot read the file: No such file or directory\n"
    )


def test_a_config_path_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        build_parser().parse_args(["--config", str(tmp_path)])
    assert (
        str(caught.value)
        == f"--config {tmp_path}: cannot read the file: Is a directory"
    )


def test_a_config_path_below_a_file_is_refused(config: Path) -> None:
    # Unlike a file without read permission, refused to root as well.
    below = config / "publish.toml"
    with pytest.raises(UsageError) as caught:
        build_parser().parse_args(["--config", str(below)])
    assert str(caught.value) == (
        f"--config {below}: cannot read the file: Not a directory"
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('keepalive = "15"', "expected an integer, got '15'"),
        ("keepalive = [1, 2]", "expected an integer, got [1, 2]"),
        ("dry-run = 1", "expected true or false, got 1"),
        ("schedule = 2019-03-05", "expected a string, got datetime.date(2019, 3, 5)"),
        ('expiry-policy = "forever"', "expected one of 'ttl', 'window', got 'forever'"),
    ],
)
def test_a_value_of_the_wrong_type_in_the_file_is_refused(
    tmp_path: Path, line: str, message: str
) -> None:
    _assert_key_refused(tmp_path, line, message)


def test_a_file_without_the_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "publish.toml"
    with pytest.raises(UsageError) as caught:
        _parse_file(path, 'schedule = "x.yaml"\n')
    assert str(caught.value) == f"{path}: expected a [tvpower] table of options"


def test_a_file_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "publish.toml"
    with pytest.raises(UsageError) as caught:
        _parse_file(path, "[tvpower\n")
    # The rest is tomllib's, with line and column.
    assert str(caught.value).startswith(f"{path}: not valid TOML: ")


def test_a_missing_schedule_is_one_line() -> None:
    result = _publish("--dry-run")
    assert result.returncode == 2
    assert result.stderr == (
        "tvpower.publish: error: --schedule is required "
        "(or TVPOWER_SCHEDULE, or schedule in --config)\n"
    )


def test_unknown_rollout_names_are_one_line() -> None:
    result = _publish(
        "--schedule",
        "scenarios/makerspace-potsdam.yaml",
        "--dry-run",
        "--only-clients",
        "machbar-hal",
    )
    assert result.returncode == 2
    assert result.stderr == (
        "tvpower.publish: error: --only-clients: not in "
        "scenarios/makerspace-potsdam.yaml: machbar-hal\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--topic-prefix", "a/#"],
            "--topic-prefix: expected topic levels without '+', '#' or NUL, none "
            "empty, at most 200 characters, got 'a/#'",
        ),
        (["--client-id", "x" * 300], "--client-id: expected 1 to 256 bytes, got 300"),
        (
            ["--now", "2263-01-01T00:00:00Z"],
            "--now: expected an instant from 1970 to 2199, got '2263-01-01T00:00:00Z'",
        ),
    ],
)
def test_bad_identity_and_instants_are_one_line(args: list[str], message: str) -> None:
    result = _publish(
        "--schedule", "scenarios/makerspace-potsdam.yaml", "--dry-run", *args
    )
    assert result.returncode == 2
    assert result.stderr == f"tvpower.publish: error: {message}\n"


def test_listen_takes_an_ipv6_address_in_brackets() -> None:
    from tvpower.publish import _parse_listen

    assert _parse_listen("[::1]:1883") == ("::1", 1883)
    assert _parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)
