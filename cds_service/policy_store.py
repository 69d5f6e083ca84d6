"""Load and validate the policy files (cards/*.yaml) and clinical thresholds, once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from cds_service.core import Policy, Thresholds, warm_up_units, worksheets

PACKAGE_DIR = Path(__file__).resolve().parent
THRESHOLDS_FILE = PACKAGE_DIR / "data" / "clinical_thresholds.yaml"


def bundled(name: str) -> Path:
    """A top-level folder of the repository (source checkout), else its copy in the wheel."""
    source = PACKAGE_DIR.parent / name
    return source if source.is_dir() else PACKAGE_DIR / "_bundled" / name


class PolicyLoadError(Exception):
    pass


@dataclass(frozen=True)
class Knowledge:
    policies: tuple[Policy, ...]
    thresholds: Thresholds


def load_policy(path: Path) -> Policy:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        policy = Policy.model_validate(data)
    except (OSError, yaml.YAMLError, ValidationError) as error:
        raise PolicyLoadError(f"{path.name}: {error}") from error
    if policy.id != path.stem:
        raise PolicyLoadError(f"{path.name}: id {policy.id!r} does not match the file name")
    return policy


def load_thresholds(path: Path) -> Thresholds:
    try:
        return Thresholds.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as error:
        raise PolicyLoadError(f"{path.name}: {error}") from error


def load(cards_dir: Path | None = None) -> Knowledge:
    folder = cards_dir or bundled("cards")
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise PolicyLoadError(f"no policy files (*.yaml) in {folder}")
    thresholds = load_thresholds(THRESHOLDS_FILE)
    policies = tuple(load_policy(f) for f in files)
    # Built now, not at the first call: the server freezes what exists at start-up out of the
    # garbage collector's scans (api/app.py lifespan); built lazily, the worksheets' many small
    # objects were rescanned by every full collection during requests.
    worksheets(policies)
    warm_up_units()  # the UCUM registry (about 1 s to build), likewise before the freeze
    return Knowledge(policies, thresholds)
