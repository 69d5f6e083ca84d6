"""Policy files: schema, unique ids, citations, and the loader's refusal of broken files."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from cds_service.core.model import Service
from cds_service.core.policy import Policy
from cds_service.policy_store import PolicyLoadError, bundled, load, load_policy
from tests.policy_texts import policy_texts

CARDS = bundled("cards")
POLICIES = {"wellmark-07.03.13", "molina-mcp-210", "centene-cp.mp.101", "anthem-cg-trans-03",
            "bcbsms-l.2.03.402"}  # fmt: skip


def raw(policy_id: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CARDS / f"{policy_id}.yaml").read_text())
    return data


def test_the_five_policies_load() -> None:
    assert {p.id for p in load().policies} == POLICIES


@pytest.mark.parametrize("policy", load().policies, ids=lambda p: p.id)
def test_every_criterion_is_cited_and_ids_are_unique(policy: Policy) -> None:
    nodes = [n for s in Service if (rule := policy.rule(s)) for n in rule.walk()]
    assert nodes, "the policy encodes at least one service"
    assert all(n.citation.strip() and n.text.strip() for n in nodes)
    ids = [n.id for n in nodes]
    assert len(ids) == len(set(ids))
    assert all(i.startswith(policy.id.split("-")[0]) for i in ids)
    leaves = [n for n in nodes if n.test is not None]
    assert all(n.to_settle for n in leaves), "every leaf says what documentation settles it"


@pytest.mark.parametrize("policy", load().policies, ids=lambda p: p.id)
def test_source_document_exists(policy: Policy) -> None:
    assert (policy_texts() / policy.policy.source_document).is_file()


def test_services_not_addressed_are_explicit() -> None:
    by_id = {p.id: p for p in load().policies}
    for policy_id in ("centene-cp.mp.101", "anthem-cg-trans-03", "bcbsms-l.2.03.402"):
        assert by_id[policy_id].rule(Service.HPC_BOOST) is None
    assert by_id["wellmark-07.03.13"].rule(Service.HPC_BOOST) is not None
    assert by_id["molina-mcp-210"].rule(Service.HPC_BOOST) is not None


def _dli_leaf(data: dict[str, Any]) -> dict[str, Any]:
    leaf: dict[str, Any] = data["services"]["dli"]["all_of"][0]
    return leaf


BROKEN = [
    ("unknown fact", lambda d: _dli_leaf(d)["test"].update(fact="chimera")),
    ("value outside the fact's domain", lambda d: _dli_leaf(d)["test"].update(equals="xenogeneic")),
    ("two operators", lambda d: _dli_leaf(d)["test"].update({"in": ["allogeneic"]})),
    ("numeric operator on a category", lambda d: _dli_leaf(d).update(test={"fact": "hsct_type", "lt": 3})),
    ("missing citation", lambda d: _dli_leaf(d).pop("citation")),
    ("empty citation", lambda d: _dli_leaf(d).update(citation="")),
    ("unknown key", lambda d: _dli_leaf(d).update(weight=2)),
    ("duplicate id", lambda d: d["services"]["dli"]["all_of"][1].update(id=_dli_leaf(d)["id"])),
    ("test and group together", lambda d: _dli_leaf(d).update(any_of=[copy.deepcopy(_dli_leaf(d))])),
    ("missing service", lambda d: d["services"].pop("hpc-boost")),
    ("group inside none_of", lambda d: d["services"]["dli"]["none_of"].append(
        {"id": "x", "text": "x", "citation": "x", "any_of": [copy.deepcopy(_dli_leaf(d))]})),
]  # fmt: skip


@pytest.mark.parametrize(("why", "mutate"), BROKEN, ids=[b[0] for b in BROKEN])
def test_schema_rejects(why: str, mutate: Any) -> None:
    data = raw("wellmark-07.03.13")
    Policy.model_validate(data)  # the unmodified file is valid
    mutate(data)
    with pytest.raises(ValidationError):
        Policy.model_validate(data)


def test_loader_names_the_file_and_checks_the_id(tmp_path: Path) -> None:
    data = raw("molina-mcp-210")
    (tmp_path / "molina-copy.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(PolicyLoadError, match="does not match the file name"):
        load_policy(tmp_path / "molina-copy.yaml")
    (tmp_path / "broken.yaml").write_text("id: [unclosed")
    with pytest.raises(PolicyLoadError, match=r"broken\.yaml"):
        load_policy(tmp_path / "broken.yaml")
    with pytest.raises(PolicyLoadError, match="no policy files"):
        load(tmp_path / "empty")


def test_readme_names_the_module_that_decides_each_fact() -> None:
    import re

    from cds_service.core.facts import CATALOGUE

    table = re.findall(
        r"^\| `(\w+)` \| `facts/(\w+)\.py` \|$", (CARDS / "README.md").read_text(), re.M
    )
    assert dict(table) == {name: spec.module for name, spec in CATALOGUE.items()}
    assert len(table) == len(CATALOGUE)
    for name, spec in CATALOGUE.items():  # the module is named after the concept it decides
        assert spec.extract.__name__ == name


def test_thresholds_come_only_from_their_file(tmp_path: Path) -> None:
    from cds_service.core.facts import Thresholds
    from cds_service.policy_store import THRESHOLDS_FILE, load_thresholds

    data = yaml.safe_load(THRESHOLDS_FILE.read_text(encoding="utf-8"))
    thresholds = load_thresholds(THRESHOLDS_FILE)
    assert thresholds.platelets_below == data["cytopenia"]["platelets_below_10e9_per_l"]
    assert thresholds.transfusion_lookback_days == data["transfusion_dependence"]["lookback_days"]
    assert all(field.is_required() for field in Thresholds.model_fields.values())  # no defaults
    breakages: tuple[tuple[str, Callable[[dict[str, Any]], None]], ...] = (
        ("unknown thresholds: cytopenia.anc_below", lambda d: d["cytopenia"].update(anc_below=1)),
        ("greater than 0", lambda d: d["cytopenia"].update(persistence_days=0)),
        ("Field required", lambda d: d["conditioning"].clear()),
        ("valid integer", lambda d: d["transfusion_dependence"].update(min_transfusions="2")),
    )
    for why, mutate in breakages:
        broken = copy.deepcopy(data)
        mutate(broken)
        path = tmp_path / "clinical_thresholds.yaml"
        path.write_text(yaml.safe_dump(broken), encoding="utf-8")
        with pytest.raises(PolicyLoadError, match=why):
            load_thresholds(path)
