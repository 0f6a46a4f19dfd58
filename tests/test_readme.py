from loon_supervisor.config.reference import BEGIN, END, reference_markdown
from tests.conftest import ROOT


def test_readme_config_reference_is_current() -> None:
    text = (ROOT / "README.md").read_text()
    block = text[text.index(BEGIN):text.index(END) + len(END)]
    assert block == reference_markdown(), "regenerate with: loon config-reference --write README.md"


def test_readme_starts_with_the_two_commands() -> None:
    blocks = (ROOT / "README.md").read_text().split("```sh\n")
    assert blocks[1].startswith("bash scripts/ensure-docker.sh && bash "
                                "scripts/ensure-base-image.sh && python3 build.py "
                                "--config-file config.example.json\n")
    assert blocks[2].startswith("bash scripts/test.sh\n")
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
