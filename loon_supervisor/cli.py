"""The ``loon`` command: parse, call the supervisor, map errors to exit codes.

Exit codes: 0 success; 1 runtime failure (engine, build, a service or the container died);
2 invalid configuration or usage; 130 stopped by SIGINT (Ctrl+C); 143 stopped by SIGTERM.
Bare ``loon`` prints the help and exits 0. Help text is given as one paragraph per option
(rich re-wraps it to the terminal), and flags show no ``<bool>`` metavar.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from loon_supervisor.errors import LoonError, operator_error
from loon_supervisor.verbs.dispatch import run_plain, run_verb

EXIT_CODES = ("Exit codes: 0 success; 1 runtime failure (engine, build, a service or the "
              "container died); 2 invalid configuration or usage; 130 stopped by Ctrl+C "
              "(SIGINT); 143 stopped by SIGTERM.")

app = typer.Typer(
    help="Deploy Loon as one Docker container and write every service's log to "
    "logs/logs_<date>/<service>.log. " + EXIT_CODES,
    add_completion=True, pretty_exceptions_enable=False, rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"loon {version('loon-supervisor')}")
        except PackageNotFoundError:
            typer.echo("loon (not installed; run from a checkout)")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def project(ctx: typer.Context,
            project_dir: Annotated[Path | None, typer.Option(
                "--project-dir", help="The clone to act on (default: LOON_PROJECT_ROOT, else "
                "the nearest directory upwards holding build.py or config.json).")] = None,
            version: Annotated[bool, typer.Option("--version", callback=_version,
                                                  is_eager=True, help="Print the version and "
                                                  "exit.")] = False,
            context: Annotated[str | None, typer.Option(
                "--context", help="Docker context to use (as `docker --context`); overrides "
                "DOCKER_HOST and DOCKER_CONTEXT. See docs/remote-engines.md.")] = None) -> None:
    """Pin the project directory before any verb runs (see loon_supervisor.paths); bare
    `loon` prints the help and exits 0."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    if project_dir is not None:
        from loon_supervisor.paths import use_project_dir

        use_project_dir(project_dir)
    if context is not None:
        from loon_supervisor.engine.endpoint import use_context

        if not context.strip():
            raise _fail("--context needs a context name", "see `docker context ls`, or "
                        "leave --context out for DOCKER_HOST or the current context")
        use_context(context)


def _config(config_file: Path | None) -> Path:
    from loon_supervisor.paths import default_config

    return config_file if config_file is not None else default_config()


def _fail(what: str, fix: str) -> typer.Exit:
    """One sentence on stderr and exit code 2 (usage)."""
    typer.echo(f"error: {what}; {fix}", err=True)
    return typer.Exit(2)


def _name(config_file: Path | None, name: str | None) -> str:
    from loon_supervisor.lifecycle.identity import resolve

    return resolve(config_file, name).name

ConfigOpt = Annotated[Path | None, typer.Option(
    "--config-file", "-c", metavar="PATH",
    help="config.json to read (default: the project's config.json).")]
EnvOpt = Annotated[str, typer.Option("--env-file", metavar="NAME",
                                     help="Name of the env file written to .build-files/.")]


@app.command()
def validate(config_file: ConfigOpt = None, env_file: EnvOpt = ".env") -> None:
    """Validate config.json and write the env file; touches no Docker engine (build.py -e)."""
    from loon_supervisor.verbs import validate as verb

    raise typer.Exit(run_plain(verb.run, verb.ValidateOptions(_config(config_file), env_file)))


VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Show the build and every "
                                          "service's lines live.")]
DetachedOpt = Annotated[bool, typer.Option("--detached", "-d", help="Exit once everything is "
                                           "up; a background logger keeps writing.")]


@app.command()
def up(
    config_file: ConfigOpt = None,
    env_file: EnvOpt = ".env",
    verbose: VerboseOpt = False,
    detached: DetachedOpt = False,
    replace: Annotated[bool, typer.Option("--replace", help="Replace a running deployment: "
                                          "build the new version first while the old one "
                                          "serves, then swap.")] = False,
    only: Annotated[str | None, typer.Option(
        "--only", metavar="SERVICE,...", help="Run only these of the image's services "
        "(run-time service selection; the image needs the org.loon.run-services-env "
        "label).")] = None,
) -> None:
    """Validate, build the image, start the container and follow every service's log."""
    chosen = tuple(s.strip() for s in only.split(",") if s.strip()) if only else None
    if only is not None and not chosen:
        typer.echo("error: --only needs at least one service name, e.g. --only mysql,redis",
                   err=True)
        raise typer.Exit(2)
    from loon_supervisor.verbs import up as verb

    raise typer.Exit(run_verb(verb.run, verb.UpOptions(
        _config(config_file), env_file, verbose=verbose, detached=detached, replace=replace,
        only=chosen)))


