"""The catalog: every known LTX-2 / LTX-2.3 artifact on the Hugging Face hub, and which of them
fill each role a pipeline needs (pipelines/registry.py says which roles each pipeline needs).

Sizes are exact bytes from hub LFS pointers or download manifests unless `exact=False`.

- Revisions: the reference gives only abbreviated commit ids, which the hub's resolve endpoint
  does not accept, so artifacts pin `main` and are pinned *by content* instead: the size and
  sha256 below are checked against the hub's answer before a byte is downloaded, and the
  commit a pull resolved is recorded in the cache's `refs/`. A full 40-hex `revision` can be
  set per artifact and is used verbatim.
- `sha256` is either the full 64-hex digest or an abbreviated `head…tail` form (as the
  reference quotes some hashes); `hash_matches` accepts both.
- Full sha256 values not in the reference were taken from a public download manifest only where
  the reference corroborates them (same exact size or same abbreviated hash).
- `LTX2_CATALOG=/path/to/catalog.json` replaces the built-in table (tests, mirrors); the JSON
  has the shape of `Catalog.to_dict()`.
- Roles: per generation, the artifacts that can fill a role, in order of preference; any
  installed one fills it, and a pull prefers an ungated one (the ungated Gemma copy).
- `demo` is reserved for the locally built demo model and is never a catalog name.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ltx2cli.errors import ConfigError, UsageError
from ltx2cli.families import GEN_2_0, GEN_2_3, get_family
from ltx2cli.pipelines.registry import (
    CHECKPOINT,
    DISTILLED_CHECKPOINT,
    DISTILLED_LORA,
    IC_LORA,
    SPATIAL_UPSAMPLER,
    TEXT_ENCODER,
    get_pipeline,
)
from ltx2cli.text import did_you_mean

DEMO_MODEL = "demo"
KINDS = ("checkpoint", "upsampler", "lora", "text-encoder")
ANY_GENERATION = "any"  # the text encoder serves both generations


LTX_LICENCE = "LTX-2 Community License Agreement"
GEMMA_LICENCE = "Gemma Terms of Use"


@dataclass(frozen=True)
class FileSpec:
    """One file of an artifact, by its path inside the repository."""

    name: str
    size: int | None = None
    sha256: str | None = None
    exact: bool = True  # False: `size` is an approximation quoted by a third party


@dataclass(frozen=True)
class Artifact:
    name: str
    kind: str
    generation: str
    repo: str
    files: tuple[FileSpec, ...]
    description: str
    licence: str = LTX_LICENCE
    gated: bool | None = False  # None: not verified either way
    revision: str = "main"
    superseded_by: str | None = None
    provides: str | None = None  # an interchangeable copy of another entry (same files)

    @property
    def size(self) -> int:
        """Download size in bytes (sum of the known file sizes)."""
        return sum(f.size or 0 for f in self.files)

    @property
    def size_exact(self) -> bool:
        return all(f.exact and f.size is not None for f in self.files)

    @property
    def is_directory(self) -> bool:
        """Whole-repository artifacts (the text encoder) resolve to a folder, not a file."""
        return len(self.files) > 1

    @property
    def page(self) -> str:
        return f"https://huggingface.co/{self.repo}"

    def size_text(self) -> str:
        if not self.size:
            return "unknown size"
        return ("" if self.size_exact else "≈") + human_size(self.size)


@dataclass(frozen=True)
class Requirement:
    """One role a pipeline needs and the artifacts that can fill it, preferred first."""

    role: str
    candidates: tuple[Artifact, ...]


@dataclass
class Catalog:
    artifacts: dict[str, Artifact]
    roles: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)

    def get(self, name: str) -> Artifact:
        try:
            return self.artifacts[name]
        except KeyError:
            raise UsageError(
                f"unknown model '{name}'{did_you_mean(name, self.artifacts)}",
                "run `ltx2 models available` for the catalog, or pass a local file path",
            ) from None

    def required(self, pipeline: str, generation: str) -> list[Requirement]:
        """What one pipeline needs for one model generation: a requirement per role."""
        roles = get_pipeline(pipeline).roles_for(generation)
        family = get_family(generation)
        table = self.roles.get(family.name, {})
        missing = [r for r in roles if not table.get(r)]
        if missing:
            raise ConfigError(
                f"the catalog names no {', '.join(missing)} for {family.label}",
                "add them under `roles` in the LTX2_CATALOG file, or unset LTX2_CATALOG",
            )
        return [Requirement(r, tuple(self.get(n) for n in table[r])) for r in roles]

    def alternatives(self, name: str) -> list[Artifact]:
        """Entries that can stand in for `name` (e.g. an ungated copy of a gated repo)."""
        return [a for a in self.artifacts.values() if a.provides == name]

    def to_dict(self) -> dict:
        return {
            "artifacts": [asdict(a) for a in self.artifacts.values()],
            "roles": {g: {r: list(n) for r, n in t.items()} for g, t in self.roles.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> Catalog:
        artifacts = {}
        for raw in data.get("artifacts", []):
            raw = dict(raw)
            raw["files"] = tuple(FileSpec(**f) for f in raw["files"])
            artifact = Artifact(**raw)
            artifacts[artifact.name] = artifact
        roles = {
            get_family(str(g)).name: {r: tuple(n) for r, n in t.items()}
            for g, t in data.get("roles", {}).items()
        }
        return cls(artifacts, roles)


def hash_matches(expected: str, actual: str) -> bool:
    """Compare a sha256 against a full or abbreviated (`head…tail`) expected digest."""
    expected, actual = expected.lower(), actual.lower()
    if "…" in expected or "..." in expected:
        head, _, tail = expected.replace("...", "…").partition("…")
        return actual.startswith(head) and actual.endswith(tail)
    return expected == actual


def human_size(n: int | float) -> str:
    """Decimal units, as the hub and disk tools show them: 27.08 GB, 995.8 MB."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}" if unit in ("TB", "GB") else f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def load_catalog() -> Catalog:
    """The built-in catalog, or the JSON file named by `LTX2_CATALOG`."""
    override = os.environ.get("LTX2_CATALOG")
    if not override:
        return BUILTIN
    path = Path(override).expanduser()
    try:
        return Catalog.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(
            f"cannot read the catalog file {path} named by LTX2_CATALOG: {exc}",
            "fix the file or unset LTX2_CATALOG to use the built-in catalog",
        ) from exc


