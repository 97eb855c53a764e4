"""Staged recipes: several training runs as one command, each later one starting from an earlier one's policy.

A recipe file with ``[[stage]]`` tables is a *staged* recipe. Its top level holds only ``name``, ``out_dir``,
``export_dir`` (optional) and the exported card's ``raise_power`` and ``raise_power_pretrained`` (optional; see
:mod:`lrpilot.controller.policy`: they change how the final policy acts at several decisions per epoch, and no stage's
training or validation reads them); each stage is a recipe of its own (:class:`~lrpilot.learn.recipe.Recipe`), with a
``name`` and, optionally, ``recipe``, a recipe file (relative to the staged one) whose fields the stage's other
keys override. In ``init_policy`` and ``twin`` a stage names an earlier stage's policy as ``@STAGE``::

    name = "default"
    out_dir = "runs/ctrl/default"

    [[stage]]
    name = "fast"
    recipe = "ppo-residual-fast.toml"     # 1M PPO steps from the rule

    [[stage]]
    name = "select"
    init_policy = "@fast"                 # PPO goes on from what stage "fast" exported
    twin = "policy:@fast"                 # ... against that policy's own play
    ...

``lrpilot train-controller configs/default.toml`` runs the stages in order, each in ``OUT/STAGE/`` (its own
TensorBoard, progress checkpoints and validated actors, as a one-stage run writes them), and writes the last
stage's policy again as ``OUT/NAME.{json,safetensors}``: the same weights, with a card that also records every
stage (``provenance.stages``: its name, recipe, policy file and that file's sha256). With ``--resume`` a killed
run goes on: a stage that has exported its policy is not trained again (its state says it is done), the stage
that was running continues from its last progress checkpoint, later ones start.

Example:
    >>> staged = load_staged("configs/default.toml")
    >>> [stage.name for stage in staged.stages]
    ['fast', 'select']
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from lrpilot.controller.policy import is_raise_power
from lrpilot.learn.recipe import Recipe
from lrpilot.tomlfile import read_toml

__all__ = ["Stage", "StagedRecipe", "is_staged", "load_staged", "load_any_recipe", "STAGED_FLAGS", "CARD_FIELDS"]

STAGED_FLAGS = ("out_dir", "name", "export_dir", "resume")
"""The fields a flag may set on a staged recipe; every other one belongs to a stage, and is set in the file."""

_REF = re.compile(r"^(policy:)?@([A-Za-z0-9_-]+)$")
CARD_FIELDS = ("raise_power", "raise_power_pretrained")
"""Top-level fields of a staged recipe written onto the last stage's exported card, not read by any stage."""
_TOP = ("name", "out_dir", "export_dir", *CARD_FIELDS, "stage")


@dataclass(frozen=True)
class Stage:
    """One stage: its name and its recipe, whose ``init_policy`` and ``twin`` may name an earlier stage."""

    name: str
    recipe: Recipe
    """The stage's recipe, validated with a ``twin`` that names a stage left out (:meth:`resolved` puts it back)."""
    twin: str | None = None
    """The ``twin`` as written when it names a stage (``policy:@NAME``), else None."""

    def resolved(self, out_dir: str | Path, exports: Mapping[str, Path]) -> Recipe:
        """The recipe to run in ``out_dir``, its ``@STAGE`` references replaced by those stages' policy files
        (``exports``: each earlier stage's policy path, without suffix). Validated again, twin included."""
        changes: dict[str, Any] = {"out_dir": str(out_dir), "export_dir": None, "resume": False}
        for key, value in (("init_policy", self.recipe.init_policy), ("twin", self.twin)):
            match = _REF.match(value or "")
            if match:
                changes[key] = (match.group(1) or "") + str(exports[match.group(2)])
        return self.recipe.replace(**changes)


@dataclass(frozen=True)
class StagedRecipe:
    """A staged recipe file: its stages in order, where they run and what the last one is exported as."""

    name: str
    out_dir: str
    stages: tuple[Stage, ...]
    export_dir: str | None = None
    resume: bool = False
    source: str = "recipe"
    card: Mapping[str, float] = field(default_factory=dict)
    """The exported card's ``raise_power`` / ``raise_power_pretrained`` that the file sets (:data:`CARD_FIELDS`)."""

    def replace(self, **changes: Any) -> "StagedRecipe":
        """A copy with these top-level fields changed (``STAGED_FLAGS`` only; ``ValueError`` for another)."""
        wrong = sorted(set(changes) - set(STAGED_FLAGS))
        if wrong:
            flags = ", ".join("--" + k.replace("_", "-") for k in wrong)
            raise ValueError(f"{self.source} is a staged recipe: {flags} would change every stage; set it in the "
                             f"stage's table (flags that apply: --out, --name, --export-dir, --resume)")
        return replace(self, **changes)

    def stage_dir(self, stage: Stage) -> Path:
        """Where ``stage`` runs: ``OUT/STAGE``."""
        return Path(self.out_dir) / stage.name

    def stage_policy(self, stage: Stage) -> Path:
        """The policy file ``stage`` exports (without suffix)."""
        return self.stage_dir(stage) / stage.recipe.name