@app.command()
def scale(
    spec: Annotated[str, typer.Argument(metavar="celery=N",
                                        help="The Celery worker replicas wanted.")],
    config_file: ConfigOpt = None,
    name: Annotated[str | None, typer.Option(help="Deployment name; default: from the "
                                             "config, else loon.")] = None,
) -> None:
    """Change the number of Celery workers of a swarm deployment (orchestrator swarm)."""
    from loon_supervisor.verbs import scale as verb

    raise typer.Exit(run_verb(verb.run, verb.ScaleOptions(_name(config_file, name), spec)))


@app.command()
def dev(
    config_file: ConfigOpt = None,
    env_file: EnvOpt = ".env",
    verbose: VerboseOpt = False,
    detached: DetachedOpt = False,
) -> None:
    """Run only the backing services (MariaDB, Redis, MinIO where present, DuckDB) on
    127.0.0.1 for a Loon server run on this machine, and write .build-files/dev.env (its
    .env). Needs networkMode host. Stop with Ctrl+C, or `loon down` after -d."""
    from loon_supervisor.verbs import dev as verb

    raise typer.Exit(run_verb(verb.run, verb.DevOptions(_config(config_file), env_file,
                                                        verbose=verbose, detached=detached)))


NameOpt = Annotated[str | None, typer.Option(help="Deployment (container) name; default: from "
                                            "the config, else loon.")]


@app.command()
def down(config_file: ConfigOpt = None, name: NameOpt = None) -> None:
    """Stop and remove this deployment's container and background logger (build.py -D)."""
    from loon_supervisor.verbs import down as verb

    raise typer.Exit(run_verb(verb.run, verb.DownOptions(_name(config_file, name))))


@app.command()
def attach(config_file: ConfigOpt = None, name: NameOpt = None,
           wait: Annotated[bool, typer.Option(
               "--wait", help="Follow in the foreground for a service manager: wait for the "
               "engine and a running container nobody follows, follow it, wait again when it "
               "is gone; a SIGTERM that is not `loon down`'s detaches (the container runs "
               "on). What `loon service install` runs.")] = False) -> None:
    """Follow a running deployment again (after its logger died), continuing each file at the byte where it stopped."""
    from loon_supervisor.verbs import attach as verb

    raise typer.Exit(run_verb(verb.run, verb.AttachOptions(_name(config_file, name), wait)))


@app.command()
def service(
    action: Annotated[str, typer.Argument(metavar="install|uninstall|print",
                                          help="Write (and with systemd enable and start) "
                                          "the unit, remove it, or print it.")],
    config_file: ConfigOpt = None, name: NameOpt = None,
    unit_dir: Annotated[Path | None, typer.Option(
        "--unit-dir", metavar="DIR", help="Where to write the unit (default "
        "/etc/systemd/system; elsewhere it is written only).")] = None,
    no_start: Annotated[bool, typer.Option("--no-start", help="Write the unit but do not "
                                           "enable or start it.")] = False,
) -> None:
    """A follower at boot: a systemd unit running `loon attach --wait` for this deployment (restarted on failure; `loon down` and `loon status` see it). Without systemd it prints how to start the same command at boot."""
    if action not in ("install", "uninstall", "print"):
        raise _fail(f"unknown service action {action!r}", "use install, uninstall or print")
    from loon_supervisor.verbs import service as verb

    raise typer.Exit(run_plain(verb.run, verb.ServiceOptions(
        action, _name(config_file, name), unit_dir=unit_dir, start=not no_start)))


@app.command()
def status(config_file: ConfigOpt = None, name: NameOpt = None) -> None:
    """Show the deployment, each service's state and log file, and the background logger. Exit code: 0 healthy; 1 running but unhealthy (a service not RUNNING, or a detached deployment without its logger); 3 not running."""
    from loon_supervisor.verbs import status as verb

    raise typer.Exit(run_verb(verb.run, verb.StatusOptions(_name(config_file, name),
                                                          config_file)))