# -- the built-in table ------------------------------------------------------------------------


def _one(name, kind, gen, repo, file, size, desc, *, sha=None, exact=True, **kw) -> Artifact:
    return Artifact(name, kind, gen, repo, (FileSpec(file, size, sha, exact),), desc, **kw)


_L2, _L23 = "Lightricks/LTX-2", "Lightricks/LTX-2.3"
_MB, _GB, _GIB = 10**6, 10**9, 2**30

_GEMMA_FILES = (
    FileSpec(
        "config.json", 1_611, "72ba569f583e58bfd39e192d859bc0c0905c3d08b2d0d4e520b7f8543fc87cdc"
    ),
    FileSpec("generation_config.json", 173),
    FileSpec("added_tokens.json", 35),
    FileSpec("chat_template.json", 1_615),
    FileSpec("preprocessor_config.json", 570),
    FileSpec("processor_config.json", 70),
    FileSpec("special_tokens_map.json", 662),
    FileSpec("tokenizer_config.json", 1_157_001),
    FileSpec("tokenizer.json", 33_384_570),
    FileSpec("tokenizer.model", 4_689_074),
    FileSpec("model.safetensors.index.json", 108_605),
    FileSpec(
        "model-00001-of-00005.safetensors",
        4_979_902_192,
        "e6fb899db428481aafb45a20130457df6e247e7cb03b7d9f01ee4bc2a9a08138",
    ),
    FileSpec(
        "model-00002-of-00005.safetensors",
        4_931_296_592,
        "d251e7fe9799d529405ddb61705a44cd700bd30a8b66a8d44ae26ddf8365dbc6",
    ),
    FileSpec(
        "model-00003-of-00005.safetensors",
        4_931_296_656,
        "0684ef801385f0669a0b3e4ab160c50877efdbfa40eb97788595985de2743e78",
    ),
    FileSpec(
        "model-00004-of-00005.safetensors",
        4_931_296_656,
        "b4b964e6526f81ccfa625c900b72ce92d5e0fd2debb75998763038ad06b9c541",
    ),
    FileSpec(
        "model-00005-of-00005.safetensors",
        4_601_000_928,
        "4ef2de8f93e165b4e02425769fc566000b0674256ef0c3a27b23a0d45eb12088",
    ),
)


def _ic19(kind: str, size: int | None, desc: str, *, file_kind: str | None = None) -> Artifact:
    title = "-".join(p.capitalize() for p in kind.split("-"))
    repo = f"Lightricks/LTX-2-19b-IC-LoRA-{title}" + ("-Control" if file_kind else "")
    file = f"ltx-2-19b-ic-lora-{file_kind or kind}.safetensors"
    name = f"ltx-2-19b-ic-lora-{kind}"
    return _one(name, "lora", GEN_2_0, repo, file, size, desc, exact=False, gated=None)


