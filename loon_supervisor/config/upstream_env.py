"""``build.py -o``: upstream's environment overrides, read as upstream reads them.

Upstream's build.py (``overwrite_config``) flattens config.json's keys with ``_`` and looks
each up in the environment in capitals: ``MYSQLSETTINGS_DATABASEPASSWORD`` replaces
``mySqlSettings.databasePassword``, ``true``/``false`` become booleans, digits numbers. It
then writes the merged config, secrets included, to ``<config>.temp`` beside the original.

Here each such variable becomes the ``LOON_<SECTION>__<FIELD>`` override the tool already
reads (:mod:`loon_supervisor.config.overrides`: typed per field, every bad value named), so
nothing is written but the env file. Every field of the model is accepted, not only the keys
the file has (a missing optional key can be set too). Names are printed, never values
(upstream prints both).
"""

from __future__ import annotations

from collections.abc import Mapping

from loon_supervisor.config.envnames import ENV_PREFIX
from loon_supervisor.errors import ConfigError, Problem


def _upstream_names() -> dict[str, tuple[str, str]]:
    """``SECTION_FIELD`` in capitals -> (section, field) as the model spells them."""
    from loon_supervisor.config.overrides import SECTIONS, section_model

    out: dict[str, tuple[str, str]] = {}
    for real in SECTIONS.values():
        model = section_model(real)
        assert model is not None
        for name in model.model_fields:
            out[f"{real}_{name}".upper()] = (real, name)
    return out


def upstream_overrides(environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The ``LOON_*`` variables for the upstream names set in ``environ``, and the lines to
    print (which names were taken for which setting, or that there were none).

    :raises ConfigError: when a name's ``LOON_*`` twin is set to another value.
    """
    mapped: dict[str, str] = {}
    said: list[str] = []
    problems: list[Problem] = []
    for upstream, (section, field) in sorted(_upstream_names().items()):
        if upstream not in environ:
            continue
        ours = f"{ENV_PREFIX}{section.upper()}__{field.upper()}"
        twin = next((k for k in environ if k.upper() == ours), None)
        if twin is not None and environ[twin] != environ[upstream]:
            problems.append(Problem(upstream, f"sets {section}.{field} like {twin}, with "
                                    "another value", "unset one of them"))
            continue
        mapped[ours] = environ[upstream]
        said.append(f"-o: {upstream} overrides {section}.{field}")
    if problems:
        raise ConfigError(problems, "the environment (-o)")
    if not said:
        said.append("-o: no variables to overwrite (upstream's names are SECTION_FIELD in "
                    "capitals, e.g. MYSQLSETTINGS_DATABASEPASSWORD)")
    return mapped, said
