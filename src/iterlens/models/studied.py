"""The studied models: the config's table of models, and every probed model it implies.

The table (``models:`` in the config, one entry a model, like a sample sheet) is the only
place a model is named. Each entry has a ``name``, a ``source`` and its ``controls``:

- ``reference``: the GPT-2 the workflow trains on the corpus (sizes in the ``lm`` section),
- ``cnn``: an Inception-style CNN trained on the digits (``vision`` section),
- ``hub``: a Hugging Face causal LM by name; ``folder``: a local ``save_pretrained`` folder;
  ``gguf``: a GGUF file, or an installed package that ships one, converted once into a
  ``save_pretrained`` folder (:mod:`iterlens.models.gguf`; the weights are dequantized, so its
  numbers are named as quantized).

``overrides`` gives one entry its own settings of the ``extract``, ``lens`` and ``probe``
sections (a real model's budget on a CPU: fewer tokens, fewer steps); :meth:`Study.config_of`
merges them for every probed model of the entry.

``residual`` says whether a model trained here has identity skips (:data:`DEFAULT_RESIDUAL`:
the reference LM has them unless the entry says ``false``, a CNN only with ``true``). A
``hub`` or ``folder`` model is taken as it is, so its entry may not set it.

From an entry follow its probed models (see :func:`iterlens.artifacts.model_name`): the seed
replicates ``<name>``, ``<name>_s1``, ... of a model trained here, its untrained twin
``<name>_random``, its rotated twin ``<name>_rotated`` and the partial rotations
``<name>_rot<ddd>`` of the dose-response control (``controls.dose_response``). :class:`Study`
lists them for the workflow and the report, so no rule or report spells a model's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from iterlens import artifacts as A

SOURCES = ("reference", "cnn", "hub", "folder", "gguf")
TRAINED_SOURCES = ("reference", "cnn")  # sources trained by the workflow (so: seeds)
LM_DOMAIN, VISION_DOMAIN = "lm", "vision"  # what a model reads: text or images (not model names)
DOMAINS = (LM_DOMAIN, VISION_DOMAIN)
# The models the paper's argument names, by role (:meth:`Study.roles`): the lead LM, the
# plain and the residual CNN.
LM_ROLE, PLAIN_ROLE, RESIDUAL_ROLE = "lm", "plain", "residual"
ROLES = (LM_ROLE, PLAIN_ROLE, RESIDUAL_ROLE)
REFERENCE_SECTION = "lm"  # the config section of the reference LM's sizes and training
DOMAIN = {
    "reference": LM_DOMAIN,
    "hub": LM_DOMAIN,
    "folder": LM_DOMAIN,
    "gguf": LM_DOMAIN,
    "cnn": VISION_DOMAIN,
}
PATH_SOURCES = ("hub", "folder", "gguf")  # sources a ``path`` names
OVERRIDABLE = ("extract", "lens", "probe")  # config sections an entry's ``overrides`` may set
# Identity skips of an entry that does not say: the reference GPT-2 has them, the CNN not; a
# hub or folder LM is taken as it is (every supported family has them) and may not say.
DEFAULT_RESIDUAL = {"reference": True, "cnn": False, "hub": True, "folder": True, "gguf": True}
# The dose-response grid (interior t of the partial rotations) of an entry that names none:
# language models only, and only with the rotated twin.
DEFAULT_DOSE_RESPONSE = {LM_DOMAIN: (0.25, 0.5), VISION_DOMAIN: ()}


class StudyError(ValueError):
    """A table of studied models that cannot be run; the message names the entry."""


@dataclass(frozen=True)
class StudiedModel:
    """One entry of the table of studied models (its fields are the schema's)."""

    name: str
    source: str
    path: str | None = None
    residual: bool | None = None  # None: DEFAULT_RESIDUAL of the source (set by __post_init__)
    title: str | None = None
    random_init: bool = True
    rotated: bool = True
    seeds: int = 1
    use_released_lenses: bool = False
    lenses_from: str | None = None
    lens_name: str | None = None
    dose_grid: tuple[float, ...] | None = None  # None: DEFAULT_DOSE_RESPONSE of the domain
    sha256: str | None = None  # a gguf file's expected digest, checked before conversion
    size: int | None = None  # a gguf file's expected size in bytes
    license: str | None = None  # the Hub license id of the weights (its lens cards carry it)
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, compare=False)
    residual_given: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Fill ``residual`` from the source's default; remember whether the entry set it."""
        object.__setattr__(self, "residual_given", self.residual is not None)
        if self.residual is None:
            object.__setattr__(self, "residual", DEFAULT_RESIDUAL.get(self.source, False))

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> StudiedModel:
        """An entry of the validated config's ``models`` list."""
        controls = entry.get("controls", {})
        released = entry.get("released_lenses", {})
        model = cls(
            name=entry["name"],
            source=entry["source"],
            path=entry.get("path"),
            residual=entry.get("residual"),
            title=entry.get("title"),
            random_init=controls.get("random_init", True),
            rotated=controls.get("rotated", True),
            seeds=controls.get("seeds", 1),
            use_released_lenses=released.get("use", False),
            lenses_from=released.get("source"),
            lens_name=released.get("lens_name"),
            dose_grid=(
                tuple(float(t) for t in controls["dose_response"])
                if "dose_response" in controls
                else None
            ),
            sha256=entry.get("sha256"),
            size=entry.get("size"),
            license=entry.get("license"),
            overrides={k: dict(v) for k, v in entry.get("overrides", {}).items()},
        )
        model.check()
        return model

    def check(self) -> None:
        """Refuse an entry that names no model or asks for what its source cannot do."""
        where = f"models entry '{self.name}'"
        if not A.BASE_NAME.match(self.name) or A.parse_model_name(self.name) != (
            self.name,
            0,
            "model",
            None,
        ):
            raise StudyError(
                f"{where}: a name is lower-case letters, digits and single underscores, and "
                f"does not end in '_s<k>', '{A.RANDOM_SUFFIX}', '{A.ROTATED_SUFFIX}' or "
                "'_rot<ddd>' (those name its replicates and twins)"
            )
        if self.source not in SOURCES:
            raise StudyError(f"{where}: unknown source '{self.source}'; one of {SOURCES}")
        if self.source in PATH_SOURCES and not self.path:
            raise StudyError(f"{where}: source '{self.source}' needs a 'path'")
        if self.source in ("reference", "cnn") and self.path:
            raise StudyError(f"{where}: source '{self.source}' is trained here; drop 'path'")
        if (self.sha256 or self.size) and self.source != "gguf":
            raise StudyError(f"{where}: 'sha256' and 'size' check a 'gguf' file; drop them")
        unknown = sorted(set(self.overrides) - set(OVERRIDABLE))
        if unknown:
            raise StudyError(
                f"{where}: overrides.{unknown[0]}: only the {', '.join(OVERRIDABLE)} sections "
                "can be set per model"
            )
        if self.residual_given and self.source not in TRAINED_SOURCES:
            raise StudyError(
                f"{where}: 'residual' is a setting of a model trained here ({TRAINED_SOURCES}); "
                f"a '{self.source}' model is taken as it is: drop 'residual'"
            )
        if not isinstance(self.residual, bool):
            raise StudyError(f"{where}: 'residual' is true or false, not {self.residual!r}")
        if self.seeds > 1 and self.source not in TRAINED_SOURCES:
            raise StudyError(
                f"{where}: seeds {self.seeds}, but a '{self.source}' model is not trained "
                "here; it has one seed"
            )
        if self.use_released_lenses and self.domain != LM_DOMAIN:
            raise StudyError(f"{where}: released lenses are for language models")
        if self.dose_grid and not self.rotated:
            raise StudyError(
                f"{where}: controls.dose_response needs the rotated twin (controls.rotated)"
            )
        for t in self.dose_grid or ():
            try:
                A.dose_tag(t)
            except ValueError as err:
                raise StudyError(f"{where}: controls.dose_response: {err}") from None
        if self.dose_grid and len(set(self.dose_grid)) < len(self.dose_grid):
            raise StudyError(f"{where}: controls.dose_response lists a t twice")

    def settings(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """``config`` with this entry's ``overrides`` merged into its sections."""
        out = dict(config)
        for section, values in self.overrides.items():
            out[section] = {**config.get(section, {}), **values}
        return out

    @property
    def domain(self) -> str:
        """``lm`` or ``vision``."""
        return DOMAIN[self.source]

    @property
    def trained_here(self) -> bool:
        """True when the workflow trains the model (so it has seeds and a training curve)."""
        return self.source in TRAINED_SOURCES

    @property
    def display(self) -> str:
        """The model's title in the paper (its name when the entry gives none)."""
        return self.title or self.name

    @property
    def replicates(self) -> list[str]:
        """The trained models: replicate 0 keeps the bare name."""
        return A.replicates(self.name, self.seeds)

    @property
    def random_twin(self) -> str | None:
        """The untrained twin's name, or None without that control."""
        return A.model_name(self.name, twin="random") if self.random_init else None

    @property
    def rotated_twin(self) -> str | None:
        """The rotated twin's name, or None without that control."""
        return A.model_name(self.name, twin="rotated") if self.rotated else None

    @property
    def dose_response(self) -> tuple[float, ...]:
        """The interior t of the dose-response control, ascending (none without the twin)."""
        if not self.rotated:
            return ()
        grid = DEFAULT_DOSE_RESPONSE[self.domain] if self.dose_grid is None else self.dose_grid
        return tuple(sorted(grid))

    @property
    def partial_twins(self) -> list[str]:
        """The partial rotations ``<name>_rot<ddd>``, one per t of :attr:`dose_response`."""
        return [A.model_name(self.name, twin="partial", t=t) for t in self.dose_response]

    @property
    def dose_models(self) -> list[tuple[float, str]]:
        """``(t, model)`` of the whole dose response (empty without interior t).

        The model at t = 0, the partial twins, then the rotated twin at t = 1.
        """
        if not self.dose_response:
            return []
        partial = list(zip(self.dose_response, self.partial_twins, strict=True))
        return [(0.0, self.name), *partial, (1.0, self.rotated_twin)]

    @property
    def probed(self) -> list[str]:
        """Every probed model of the entry but the rotated twin (which has no forward pass)."""
        return self.replicates + ([self.random_twin] if self.random_twin else [])

    @property
    def tokenizer(self) -> str:
        """The name of the tokenizer the entry's LMs read (the entry's own name)."""
        return self.name


class Study:
    """Every model a config studies, and the names the workflow expands over."""

    def __init__(self, entries: list[Mapping[str, Any]]):
        self.models = [StudiedModel.from_entry(e) for e in entries]
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise StudyError(f"models: the name '{dupes[0]}' is listed twice")
        clash = sorted(set(names) & {p for m in self.models for p in m.probed[1:]})
        if clash:
            raise StudyError(f"models: '{clash[0]}' names both an entry and another's twin")
        if not self.models:
            raise StudyError("models: the table lists no model")

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> Study:
        """The study of a validated config."""
        return cls(config["models"])

    @cached_property
    def by_name(self) -> dict[str, StudiedModel]:
        """Entry name -> entry."""
        return {m.name: m for m in self.models}

    def entry_of(self, probed: str) -> StudiedModel:
        """The entry a probed model (a replicate or twin) belongs to."""
        base = A.parse_model_name(probed).base
        if base not in self.by_name:
            raise StudyError(f"'{probed}' is not a model of this study: {list(self.by_name)}")
        return self.by_name[base]

    def config_of(self, probed: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """The config a probed model runs with: its entry's ``overrides`` merged in."""
        return self.entry_of(probed).settings(config)

    def of_domain(self, domain: str) -> list[StudiedModel]:
        """The entries of one domain (``lm`` or ``vision``), in table order."""
        return [m for m in self.models if m.domain == domain]

    def trained(self, domain: str | None = None) -> list[str]:
        """The trained models: every entry's base name, then the seed replicates k >= 1."""
        models = self.models if domain is None else self.of_domain(domain)
        return [m.name for m in models] + [r for m in models for r in m.replicates[1:]]

    def probed(self, domain: str | None = None) -> list[str]:
        """Every probed model with a forward pass, LMs first, then CNNs.

        In each domain: the entries' base names, their untrained twins, then the seed
        replicates k >= 1.
        """
        if domain is None:
            return self.probed(LM_DOMAIN) + self.probed(VISION_DOMAIN)
        models = self.of_domain(domain)
        randoms = [m.random_twin for m in models if m.random_twin]
        return [m.name for m in models] + randoms + [r for m in models for r in m.replicates[1:]]

    def families(self, domain: str | None = None) -> list[str]:
        """Entries drawn beside their untrained twin (those with the random-init control)."""
        models = self.models if domain is None else self.of_domain(domain)
        return [m.name for m in models if m.random_init]

    @property
    def rotated(self) -> list[str]:
        """The rotated twins."""
        return [m.rotated_twin for m in self.models if m.rotated_twin]

    @property
    def partial_twins(self) -> list[str]:
        """The partial rotations of the dose-response control (no forward pass)."""
        return [p for m in self.models for p in m.partial_twins]

    @property
    def dose_families(self) -> list[str]:
        """Entries with a dose-response control."""
        return [m.name for m in self.models if m.dose_response]

    @property
    def released_lenses(self) -> list[str]:
        """Entries whose lenses are pulled from a release instead of fitted here."""
        return [m.name for m in self.models if m.use_released_lenses]

    def replicates(self, source: str) -> list[str]:
        """The trained replicates of every entry of ``source``."""
        return [r for m in self.models if m.source == source for r in m.replicates]

    def tokenizer_of(self, probed: str) -> str:
        """The tokenizer a probed LM reads: its entry's (replicates and twins share it)."""
        return self.entry_of(probed).tokenizer

    def roles(self) -> dict[str, str]:
        """The models the paper's argument names, by role (a role is absent without one).

        ``lm``: the first language model of the table; ``plain`` and ``residual``: the first
        CNN without and with identity skips.
        """
        roles = {}
        lms = self.of_domain(LM_DOMAIN)
        if lms:
            roles[LM_ROLE] = lms[0].name
        for role, residual in ((PLAIN_ROLE, False), (RESIDUAL_ROLE, True)):
            cnn = [m for m in self.of_domain(VISION_DOMAIN) if m.residual == residual]
            if cnn:
                roles[role] = cnn[0].name
        return roles

    def contrasts(self) -> list[tuple[str, str, bool]]:
        """``(a, b, paired)`` for the contrast table.

        Each residual minus each plain CNN (paired: the same images), and each LM minus each
        CNN (unpaired).
        """
        cnns = self.of_domain(VISION_DOMAIN)
        pairs = [(r.name, p.name, True) for r in cnns if r.residual for p in cnns if not p.residual]
        pairs += [(lm.name, c.name, False) for lm in self.of_domain(LM_DOMAIN) for c in cnns]
        return pairs

    def describe(self) -> list[dict[str, Any]]:
        """The table as plain data (for the paper's values and the release cards)."""
        return [
            {
                "name": m.name,
                "source": m.source,
                "domain": m.domain,
                "title": m.display,
                "path": m.path,
                "residual": m.residual,
                "seeds": m.seeds,
                "random_init": m.random_init,
                "rotated": m.rotated,
                "overrides": {k: dict(v) for k, v in m.overrides.items()},
            }
            for m in self.models
        ]