@app.command()
def doctor(config_file: ConfigOpt = None, env_file: EnvOpt = ".env",
           json_out: Annotated[bool, typer.Option("--json", help="Machine-readable verdicts.")]
           = False) -> None:
    """Check a running deployment end to end (docs/real-loon.md). Exit 0 when no check
    fails, 1 when one does, 2 for a bad config."""
    from loon_supervisor.verbs import doctor as verb

    raise typer.Exit(run_verb(verb.run, verb.DoctorOptions(_config(config_file), env_file,
                                                          json_out)))


@app.command()
def backup(config_file: ConfigOpt = None, env_file: EnvOpt = ".env") -> None:
    """Back up the running deployment (database dump, uploaded data, env file, config, with
    a checksummed manifest) into backups/<UTC time>/ (docs/upgrades.md)."""
    from loon_supervisor.verbs import backup as verb

    raise typer.Exit(run_verb(verb.run, verb.BackupOptions(_config(config_file), env_file)))


@app.command()
def backups() -> None:
    """List the backups in backups/, oldest first."""
    from loon_supervisor.verbs import backups as verb

    raise typer.Exit(run_plain(verb.run, verb.BackupsOptions()))


@app.command()
def restore(backup: Annotated[str, typer.Argument(help="A backup as `loon backups` lists it, "
                                                  "latest, or a backup directory.")],
            config_file: ConfigOpt = None, env_file: EnvOpt = ".env") -> None:
    """Verify a backup's checksums, stop the deployment, put its database and data back and
    start it again; a damaged backup changes nothing (docs/upgrades.md)."""
    from loon_supervisor.verbs import restore as verb

    raise typer.Exit(run_verb(verb.run, verb.RestoreOptions(_config(config_file), env_file,
                                                           backup)))


@app.command()
def rollback(version: Annotated[str | None, typer.Argument(
                 help="The version to go back to, as `loon versions` lists it (or the end of "
                 "its tag); default: the previous deployed version.")] = None,
             config_file: ConfigOpt = None, env_file: EnvOpt = ".env") -> None:
    """Go back to an earlier version: stop the current one (its logs collected), restore the
    database from the backup taken before the swap when the schema changed, start the
    earlier version and check its health (docs/upgrades.md)."""
    from loon_supervisor.verbs import rollback as verb

    raise typer.Exit(run_verb(verb.run, verb.RollbackOptions(_config(config_file), env_file,
                                                            version)))


