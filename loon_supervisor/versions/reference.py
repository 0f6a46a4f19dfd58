"""A version named by the deploy webhook: only a tag (``v1.43``) or a full reference
within the one repository the configuration allows, never an arbitrary image.

The deploy server deploys the result by running ``loon up -d --replace`` with
``LOON_DEPLOYMENTSETTINGS__IMAGE=<the reference>`` in the child's environment (an ordinary
config override, so the pull, the contract check and versions work as for a configured
``image``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from loon_supervisor.config.formats import check_image_reference
from loon_supervisor.config.load import load_config
from loon_supervisor.config.model import DeploymentSettings
from loon_supervisor.errors import LoonError
from loon_supervisor.versions.naming import split_reference

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class NotAllowed(ValueError):
    """The named version is refused; ``str()`` is one sentence for the webhook's caller."""


def allowed_repository(settings: DeploymentSettings) -> str | None:
    """``webhookRepository``, else the repository of ``image``; None: naming is off."""
    if settings.webhookRepository:
        return split_reference(settings.webhookRepository)[0]
    if settings.image:
        return split_reference(settings.image)[0]
    return None


def webhook_version(requested: str, settings: DeploymentSettings) -> str:
    """The full reference to deploy for ``requested`` (a tag or a full reference).

    :raises NotAllowed: naming is not configured, the text is no valid tag or reference, or
        the reference is outside the allowed repository.
    """
    repo = allowed_repository(settings)
    if repo is None:
        raise NotAllowed("this deployment does not accept a version from the webhook: set "
                         "deploymentSettings.image or deploymentSettings.webhookRepository")
    text = requested.strip()
    if _TAG.match(text):
        return f"{repo}:{text}"
    if "@" in text:
        raise NotAllowed(f"'{text[:200]}' names a digest; name a tag of {repo} instead")
    try:
        check_image_reference(text)
    except ValueError:
        raise NotAllowed(f"'{text[:200]}' is neither a tag nor an image reference; name a "
                         f"tag of {repo}, e.g. v1.43") from None
    named_repo, tag = split_reference(text)
    if named_repo != repo:
        raise NotAllowed(f"'{text}' is not in the allowed repository {repo}; name a tag of "
                         f"{repo} (deploymentSettings.webhookRepository)")
    if ":" not in text.rsplit("/", 1)[-1]:
        raise NotAllowed(f"'{text}' names no tag; name one, e.g. {repo}:v1.43")
    return f"{repo}:{tag}"


# The deploy server hands an accepted version to its ``loon up`` child in this variable.
CHILD_ENV = "LOON_DEPLOYMENTSETTINGS__IMAGE"


def requested_version(payload: dict[str, Any], config_file: Path) -> str | None:
    """The version a deploy request's JSON body names in its ``image`` field, as the full
    reference to deploy (see :func:`webhook_version`); None when it names none. The deploy
    server passes it to its ``loon up -d --replace`` child as ``{CHILD_ENV: reference}``.

    :raises NotAllowed: ``image`` is not a string, the configuration cannot be read, or
        :func:`webhook_version` refuses it.
    """
    value = payload.get("image")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise NotAllowed('"image" must be a tag or an image reference as a string, e.g. '
                         '"v1.43"')
    try:
        settings = load_config(config_file).deploymentSettings
    except LoonError as exc:
        raise NotAllowed(f"the configuration cannot be read to check \"image\": "
                         f"{str(exc).splitlines()[0]}") from None
    return webhook_version(value, settings)