def is_staged(data: Mapping[str, Any]) -> bool:
    """Whether a recipe file's table is a staged recipe (it has ``[[stage]]`` tables)."""
    return "stage" in data


def staged_from_dict(data: Mapping[str, Any], source: str, folder: Path) -> StagedRecipe:
    """Build and check a staged recipe; ``ValueError`` naming the file, the stage and the field."""
    unknown = sorted(set(data) - set(_TOP))
    if unknown:
        raise ValueError(f"{source}: a staged recipe holds only name, out_dir, export_dir, {', '.join(CARD_FIELDS)} "
                         f"and [[stage]] tables at its top; move {', '.join(unknown)} into the stages")
    tables = data["stage"]
    if not isinstance(tables, list) or not tables or not all(isinstance(t, Mapping) for t in tables):
        raise ValueError(f"{source}: stage must be one or more [[stage]] tables")
    name = data.get("name", Path(source).stem)
    out_dir, export_dir = data.get("out_dir", f"runs/ctrl/{name}"), data.get("export_dir")
    for key, value in (("name", name), ("out_dir", out_dir), ("export_dir", export_dir)):
        if value is not None and (not isinstance(value, str) or not value.strip() or (key == "name" and "/" in value)):
            raise ValueError(f"{source}: {key} must be a non-empty string{' without /' if key == 'name' else ''}, "
                             f"got {value!r}")
    card = {key: data[key] for key in CARD_FIELDS if key in data}
    for key, value in card.items():
        if not is_raise_power(value):
            raise ValueError(f"{source}: {key} (the exported card's) must be a number in [0, 1], got {value!r}")
    stages: list[Stage] = []
    for number, table in enumerate(tables, 1):
        stages.append(_stage(dict(table), f"{source}, stage {number}", folder, {s.name for s in stages}))
    return StagedRecipe(name=name, out_dir=out_dir, export_dir=export_dir, stages=tuple(stages), source=source,
                        card={key: float(value) for key, value in card.items()})


def _stage(table: dict[str, Any], where: str, folder: Path, earlier: set[str]) -> Stage:
    name = table.pop("name", None)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ValueError(f"{where}: every stage needs a name of letters, digits, - and _ (got {name!r})")
    if name in earlier:
        raise ValueError(f"{where}: stage name {name!r} is used twice")
    where = f"{where} ({name})"
    fields: dict[str, Any] = {}
    if "recipe" in table:
        file = table.pop("recipe")
        if not isinstance(file, str) or not file:
            raise ValueError(f"{where}: recipe must be a recipe file's path, got {file!r}")
        base = read_toml(folder / file, "recipe file")
        if is_staged(base):
            raise ValueError(f"{where}: recipe {file} is itself staged; a stage's recipe has no stages")
        fields.update(base)
    fields.update(table)
    fields.setdefault("name", name)
    for key in ("out_dir", "export_dir"):  # a stage runs in OUT/STAGE and exports there
        fields.pop(key, None)
    twin = None
    for key in ("init_policy", "twin"):
        value = fields.get(key)
        match = _REF.match(value) if isinstance(value, str) else None
        if isinstance(value, str) and "@" in value and not match:
            raise ValueError(f"{where}: {key} {value!r}: an earlier stage is named as "
                             f"{'policy:' if key == 'twin' else ''}@STAGE")
        if match and match.group(2) not in earlier:
            raise ValueError(f"{where}: {key} names stage {match.group(2)!r}, which does not run before it "
                             f"(earlier stages: {', '.join(sorted(earlier)) or 'none'})")
        if match and key == "twin":
            if not match.group(1):
                raise ValueError(f"{where}: twin {value!r}: a stage's policy is the twin spec policy:@STAGE")
            twin = fields.pop("twin")  # checked once the stage's policy exists (Stage.resolved)
    recipe = Recipe.from_dict(fields, source=where)
    if recipe.method != "population":
        raise ValueError(f"{where}: a stage trains on the population environment (method = \"population\"), "
                         f"got method {recipe.method!r}")
    return Stage(name, recipe, twin)


def load_staged(path: str | Path) -> StagedRecipe:
    """Read and check a staged recipe file (``ValueError`` if it is not one, or names the field that is wrong)."""
    staged = load_any_recipe(path)
    if not isinstance(staged, StagedRecipe):
        raise ValueError(f"{path}: not a staged recipe (no [[stage]] tables)")
    return staged


def load_any_recipe(path: str | Path) -> Recipe | StagedRecipe:
    """A recipe file, one-stage (:class:`~lrpilot.learn.recipe.Recipe`) or staged (:class:`StagedRecipe`);
    ``FileNotFoundError`` or a one-line ``ValueError`` as :func:`~lrpilot.learn.recipe.load_recipe` gives."""
    data = read_toml(path, "recipe file")
    if is_staged(data):
        return staged_from_dict(data, str(path), Path(path).parent)
    return Recipe.from_dict(data, source=str(path))
