"""Start-up checks (the server refuses to start) and the credential checks themselves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from loon_supervisor.deploy import load_settings
from loon_supervisor.deploy.auth import Verdict, check_signature, check_token, signature
from loon_supervisor.errors import ConfigError, Problem
from tests.deploy.support import SCRIPT, new_token, self_signed_cert, write_secrets


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.json"
    path.write_text("{}")
    return path


def refused(env_file: Path, **kwargs) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        load_settings(env_file, **kwargs)
    assert info.value.exit_code == 2
    return str(info.value)


def test_missing_secrets_file(tmp_path: Path, config: Path) -> None:
    msg = refused(tmp_path / ".env.secrets", config_file=config)
    assert "secrets file not found" in msg and "DEPLOYMENT_AUTH_TOKEN" in msg


@pytest.mark.parametrize("content", ["", "OTHER=1\n", "DEPLOYMENT_AUTH_TOKEN=\n",
                                     "DEPLOYMENT_AUTH_TOKEN\n", "# DEPLOYMENT_AUTH_TOKEN=x\n"])
def test_missing_or_empty_token(tmp_path: Path, config: Path, content: str) -> None:
    env = tmp_path / ".env.secrets"
    env.write_text(content)
    assert "DEPLOYMENT_AUTH_TOKEN: is missing or empty" in refused(env, config_file=config)


def test_short_token_refused_without_showing_it(tmp_path: Path, config: Path) -> None:
    short = "s3cr3t-" + "k" * 24  # 31 characters
    env = write_secrets(tmp_path / ".env.secrets", short)
    msg = refused(env, config_file=config)
    assert "shorter than 32 characters" in msg
    assert short not in msg and "s3cr3t" not in msg


@pytest.mark.parametrize("weak", ["a" * 32, "changeme-changeme-changeme-changeme",
                                  "0123456789abcdef0123456789abcdef", "Xk9#" * 10,
                                  "Password1Password1Password1Password1"])
def test_guessable_tokens_are_refused(tmp_path: Path, config: Path, weak: str) -> None:
    message = refused(write_secrets(tmp_path / "s", weak), config_file=config)
    assert "DEPLOYMENT_AUTH_TOKEN: looks guessable" in message
    assert "openssl rand -hex 32" in message and weak not in message


def test_guessable_webhook_secrets_are_refused(tmp_path: Path, config: Path) -> None:
    for weak in ("0123456789abcdef", "changeme-changeme-changeme", "w" * 40):
        env = write_secrets(tmp_path / "s", new_token(), DEPLOYMENT_WEBHOOK_SECRET=weak)
        assert "DEPLOYMENT_WEBHOOK_SECRET: looks guessable" in refused(env, config_file=config)


def test_generated_secrets_pass(tmp_path: Path, config: Path) -> None:
    import secrets as rnd

    for _ in range(200):  # generator output always clears the bar, with a wide margin
        token, hook = rnd.token_hex(32), rnd.token_urlsafe(32)
        load_settings(write_secrets(tmp_path / "s", token, DEPLOYMENT_WEBHOOK_SECRET=hook),
                      config_file=config)


def test_generated_token_is_accepted(tmp_path: Path, config: Path) -> None:
    token = new_token()
    settings = load_settings(write_secrets(tmp_path / "s", token), config_file=config)
    assert settings.token.get_secret_value() == token
    assert token not in repr(settings) and settings.webhook_secret is None
    assert settings.port == 5421 and settings.scheme == "http"


def test_token_with_spaces_refused(tmp_path: Path, config: Path) -> None:
    env = write_secrets(tmp_path / "s", "'" + "word " * 8 + "'")
    assert "contains spaces" in refused(env, config_file=config)


def test_other_problems_reported_together(tmp_path: Path) -> None:
    env = write_secrets(tmp_path / "s", new_token())
    msg = refused(env, config_file=tmp_path / "missing.json", tls_cert=tmp_path / "c.pem",
                  git_branch="--upload-pack=evil", repo_dir=tmp_path, port=70000)
    assert "config file not found" in msg
    assert "only one of them was given" in msg
    assert "--git-branch: is not a plain branch name" in msg
    assert "is not a git working copy" in msg
    assert "70000 is not a TCP port" in msg


def test_tls_files_checked(tmp_path: Path, config: Path) -> None:
    env = write_secrets(tmp_path / "s", new_token())
    cert, key = self_signed_cert(tmp_path / "tls")
    assert "cannot be loaded" in refused(env, config_file=config, tls_cert=key, tls_key=cert)
    ok = load_settings(env, config_file=config, tls_cert=cert, tls_key=key)
    assert ok.scheme == "https"


def test_webhook_secret(tmp_path: Path, config: Path) -> None:
    token = new_token()
    env = write_secrets(tmp_path / "s", token)
    msg = refused(env, config_file=config, webhook_secret_env="HOOK_SECRET")
    assert "HOOK_SECRET: is missing or empty" in msg
    hook_x, hook_y = new_token(), new_token()
    env = write_secrets(tmp_path / "s", token, HOOK_SECRET=hook_x,
                        DEPLOYMENT_WEBHOOK_SECRET=hook_y)
    assert load_settings(env, config_file=config, webhook_secret_env="HOOK_SECRET"
                         ).webhook_secret.get_secret_value() == hook_x  # type: ignore[union-attr]
    assert load_settings(env, config_file=config).webhook_secret.get_secret_value() == hook_y  # type: ignore[union-attr]


def test_secrets_file_at_0644_is_refused(tmp_path: Path, config: Path) -> None:
    token = new_token()
    env = write_secrets(tmp_path / "s", token)
    env.chmod(0o644)
    message = refused(env, config_file=config, host="127.0.0.1")
    assert "mode 644" in message and "chmod 600" in message and token not in message
    env.chmod(0o640)
    assert "mode 640" in refused(env, config_file=config, host="127.0.0.1")


def test_plain_http_off_loopback_needs_the_proxy_flag(tmp_path: Path, config: Path) -> None:
    env = write_secrets(tmp_path / "s", new_token())
    assert "--behind-tls-proxy" in refused(env, config_file=config, host="0.0.0.0")
    assert load_settings(env, config_file=config, host="0.0.0.0",
                         behind_tls_proxy=True).host == "0.0.0.0"
    assert load_settings(env, config_file=config).host == "127.0.0.1"  # the default


def test_token_too_long_for_a_header_is_refused(tmp_path: Path, config: Path) -> None:
    token = "a" * 9000
    message = refused(write_secrets(tmp_path / "s", token), config_file=config)
    assert "longer than 4096 characters" in message and "a" * 40 not in message


def test_hash_in_token_names_the_comment_syntax(tmp_path: Path, config: Path) -> None:
    env = write_secrets(tmp_path / "s", "abcdefgh #" + "x" * 40)
    message = refused(env, config_file=config)
    assert "comment" in message and "shorter" not in message


def test_token_and_webhook_secret_must_differ(tmp_path: Path, config: Path) -> None:
    token = new_token()
    env = write_secrets(tmp_path / "s", token, DEPLOYMENT_WEBHOOK_SECRET=token)
    message = refused(env, config_file=config)
    assert "same value" in message and token not in message


def test_options_parse_for_every_front_end() -> None:
    from loon_supervisor.deploy.options import parse_options

    opts = parse_options(["--deploy-timeout", "5", "--allow-from", "10.0.0.0/8",
                          "--allow-from", "::1", "--behind-tls-proxy"], prog="t")
    assert opts.deploy_timeout == 5.0 and opts.allow_from == ["10.0.0.0/8", "::1"]
    assert opts.behind_tls_proxy and opts.header_timeout == 10.0
    assert parse_options([], prog="t").allow_from == []


def test_check_token() -> None:
    token = SecretStr("t" * 40)
    assert check_token(None, token) is Verdict.MISSING
    assert check_token("", token) is Verdict.MISSING
    assert check_token("t" * 40, token) is Verdict.OK
    assert check_token("Bearer " + "t" * 40, token) is Verdict.OK
    assert check_token("BEARER " + "t" * 40, token) is Verdict.OK
    assert check_token("Basic " + "t" * 40, token) is Verdict.INVALID
    assert check_token("t" * 39, token) is Verdict.INVALID
    assert check_token("Bearer", token) is Verdict.INVALID
    assert check_token("\udcff" * 3, token) is Verdict.INVALID  # undecodable header bytes


def test_check_signature() -> None:
    secret = SecretStr("It's a Secret to Everybody")
    body = b"Hello, World!"
    # GitHub's documented example (docs: "Validating webhook deliveries").
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert signature(body, secret) == expected
    assert check_signature(expected, body, secret) is Verdict.OK
    assert check_signature(expected.upper().replace("SHA256", "sha256"), body, secret) \
        is Verdict.OK
    assert check_signature(None, body, secret) is Verdict.MISSING
    assert check_signature(expected[:-1] + "0", body, secret) is Verdict.INVALID
    assert check_signature(expected, body + b"!", secret) is Verdict.INVALID
    assert check_signature(expected[7:], body, secret) is Verdict.INVALID


def _run_script(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LOON_PROJECT_ROOT=str(tmp_path / "project"))
    return subprocess.run([sys.executable, str(SCRIPT), "--host", "127.0.0.1", "--port", "0",
                           *args], capture_output=True, text=True, timeout=60, env=env,
                          cwd=tmp_path)


def test_script_refuses_to_start_without_secrets_file(tmp_path: Path, config: Path) -> None:
    result = _run_script(tmp_path, "--env-file", str(tmp_path / "nope"),
                         "--config-file", str(config))
    assert result.returncode == 2
    assert "refusing to start" in result.stderr and "secrets file not found" in result.stderr
    assert "listening" not in result.stderr


def test_script_refuses_to_start_without_token(tmp_path: Path, config: Path) -> None:
    env = tmp_path / ".env.secrets"
    env.write_text("SOMETHING_ELSE=1\n")
    result = _run_script(tmp_path, "--env-file", str(env), "--config-file", str(config))
    assert result.returncode == 2
    assert "DEPLOYMENT_AUTH_TOKEN: is missing or empty" in result.stderr


def test_script_refuses_short_token_and_never_prints_it(tmp_path: Path, config: Path) -> None:
    short = "0123456789abcdefSHORT"
    env = write_secrets(tmp_path / ".env.secrets", short)
    result = _run_script(tmp_path, "--env-file", str(env), "--config-file", str(config))
    assert result.returncode == 2
    assert "shorter than 32 characters" in result.stderr
    assert short not in result.stdout + result.stderr


def test_script_default_env_file_is_next_to_it(tmp_path: Path, config: Path) -> None:
    result = _run_script(tmp_path, "--config-file", str(config), "--help")
    assert result.returncode == 0 and "--env-file" in result.stdout
    assert str(SCRIPT.parent / ".env.secrets").replace("/", "") in \
        result.stdout.replace("\n", "").replace(" ", "").replace("/", "")


def _sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as fh:
        fh.truncate(size)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("kind", ["huge", "dev-zero", "fifo", "folder"])
def test_secrets_file_bounded(tmp_path: Path, config: Path, kind: str) -> None:
    """Issue 29: the secrets file is read like config.json, at most 1 MiB and never from a
    device or a pipe. Before, a 2 GiB file was read whole (under the 1 GiB address cap here:
    MemoryError); /dev/zero, a FIFO nobody writes to and a folder were refused by the
    is_file check, which this keeps. One sentence naming the file, exit 2, before binding."""
    if kind == "huge":
        env = _sparse(tmp_path / ".env.secrets", 2 << 30)
    elif kind == "dev-zero":
        env = Path("/dev/zero")
    elif kind == "fifo":
        env = tmp_path / ".env.secrets"
        os.mkfifo(env, 0o600)
    else:
        env = tmp_path / "secrets.d"
        env.mkdir()
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--host", "127.0.0.1", "--port", "0", "--env-file",
         str(env), "--config-file", str(config)], capture_output=True, text=True, timeout=60,
        cwd=tmp_path, env=dict(os.environ, LOON_PROJECT_ROOT=str(tmp_path / "project")),
        preexec_fn=lambda: __import__("resource").setrlimit(
            __import__("resource").RLIMIT_AS, (1 << 30, 1 << 30)))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "listening" not in result.stderr
    assert "refusing to start" in result.stderr and str(env) in result.stderr
    want = "more than the 1.0 MiB" if kind == "huge" else "is not a regular file"
    assert want in result.stderr


def test_secrets_file_just_under_the_limit_is_read(tmp_path: Path, config: Path) -> None:
    """The bound is the file's size, not its variables: a token after 1 MiB less a line of
    comments is still found."""
    token = new_token()
    env = tmp_path / ".env.secrets"
    padding = "#" + "x" * 1023 + "\n"
    body = f"DEPLOYMENT_AUTH_TOKEN={token}\n"
    env.write_text(padding * ((1024 * 1024 - len(body)) // len(padding)) + body)
    env.chmod(0o600)
    assert env.stat().st_size <= 1024 * 1024
    settings = load_settings(env, config_file=config)
    assert settings.token.get_secret_value() == token


def test_secrets_file_swapped_for_a_fifo_does_not_hang(tmp_path: Path, config: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the is_file check and the read the file becomes a FIFO nobody writes to:
    the read gives up after the pipe's idle limit with a sentence instead of blocking."""
    from loon_supervisor import bounded
    from loon_supervisor.deploy import settings as settings_module

    monkeypatch.setattr(bounded, "PIPE_IDLE", 0.2)
    env = tmp_path / ".env.secrets"
    os.mkfifo(env, 0o600)
    monkeypatch.setattr(Path, "is_file", lambda self: True)
    problems: list[Problem] = []
    values, text = settings_module._read_secrets(env, problems)
    assert values == {} and text == ""
    assert len(problems) == 1 and "sent no data" in problems[0].message