def _camera(move: str, size: int) -> Artifact:
    title = "-".join(p.capitalize() for p in move.split("-"))
    return _one(
        f"ltx-2-19b-lora-camera-{move}",
        "lora",
        GEN_2_0,
        f"Lightricks/LTX-2-19b-LoRA-Camera-Control-{title}",
        f"ltx-2-19b-lora-camera-control-{move}.safetensors",
        size,
        f"camera LoRA: {move.replace('-', ' ')}",
        exact=False,
        gated=None,
    )


def _ic23(name: str, repo_kind: str, file: str, size: int, desc: str, **kw) -> Artifact:
    return _one(
        f"ltx-2.3-22b-ic-lora-{name}",
        "lora",
        GEN_2_3,
        f"Lightricks/LTX-2.3-22b-IC-LoRA-{repo_kind}",
        file,
        size,
        desc,
        **kw,
    )


_ARTIFACTS: list[Artifact] = [
    # LTX-2 (19B)
    _one("ltx-2-19b-dev", "checkpoint", GEN_2_0, _L2, "ltx-2-19b-dev.safetensors", 43_300 * _MB,
         "dev checkpoint, bf16", exact=False),
    _one("ltx-2-19b-dev-fp8", "checkpoint", GEN_2_0, _L2, "ltx-2-19b-dev-fp8.safetensors",
         27_078_716_018, "dev checkpoint, fp8", sha="8a67e709…760d"),
    _one("ltx-2-19b-dev-fp4", "checkpoint", GEN_2_0, _L2, "ltx-2-19b-dev-fp4.safetensors", 20 * _GB,
         "dev checkpoint, NVFP4 (Blackwell)", exact=False, gated=None),
    _one("ltx-2-19b-distilled", "checkpoint", GEN_2_0, _L2, "ltx-2-19b-distilled.safetensors",
         43_333_932_124, "distilled checkpoint, bf16"),
    _one("ltx-2-19b-distilled-fp8", "checkpoint", GEN_2_0, _L2,
         "ltx-2-19b-distilled-fp8.safetensors", 27_078_716_346,
         "distilled checkpoint, fp8 (a second upload is 27,127,589,812 B)", exact=False),
    _one("ltx-2-spatial-upscaler-x2", "upsampler", GEN_2_0, _L2,
         "ltx-2-spatial-upscaler-x2-1.0.safetensors", 995_765_578, "spatial latent upscaler x2",
         sha="3160fabf…36de"),
    _one("ltx-2-temporal-upscaler-x2", "upsampler", GEN_2_0, _L2,
         "ltx-2-temporal-upscaler-x2-1.0.safetensors", 261_965_800,
         "temporal latent upscaler x2"),
    _one("ltx-2-19b-distilled-lora-384", "lora", GEN_2_0, _L2,
         "ltx-2-19b-distilled-lora-384.safetensors", 7_674_558_424,
         "distilled LoRA (rank 384) for the dev checkpoint", sha="2718f895…3534"),
    _ic19("canny", 654 * _MB, "IC-LoRA: canny edges", file_kind="canny-control"),
    _ic19("depth", 654 * _MB, "IC-LoRA: depth", file_kind="depth-control"),
    _ic19("pose", 654 * _MB, "IC-LoRA: pose", file_kind="pose-control"),
    _ic19("detailer", 2_620 * _MB, "IC-LoRA: video detailer"),
    _one("ltx-2-19b-ic-lora-union", "lora", GEN_2_0, "Lightricks/LTX-2-19b-IC-LoRA-Union-Control",
         "ltx-2-19b-ic-lora-union-control-ref0.5.safetensors", None,
         "IC-LoRA: union depth/pose/edges (size unknown)", exact=False, gated=None),
    *[_camera(m, 327 * _MB) for m in ("dolly-in", "dolly-left", "dolly-out", "dolly-right")],
    *[_camera(m, 2_210 * _MB) for m in ("jib-down", "jib-up", "static")],
    # LTX-2.3 (22B)
    _one("ltx-2.3-22b-dev", "checkpoint", GEN_2_3, _L23, "ltx-2.3-22b-dev.safetensors",
         46_149_344_974, "dev checkpoint, bf16",
         sha="7ab7225325bc403448ea84b6db2269811a880e5118cd2ee2b6282a93d585016f"),
    _one("ltx-2.3-22b-distilled", "checkpoint", GEN_2_3, _L23,
         "ltx-2.3-22b-distilled-1.1.safetensors", 46_149_345_334,
         "distilled checkpoint v1.1, bf16",
         sha="b33b7fe4bbfe084f484be4aaf90b0f1d95dca20d403ac4c0e037eb8c4f0af7cc"),
    _one("ltx-2.3-22b-distilled-1.0", "checkpoint", GEN_2_3, _L23,
         "ltx-2.3-22b-distilled.safetensors", 46_149_345_038, "distilled checkpoint v1.0, bf16",
         superseded_by="ltx-2.3-22b-distilled"),
    _one("ltx-2.3-22b-dev-fp8", "checkpoint", GEN_2_3, "Lightricks/LTX-2.3-fp8",
         "ltx-2.3-22b-dev-fp8.safetensors", 29_145_431_166, "dev checkpoint, fp8",
         sha="28606c5b5a06ce56f896d4dfcb20f212739e07a68fbe48e53638188449d26450"),
    _one("ltx-2.3-22b-distilled-fp8", "checkpoint", GEN_2_3, "Lightricks/LTX-2.3-fp8",
         "ltx-2.3-22b-distilled-fp8.safetensors", 29_531_884_062, "distilled checkpoint, fp8",
         sha="d9646b6f2d5c42d337b23671634c43bfeece6989644f51b4a3aa088465ccd3b2"),
    _one("ltx-2.3-22b-dev-nvfp4", "checkpoint", GEN_2_3, "Lightricks/LTX-2.3-nvfp4",
         "ltx-2.3-22b-dev-nvfp4.safetensors", int(20.21 * _GIB),
         "dev checkpoint, NVFP4 (Blackwell)", exact=False, gated=None),
    _one("ltx-2.3-22b-distilled-lora-384", "lora", GEN_2_3, _L23,
         "ltx-2.3-22b-distilled-lora-384-1.1.safetensors", 7_605_507_256,
         "distilled LoRA v1.1 (rank 384) for the dev checkpoint",
         sha="f5d4953f3386197a4b4f5abdb17616ff256171e8075c111d6e7d2dfa6e823b3a"),
    _one("ltx-2.3-22b-distilled-lora-384-1.0", "lora", GEN_2_3, _L23,
         "ltx-2.3-22b-distilled-lora-384.safetensors", 7_605_507_256, "distilled LoRA v1.0",
         superseded_by="ltx-2.3-22b-distilled-lora-384"),
    _one("ltx-2.3-spatial-upscaler-x2", "upsampler", GEN_2_3, _L23,
         "ltx-2.3-spatial-upscaler-x2-1.1.safetensors", 995_743_560,
         "spatial latent upscaler x2 v1.1",
         sha="5f416311fa8172b65af67530758964708d29a317b830d689a51143b7f91913ed"),
    _one("ltx-2.3-spatial-upscaler-x1.5", "upsampler", GEN_2_3, _L23,
         "ltx-2.3-spatial-upscaler-x1.5-1.0.safetensors", 1_090_125_794,
         "spatial latent upscaler x1.5"),
    _one("ltx-2.3-temporal-upscaler-x2", "upsampler", GEN_2_3, _L23,
         "ltx-2.3-temporal-upscaler-x2-1.0.safetensors", 261_944_000,
         "temporal latent upscaler x2"),
    _ic23("union", "Union-Control", "ltx-2.3-22b-ic-lora-union-control-ref0.5.safetensors",
          654_465_352, "IC-LoRA: canny/depth/pose",
          sha="a1b888a87f661d27f08b394ae559e8e1050be33900bcc36a5cdf659e48f88d18"),
    _ic23("motion-track", "Motion-Track-Control",
          "ltx-2.3-22b-ic-lora-motion-track-control-ref0.5.safetensors", 300 * _MB,
          "IC-LoRA: motion tracks", exact=False, gated=None),
    _ic23("hdr", "HDR", "ltx-2.3-22b-ic-lora-hdr-0.9.safetensors", 330 * _MB,
          "IC-LoRA: SDR to HDR", exact=False, gated=None),
    _ic23("dubit", "DubIt", "ltx-2.3-22b-ic-lora-dubit-0.9.safetensors", 2_470 * _MB,
          "IC-LoRA: dubbing (formerly LipDub)", exact=False, gated=None),
    *[
        _ic23(f"pixel-upscaler-{f}", "Pixel-Spatial-Upscaler",
              f"ltx-2.3-22b-ic-lora-pixel-spatial-upscaler-{f}-0.9.safetensors", 650 * _MB,
              f"IC-LoRA: pixel-space upscale {f}", exact=False, gated=None)
        for f in ("x2", "x4")
    ],
    _ic23("ingredients", "Ingredients", "ltx-2.3-22b-ic-lora-ingredients-0.9.safetensors",
          1_308_778_338, "IC-LoRA: reference ingredients", gated=True,
          sha="515e4e139001ac6282357a5b35372e42e98b3affd5fcc886a52242abeed19559"),
    _ic23("in-outpainting", "In-Outpainting",
          "ltx-2.3-22b-ic-lora-in-outpainting-0.9.safetensors", 1_308_778_338,
          "IC-LoRA: in/outpainting", gated=True,
          sha="73dd0841c0d4f0eb26fb1f017781b841b2752021944ac5ecefe57917f6dae6b5"),
    *[
        _ic23(k, t, f"ltx-2.3-22b-ic-lora-{k}-0.9.safetensors", 906_071_437, f"IC-LoRA: {k}",
              gated=True)
        for k, t in (("deblur", "Deblur"), ("decompression", "Decompression"),
                     ("colorization", "Colorization"), ("water-simulation", "Water-Simulation"))
    ],
    _ic23("day-to-night", "Day-To-Night", "ltx-2.3-22b-ic-lora-day-to-night-0.9.safetensors",
          327_309_305, "IC-LoRA: day to night", gated=True),
    _ic23("cross-eyed", "Cross-Eyed", "ltx-2.3-22b-ic-lora-cross-eyed-0.9.safetensors",
          327_309_305, "IC-LoRA: cross-eyed effect", gated=True),
    _ic23("clean-plate", "Clean-Plate", "ltx-2.3-22b-ic-lora-clean-plate-1.0.safetensors",
          327_309_305, "IC-LoRA: clean plate (object removal)", gated=True),
    _ic23("instant-shave", "Instant-Shave", "ltx-2.3-22b-ic-lora-instant-shave-0.9.safetensors",
          654_465_349, "IC-LoRA: instant shave", gated=True,
          sha="04231f1befeda653ab98081dd0f58114b9bc71782cdc687239a1610a39a9b0a2"),
    _one("ltx-2.3-22b-lora-cinemagraph", "lora", GEN_2_3, "Lightricks/LTX-2.3-22b-LoRA-Cinemagraph",
         "ltx-2.3-22b-lora-cinemagraph-0.9.safetensors", 201_453_416,
         "LoRA: image-to-video cinemagraph", gated=True),
    # Gemma 3 12B text encoder (both generations): the whole repository
    Artifact("gemma-3-12b", "text-encoder", ANY_GENERATION,
             "google/gemma-3-12b-it-qat-q4_0-unquantized",
             _GEMMA_FILES, "Gemma 3 12B text encoder (whole repository)",
             licence=GEMMA_LICENCE, gated=True),
    Artifact("gemma-3-12b-lightricks", "text-encoder", ANY_GENERATION,
             "Lightricks/gemma-3-12b-it-qat-q4_0-unquantized",
             tuple(FileSpec(f.name, f.size, None, exact=False) for f in _GEMMA_FILES),
             "ungated Lightricks copy of gemma-3-12b (identity with Google's files unverified)",
             licence=GEMMA_LICENCE, gated=False, provides="gemma-3-12b"),
]  # fmt: skip


