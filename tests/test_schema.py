import json

from loon_supervisor.config.model import LoonConfig
from tests.conftest import ROOT


def test_committed_schema_matches_the_model() -> None:
    committed = json.loads((ROOT / "config.schema.json").read_text())
    assert committed == LoonConfig.model_json_schema(), "run: loon schema -o config.schema.json"