@app.command()
def logs(
    services: Annotated[list[str] | None, typer.Argument(help="Services to show (default: "
                                                          "all).")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")]
    = False,
    lines: Annotated[str | None, typer.Option("--lines", "-n", "--tail", metavar="N|all",
                                              help="Lines of history per file (default 20), "
                                              "or all.")] = None,
    timestamps: Annotated[bool, typer.Option("--timestamps", "-t", help="With -f: stamp each "
                                             "new line with the time it arrived.")] = False,
    since: Annotated[str | None, typer.Option(help="Not supported: the files hold no "
                                              "per-line times (use --tail).")] = None,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colours.")] = False,
    no_log_prefix: Annotated[bool, typer.Option("--no-log-prefix", help="Print lines "
                                                "without the `service | ` prefix.")] = False,
    config_file: ConfigOpt = None,
    name: NameOpt = None,
) -> None:
    """Print the deployment's current session's logs (else the newest session with service logs) with coloured `service | ` prefixes."""
    from loon_supervisor.lifecycle.identity import resolve

    count: int | None = 20
    if lines is not None:
        if lines.strip().lower() == "all":
            count = None
        elif lines.strip().isdigit():
            count = int(lines)
        else:
            raise _fail(f"--lines/--tail {lines!r} is not a number of lines",
                        "give 0 or more, or all")
    if since is not None:
        raise _fail("--since needs per-line times, which the session files do not record",
                    "use --tail N, or open the session directory under logs/")
    if timestamps and not follow:
        raise _fail("-t/--timestamps needs -f: only followed lines have a known arrival time",
                    "add -f")
    from loon_supervisor.verbs import logs as verb

    session = resolve(config_file, name).session()
    raise typer.Exit(run_verb(verb.run, verb.LogsOptions(
        services or [], follow, count, session, colour=False if no_color else None,
        prefix=not no_log_prefix, timestamps=timestamps)))


@app.command(name="config")
def config_cmd(config_file: ConfigOpt = None) -> None:
    """Print the effective configuration (file plus LOON_* overrides, secrets masked); writes nothing."""
    from loon_supervisor.verbs import config as verb

    raise typer.Exit(run_plain(verb.run, verb.ConfigOptions(_config(config_file))))


@app.command()
def ps(config_file: ConfigOpt = None, name: NameOpt = None,
       all_deployments: Annotated[bool, typer.Option("--all", "-a", help="Every deployment's "
                                                     "container.")] = False) -> None:
    """List the deployment's container with its state and ports."""
    from loon_supervisor.verbs import ps as verb

    raise typer.Exit(run_verb(verb.run, verb.PsOptions(
        None if all_deployments else _name(config_file, name))))


@app.command()
def versions(config_file: ConfigOpt = None, name: NameOpt = None) -> None:
    """List the deployment's versions (image tags): revision, built, deployed, outcome."""
    from loon_supervisor.lifecycle.identity import resolve
    from loon_supervisor.verbs import versions as verb

    raise typer.Exit(run_verb(verb.run, verb.VersionsOptions(resolve(_config(config_file),
                                                                     name))))


@app.command()
def restart(services: Annotated[list[str] | None, typer.Argument(
                help="Services to restart inside the container (default: the whole "
                "container).")] = None,
            config_file: ConfigOpt = None, name: NameOpt = None) -> None:
    """Restart the deployment's container, or single services in it."""
    from loon_supervisor.verbs import restart as verb

    raise typer.Exit(run_verb(verb.run, verb.RestartOptions(_name(config_file, name),
                                                           services or [])))


@app.command(name="exec", context_settings={"allow_interspersed_args": False,
                                            "ignore_unknown_options": True})
def exec_cmd(service: Annotated[str, typer.Argument(help="Service whose environment to use.")],
             command: Annotated[list[str], typer.Argument(help="Command and its arguments.")],
             config_file: ConfigOpt = None, name: NameOpt = None) -> None:
    """Run a command in the running container, in a service's environment; exits with its code."""
    from loon_supervisor.verbs import exec as verb

    raise typer.Exit(run_verb(verb.run, verb.ExecOptions(_name(config_file, name), service,
                                                        command)))


@app.command()
def schema(output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
           force: Annotated[bool, typer.Option("--force", help="Replace -o's file even when "
                                               "it is not a schema.")] = False) -> None:
    """Print (or write) the JSON Schema of config.json, for editor completion; -o replaces
    only a missing file or an earlier schema unless --force."""
    from loon_supervisor.verbs import schema as verb

    raise typer.Exit(run_plain(verb.run, verb.SchemaOptions(output, force)))


@app.command(name="deploy-server", add_help_option=False, context_settings={
    "allow_extra_args": True, "ignore_unknown_options": True})
def deploy_server(ctx: typer.Context) -> None:
    """Serve the authenticated redeploy webhook (POST /deploy); options: loon deploy-server
    --help. See docs/deploy-server.md."""
    from loon_supervisor.deploy.options import parse_options
    from loon_supervisor.verbs import deploy_server as verb

    server = parse_options(ctx.args, prog="loon deploy-server")
    raise typer.Exit(run_plain(verb.run, verb.DeployServerOptions(server)))


@app.command(name="dashboard", add_help_option=False, context_settings={
    "allow_extra_args": True, "ignore_unknown_options": True})
def dashboard(ctx: typer.Context) -> None:
    """Serve the operator's web dashboard alone (no webhook; DASHBOARD_PASSWORD in the
    secrets file); the deploy server's options: loon dashboard --help. See docs/dashboard.md."""
    from loon_supervisor.deploy.options import parse_options
    from loon_supervisor.verbs import deploy_server as verb

    server = parse_options(ctx.args, prog="loon dashboard")
    raise typer.Exit(run_plain(verb.run, verb.DeployServerOptions(server, webhooks=False)))


@app.command(name="config-reference")
def config_reference(
    write: Annotated[Path | None, typer.Option(help="Update the block in this README instead "
                                               "of printing.")] = None,
) -> None:
    """Print the configuration reference (Markdown) that the README embeds."""
    from loon_supervisor.verbs import config_reference as verb

    raise typer.Exit(run_plain(verb.run, verb.ConfigReferenceOptions(write)))


@app.command(hidden=True, name="_logger")
def logger(name: str) -> None:
    """Background logger body; started by `up -d` and `attach`."""
    from loon_supervisor.verbs import logger as verb

    raise typer.Exit(run_verb(verb.run, verb.LoggerOptions(name)))


def main() -> None:
    try:
        app(prog_name="loon")
    except (LoonError, OSError) as exc:
        err = operator_error(exc)
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