def _roles(gen: str) -> dict[str, tuple[str, ...]]:
    prefix = "ltx-2-19b" if gen == GEN_2_0 else "ltx-2.3-22b"
    upsampler = "ltx-2-spatial-upscaler-x2" if gen == GEN_2_0 else "ltx-2.3-spatial-upscaler-x2"
    ic_loras = ("canny", "depth", "pose", "detailer", "union") if gen == GEN_2_0 else (
        "union", "motion-track")  # fmt: skip
    return {
        CHECKPOINT: (f"{prefix}-dev", f"{prefix}-dev-fp8"),
        DISTILLED_CHECKPOINT: (f"{prefix}-distilled", f"{prefix}-distilled-fp8"),
        DISTILLED_LORA: (f"{prefix}-distilled-lora-384",),
        SPATIAL_UPSAMPLER: (upsampler,),
        IC_LORA: tuple(f"{prefix}-ic-lora-{k}" for k in ic_loras),
        # Google's repo is the one the official docs name; the Lightricks copy is ungated.
        TEXT_ENCODER: ("gemma-3-12b", "gemma-3-12b-lightricks"),
    }


BUILTIN = Catalog({a.name: a for a in _ARTIFACTS}, {g: _roles(g) for g in (GEN_2_0, GEN_2_3)})
