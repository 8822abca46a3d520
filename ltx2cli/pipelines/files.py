"""Which files a job reads: every model role resolved to a path and checked from its header.

Nothing here reads tensor data. `resolve_files(job)` resolves `--model` (a catalog name, an
imported name, a path, `demo`, or `auto` = the pipeline's own catalog entry), the text encoder,
the upsampler and the distilled LoRA (two-stage pipelines), and the user LoRAs, then checks
that the checkpoint is an LTX-2 file and that every LoRA is a LoRA whose pairs fit the
checkpoint's transformer. Each failure is one `UsageError` that names the file and the fix.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from ltx2cli.errors import CheckpointError, UsageError
from ltx2cli.families import DEFAULT_GENERATION
from ltx2cli.hub.resolve import is_demo, resolve_model, role_path
from ltx2cli.pipelines import registry
from ltx2cli.pipelines.job import DEFAULT_DISTILLED_LORA_STRENGTH, Job, LoraInput

_PAIR = re.compile(r"^(?P<module>.+)\.(?P<kind>lora_A|lora_B|lora_down|lora_up)(\.[^.]+)?\.weight$")
_LORA_PREFIXES = ("base_model.model.", "model.diffusion_model.", "diffusion_model.", "transformer.")


@dataclass(frozen=True)
class ResolvedLora:
    name: str  # as the user typed it (or the catalog name)
    path: Path
    strength: float


@dataclass(frozen=True)
class ModelFiles:
    checkpoint: Path
    text_encoder: Path
    generation: str
    upsampler: Path | None = None
    distilled_lora: ResolvedLora | None = None
    loras: tuple[ResolvedLora, ...] = ()
    names: dict[str, str] = field(default_factory=dict)  # role -> what the user chose
    demo: bool = False

    def all_files(self) -> dict[str, Path]:
        """Every file by role (LoRAs as `lora:NAME`)."""
        out = {"checkpoint": self.checkpoint, "text_encoder": self.text_encoder}
        if self.upsampler is not None:
            out["upsampler"] = self.upsampler
        if self.distilled_lora is not None:
            out["distilled_lora"] = self.distilled_lora.path
        out.update({f"lora:{lora.name}": lora.path for lora in self.loras})
        return out


def resolve_files(job: Job) -> ModelFiles:
    """Resolve and check every model file of `job` (headers only)."""
    pipeline = job.settings.pipeline
    roles = registry.get_pipeline(pipeline).roles
    model = job.settings.model
    demo = None
    if is_demo(model):
        from ltx2cli.pipelines.demo import ensure_demo

        demo = ensure_demo()
    checkpoint_role = next(r for r in roles if r.endswith(registry.CHECKPOINT))
    if demo is not None:
        checkpoint = demo.checkpoint
    elif model == "auto":
        checkpoint = role_path(pipeline, DEFAULT_GENERATION, checkpoint_role)
    else:
        checkpoint = resolve_model(model, kind="checkpoint")
    generation = check_checkpoint(checkpoint)

    def default(role: str, demo_path: Path | None) -> str:
        """The demo's file, or the installed catalog artifact filling `role` (or the pull)."""
        if demo_path is not None:
            return str(demo_path)
        return str(role_path(pipeline, generation, role))

    names = {"checkpoint": model if model != "auto" else str(checkpoint)}
    names["text_encoder"] = job.text_encoder or default(
        registry.TEXT_ENCODER, demo and demo.text_encoder
    )
    text_encoder = resolve_model(names["text_encoder"], kind="text-encoder")

    upsampler = None
    if registry.SPATIAL_UPSAMPLER in roles:
        names["upsampler"] = job.upsampler or default(
            registry.SPATIAL_UPSAMPLER, demo and demo.upsampler
        )
        upsampler = resolve_model(names["upsampler"], kind="upsampler")
        if _kind(upsampler) != "upsampler":
            raise UsageError(
                f"--upsampler {upsampler.name} is not a latent upsampler file",
                "pass a spatial upscaler, e.g. ltx-2.3-spatial-upscaler-x2",
            )

    distilled = None
    if registry.DISTILLED_LORA in roles:
        chosen = job.distilled_lora or LoraInput(
            default(registry.DISTILLED_LORA, demo and demo.distilled_lora),
            DEFAULT_DISTILLED_LORA_STRENGTH,
        )
        names["distilled_lora"] = chosen.name
        distilled = _resolve_lora(chosen, checkpoint, generation, "--distilled-lora")
    loras = tuple(_resolve_lora(lora, checkpoint, generation, "--lora") for lora in job.loras)
    return ModelFiles(
        checkpoint=checkpoint,
        text_encoder=text_encoder,
        generation=generation,
        upsampler=upsampler,
        distilled_lora=distilled,
        loras=loras,
        names=names,
        demo=demo is not None,
    )


