import json
import sys
from pathlib import Path

import jsonschema
import yaml
from conftest import ROOT

from iterlens.report.paper import citation_meta

SCHEMA = Path(__file__).parent / "data" / "cff-1.2.0.schema.json"

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = None


def load_cff() -> dict:
    # CFF is YAML; dates and versions must stay strings for the JSON schema.
    return yaml.load((ROOT / "CITATION.cff").read_text(), Loader=yaml.BaseLoader)


def pyproject() -> dict:
    text = (ROOT / "pyproject.toml").read_text()
    if tomllib is not None:
        return tomllib.loads(text)["project"]
    import re

    return {
        "name": re.search(r'^name = "(.*)"', text, re.M).group(1),
        "version": re.search(r'^version = "(.*)"', text, re.M).group(1),
        "description": re.search(r'^description = "(.*)"', text, re.M).group(1),
        "authors": [{"name": n} for n in re.findall(r'\{ name = "([^"]*)"', text)],
    }


def test_citation_validates_against_cff_1_2_0():
    cff = load_cff()
    assert cff["cff-version"] == "1.2.0"
    jsonschema.validate(cff, json.loads(SCHEMA.read_text()))


def test_schema_rejects_a_broken_citation():
    cff = load_cff()
    del cff["authors"]
    try:
        jsonschema.validate(cff, json.loads(SCHEMA.read_text()))
    except jsonschema.ValidationError as err:
        assert "authors" in err.message
    else:
        raise AssertionError("a citation without authors validated")


def test_citation_agrees_with_pyproject_and_paper():
    cff, project = load_cff(), pyproject()
    assert cff["version"] == project["version"]
    assert cff["title"] == f"{project['name']}: {project['description'].split('?')[0]}?"
    assert [a["name"] for a in cff["authors"]] == [a["name"] for a in project["authors"]]
    assert cff["preferred-citation"]["title"] == cff["title"]
    assert cff["license"] == project["license"]
    # the paper's front matter is read from CITATION.cff
    meta = citation_meta(ROOT / "CITATION.cff")
    assert meta == {
        "title": cff["title"],
        "version": cff["version"],
        "authors": [a["name"] for a in cff["authors"]],
    }
    assert "meta.title" in (ROOT / "paper" / "paper.typ").read_text()
