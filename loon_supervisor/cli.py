"""The ``loon`` command: parse, call the supervisor, map errors to exit codes.

Exit codes: 0 success; 1 runtime failure (engine, build, a service or the container died);
2 invalid configuration or usage; 130 stopped by SIGINT (Ctrl+C); 143 stopped by SIGTERM.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from loon_supervisor import commands
from loon_supervisor.errors import LoonError

EXIT_CODES = ("Exit codes: 0 success; 1 runtime failure (engine, build, a service or the "
              "container died); 2 invalid configuration or usage; 130 stopped by Ctrl+C "
              "(SIGINT); 143 stopped by SIGTERM.")

app = typer.Typer(
    help="Deploy Loon as one Docker container and write every service's log to "
    "logs/logs_<date>/<service>.log. " + EXIT_CODES,
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)

ConfigOpt = Annotated[Path, typer.Option("--config-file", "-c",
                                         help="config.json to read (see README).")]
EnvOpt = Annotated[str, typer.Option("--env-file",
                                     help="Name of the env file written to .build-files/.")]


@app.command()
def validate(config_file: ConfigOpt = Path("config.json"), env_file: EnvOpt = ".env") -> None:
    """Validate config.json and write the env file; touches no Docker engine (build.py -e)."""
    raise typer.Exit(commands.validate(config_file, env_file))


@app.command()
def up(
    config_file: ConfigOpt = Path("config.json"),
    env_file: EnvOpt = ".env",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the build and every "
                                          "service's lines live.")] = False,
    detached: Annotated[bool, typer.Option("--detached", "-d", help="Exit once everything is "
                                           "up; a background logger keeps writing.")] = False,
    replace: Annotated[bool, typer.Option("--replace", help="Remove an existing container of "
                                          "this deployment first.")] = False,
) -> None:
    """Validate, build the image, start the container and follow every service's log."""
    raise typer.Exit(commands.up(config_file, env_file, verbose, detached, replace))


@app.command()
def down(config_file: ConfigOpt = Path("config.json"),
         name: Annotated[str | None, typer.Option(help="Deployment (container) name; "
                                                  "default: from the config, else loon.")]
         = None) -> None:
    """Stop and remove this deployment's container and background logger (build.py -D)."""
    raise typer.Exit(commands.down(config_file, name))


NameOpt = Annotated[str | None, typer.Option(help="Deployment (container) name; default: from "
                                            "the config, else loon.")]


@app.command()
def attach(config_file: ConfigOpt = Path("config.json"), name: NameOpt = None) -> None:
    """Follow a running deployment again (after its logger died), continuing each file at
    the byte where it stopped."""
    from rich.console import Console

    from loon_supervisor.detach import attach as do_attach
    from loon_supervisor.down import deployment_name
    from loon_supervisor.run import run_sync

    raise typer.Exit(run_sync(do_attach, name or deployment_name(config_file),
                              Console(soft_wrap=True)))


@app.command()
def status(config_file: ConfigOpt = Path("config.json"), name: NameOpt = None) -> None:
    """Show the deployment, each service's state and log file, and the background logger.
    Exit code: 0 healthy; 1 running but unhealthy (a service not RUNNING, or a detached
    deployment without its logger); 3 not running."""
    from loon_supervisor.down import deployment_name
    from loon_supervisor.run import run_sync
    from loon_supervisor.status import show_status

    raise typer.Exit(run_sync(show_status, name or deployment_name(config_file)))


@app.command()
def doctor(config_file: ConfigOpt = Path("config.json"), env_file: EnvOpt = ".env",
           json_out: Annotated[bool, typer.Option("--json", help="Machine-readable verdicts.")]
           = False) -> None:
    """Check a running deployment end to end (docs/real-loon.md). Exit 0 when no check
    fails, 1 when one does, 2 for a bad config."""
    from loon_supervisor.doctor import run_doctor
    from loon_supervisor.run import run_sync

    raise typer.Exit(run_sync(run_doctor, config_file, env_file, json_out))


@app.command()
def logs(
    services: Annotated[list[str] | None, typer.Argument(help="Services to show (default: "
                                                          "all).")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")]
    = False,
    lines: Annotated[int, typer.Option("--lines", "-n", help="Lines of history per file.")]
    = 20,
) -> None:
    """Print the latest session's logs with coloured `service | ` prefixes."""
    from loon_supervisor.logs.reader import show_logs
    from loon_supervisor.run import run_sync

    raise typer.Exit(run_sync(show_logs, services or [], follow, lines))


@app.command()
def schema(output: Annotated[Path | None, typer.Option("--output", "-o")] = None) -> None:
    """Print (or write) the JSON Schema of config.json, for editor completion."""
    from loon_supervisor.config.model import LoonConfig

    text = json.dumps(LoonConfig.model_json_schema(), indent=2) + "\n"
    if output:
        output.write_text(text)
    else:
        typer.echo(text, nl=False)


@app.command(name="deploy-server")
def deploy_server(
    env_file: Annotated[Path | None, typer.Option(
        "--env-file", help="Secrets file with DEPLOYMENT_AUTH_TOKEN (default: "
        ".build-files/.env.secrets).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5421,
    config_file: Annotated[Path | None, typer.Option(
        "--config-file", "-c", help="config.json each deploy uses.")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate: serve HTTPS.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key for --tls-cert.")]
    = None,
    git_branch: Annotated[str | None, typer.Option(
        help="Before each deploy, git pull --ff-only this branch.")] = None,
    webhook_secret_env: Annotated[str | None, typer.Option(
        help="Name of the secrets-file variable holding a GitHub-style HMAC secret "
        "(default: DEPLOYMENT_WEBHOOK_SECRET when set).")] = None,
) -> None:
    """Serve the authenticated redeploy webhook (POST /deploy) on port 5421.
    See docs/deploy-server.md."""
    from loon_supervisor.deploy import run_deploy_server

    raise typer.Exit(run_deploy_server(env_file=env_file, host=host, port=port,
                                       config_file=config_file, tls_cert=tls_cert,
                                       tls_key=tls_key, git_branch=git_branch,
                                       webhook_secret_env=webhook_secret_env))


@app.command(name="config-reference")
def config_reference(
    write: Annotated[Path | None, typer.Option(help="Update the block in this README instead "
                                               "of printing.")] = None,
) -> None:
    """Print the configuration reference (Markdown) that the README embeds."""
    from loon_supervisor.config.reference import reference_markdown, update_readme

    if write is None:
        typer.echo(reference_markdown())
    else:
        typer.echo(f"{write}: {'updated' if update_readme(write) else 'already current'}")


@app.command(hidden=True, name="_logger")
def logger(name: str) -> None:
    """Background logger body; started by `up -d` and `attach`."""
    from loon_supervisor.detach import logger_main
    from loon_supervisor.run import run_sync

    raise typer.Exit(run_sync(logger_main, name))


def main() -> None:
    try:
        app()
    except LoonError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