def _kind(path: Path) -> str:
    from ltx2cli.models.checkpoint import read_checkpoint

    try:
        return read_checkpoint(path).kind
    except CheckpointError as exc:
        raise UsageError(f"{path.name} is not a safetensors file ({exc.message})") from None


def check_checkpoint(path: Path) -> str:
    """The generation of an LTX-2 checkpoint; a one-line error for anything else."""
    from ltx2cli.models.checkpoint import read_checkpoint

    hint = "pass an LTX-2 / LTX-2.3 checkpoint (see `ltx2 models available`)"
    if path.is_dir():
        raise UsageError(f"--model {path} is a folder, not a checkpoint file", hint)
    try:
        info = read_checkpoint(path)
        kind = info.kind
        if kind != "monolithic":
            what = {"lora": "a LoRA", "upsampler": "an upsampler"}.get(kind, "not an LTX-2 file")
            raise UsageError(f"--model {path.name} is {what}, not an LTX-2 checkpoint", hint)
        info.require_config()
        return info.generation
    except CheckpointError as exc:
        raise UsageError(f"--model {path.name}: {exc.message}", exc.hint or hint) from None


def _resolve_lora(lora: LoraInput, checkpoint: Path, generation: str, flag: str) -> ResolvedLora:
    from ltx2cli.models.checkpoint import TRANSFORMER_PREFIX, read_checkpoint

    path = resolve_model(lora.name, kind="lora")
    try:
        info = read_checkpoint(path)
    except CheckpointError as exc:
        raise UsageError(f"{flag} {path.name}: {exc.message}", "pass a LoRA .safetensors") from None
    if info.kind != "lora":
        raise UsageError(f"{flag} {path.name} is not a LoRA file", "pass a LoRA .safetensors file")
    base = read_checkpoint(checkpoint).tensors
    fitting = misfits = 0
    for key, tensor in info.tensors.items():
        match = _PAIR.match(key)
        if not match or match["kind"] not in ("lora_A", "lora_down"):
            continue
        module = match["module"]
        for prefix in _LORA_PREFIXES:
            module = module.removeprefix(prefix)
        weight = base.get(f"{TRANSFORMER_PREFIX}{module}.weight")
        if weight is not None and len(weight.shape) == 2 and weight.shape[1] == tensor.shape[-1]:
            fitting += 1
        else:
            misfits += 1
    if misfits or not fitting:
        raise UsageError(
            f"{flag} {path.name} does not fit this LTX-{generation} checkpoint "
            f"({misfits} of {fitting + misfits} layers differ)",
            "use a LoRA trained for this model generation",
        )
    return ResolvedLora(lora.name, path, lora.strength)


def fingerprint(path: Path) -> str:
    """A short hash of a file's safetensors header and size (a folder: of its config.json):
    tells files apart in a sidecar without reading gigabytes."""
    digest = hashlib.sha256()
    if path.is_dir():
        config = path / "config.json"
        digest.update(config.read_bytes() if config.is_file() else str(path).encode())
    else:
        with path.open("rb") as handle:
            head = handle.read(8)
            (length,) = struct.unpack("<Q", head) if len(head) == 8 else (0,)
            digest.update(head + handle.read(min(length, 100 * 1024**2)))
        digest.update(str(path.stat().st_size).encode())
    return digest.hexdigest()[:12]