def test_script_run_from_outside_the_project_finds_it(tmp_path_factory: pytest.TempPathFactory,
                                                      config: Path) -> None:
    """A service manager starts .build-files/deploy-server.py from / or a home folder, with no
    LOON_PROJECT_ROOT: the project is the script's own, not a NoProjectError traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOON_")}
    nowhere = tmp_path_factory.mktemp("nowhere")  # not under config's folder (a project)
    result = subprocess.run([sys.executable, str(SCRIPT), "--host", "127.0.0.1", "--port", "0",
                             "--env-file", "/dev/zero", "--config-file", str(config)],
                            capture_output=True, text=True, timeout=60, env=env, cwd=nowhere)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "/dev/zero: is not a regular file" in result.stderr
    assert "not inside a loon-supervisor project" not in result.stderr


def test_server_outside_any_project_says_so(tmp_path_factory: pytest.TempPathFactory,
                                            config: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """`loon deploy-server`'s own entry with no project around: one sentence, exit 2."""
    from loon_supervisor.deploy import server
    from loon_supervisor.deploy.options import ServerOptions

    async def never_serve(*_: object) -> None:  # a wrong pass returns 0 at once, not hangs
        return None

    monkeypatch.setattr(server, "serve", never_serve)
    nowhere = tmp_path_factory.mktemp("nowhere")  # not under tmp_path, whose config.json
    # would make it a project
    monkeypatch.delenv("LOON_PROJECT_ROOT", raising=False)
    monkeypatch.chdir(nowhere)
    env = write_secrets(nowhere / ".env.secrets", new_token())
    assert server.run_deploy_server(ServerOptions(env_file=env, config_file=config,
                                                  port=0)) == 2
    err = capsys.readouterr().err
    assert "refusing to start" in err and "not inside a loon-supervisor project" in err


def test_the_typed_overrides_name_every_server_option() -> None:
    """load_settings' keyword overrides are typed by ServerOverrides: it must name every
    ServerOptions field but env_file (the first argument), plus the older logs_root."""
    from loon_supervisor.deploy.options import ServerOptions, ServerOverrides

    assert set(ServerOverrides.__annotations__) == \
        (ServerOptions.names() - {"env_file"}) | {"logs_root"}
