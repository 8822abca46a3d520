"""`ic-lora`: video-to-video with an IC-LoRA and a reference video (§10.5), on the distilled
checkpoint.

Stage 1 (8 distilled steps at half size) runs with the user's LoRAs (the IC-LoRA among them)
and the reference video appended as clean tokens: read at the stage-1 size divided by the
IC-LoRA's `reference_downscale_factor` (safetensors metadata), VAE-encoded, its spatial
positions multiplied back onto the target's frame; an optional mask video (or a strength below
1) weights attention between the target and the reference. The reference tokens are dropped
before upsampling. Stage 2 (x2 upsampling, 3 distilled steps) has no reference and no LoRAs,
as the reference does; `--skip-stage-2` decodes stage 1 at half size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ltx2cli.diffusion.conditioning import AttentionStrength, ReferenceVideo, pixel_mask_to_latent
from ltx2cli.diffusion.denoisers import SimpleDenoiser
from ltx2cli.diffusion.patchify import VideoLatentShape
from ltx2cli.diffusion.schedules import distilled_sigmas
from ltx2cli.errors import UsageError
from ltx2cli.media.video import read_video
from ltx2cli.pipelines import stages
from ltx2cli.pipelines.job import Job, LoraInput
from ltx2cli.pipelines.run import Context, Result
from ltx2cli.pipelines.stages import Grids

STAGES = ("prompt", "stage 1", "upsample", "stage 2", "decode")
#: The safetensors metadata key an IC-LoRA states its reference's downscale factor in.
DOWNSCALE_KEY = "reference_downscale_factor"


@dataclass(frozen=True)
class ICLoraJob(Job):
    """A generation guided by `reference` (at `reference_strength`) through an IC-LoRA, with an
    optional attention `mask` video scaled by `mask_strength`."""

    reference: Path = Path()
    reference_strength: float = 1.0
    mask: Path | None = None
    mask_strength: float = 1.0
    skip_stage_2: bool = False

    def check(self, files) -> None:
        check_reference(self, [lora.path for lora in files.loras])


def parse_spec(spec: str, flag: str) -> tuple[Path, float]:
    """`PATH[:STRENGTH]` with STRENGTH in [0, 1] (split as `--lora` specs are)."""
    parsed = LoraInput.parse(spec)
    path, strength = Path(parsed.name), parsed.strength
    if not (math.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise UsageError(f"{flag} strength {strength:g} is outside 0..1", "use e.g. 1.0 or 0.8")
    return path.expanduser(), strength


def lora_downscale_factor(paths: Sequence[Path]) -> int | None:
    """The reference downscale factor the LoRAs' metadata state (None: none states one); two
    different factors other than 1 are an error (headers only)."""
    from ltx2cli.models.checkpoint import read_checkpoint

    factors: dict[int, str] = {}
    for path in paths:
        value = read_checkpoint(path).metadata.get(DOWNSCALE_KEY)
        if value is None:
            continue
        try:
            factor = int(float(value))
        except (TypeError, ValueError):
            raise UsageError(f"{path.name}: {DOWNSCALE_KEY} {value!r} is not a number") from None
        if factor < 1:
            raise UsageError(f"{path.name}: {DOWNSCALE_KEY} {factor} is below 1")
        factors[factor] = path.name
    if len([f for f in factors if f != 1]) > 1:
        named = ", ".join(f"{name} ({f})" for f, name in factors.items())
        raise UsageError(
            f"the LoRAs state conflicting {DOWNSCALE_KEY} values: {named}",
            "use IC-LoRAs trained with the same reference size",
        )
    if not factors:
        return None
    return max(factors)


def check_reference(job: ICLoraJob, lora_paths: Sequence[Path]) -> int:
    """Check the reference (and mask) videos and return the downscale factor, before any
    weights load. A reference smaller than stage 1 needs the factor from the IC-LoRA."""
    from ltx2cli.errors import MediaError
    from ltx2cli.media.video import probe_video

    s = job.settings
    infos = {}
    for flag, path in (("--reference-video", job.reference), ("--reference-mask", job.mask)):
        if path is None:
            continue
        if not path.is_file():
            raise UsageError(f"{flag} {path}: no such file", "check the path")
        try:
            infos[flag] = probe_video(path)
        except MediaError as exc:
            raise UsageError(f"{flag} {path}: {exc.message}", exc.hint) from None
    if not lora_paths:
        raise UsageError("--reference-video needs an IC-LoRA", "pass it with --lora PATH")
    half_h, half_w = s.height // 2, s.width // 2
    factor = lora_downscale_factor(lora_paths)
    ref = infos["--reference-video"]
    if factor is None:
        if ref.height < half_h or ref.width < half_w:
            raise UsageError(
                f"--reference-video {job.reference.name} ({ref.width}x{ref.height}) is smaller "
                f"than stage 1's {half_w}x{half_h}, and no --lora states its {DOWNSCALE_KEY}",
                f"add {DOWNSCALE_KEY} to the IC-LoRA's metadata, or pass a reference of at "
                f"least {half_w}x{half_h}",
            )
        factor = 1
    if half_h % factor or half_w % factor or (half_h // factor) % 32 or (half_w // factor) % 32:
        raise UsageError(
            f"{s.width}x{s.height} does not fit the IC-LoRA's {DOWNSCALE_KEY} {factor}: the "
            f"reference at {half_w / factor:g}x{half_h / factor:g} is off the 32-pixel grid",
            f"use a width and height that are multiples of {64 * factor}",
        )
    return factor


def reference_item(ctx: Context, factor: int, half: Grids):
    """The reference video encoded at the stage-1 size / `factor`, appended (wrapped in an
    attention weight when a mask is given or the strength is below 1)."""
    import torch

    job: ICLoraJob = ctx.job
    s = ctx.settings
    height, width = s.height // 2 // factor, s.width // 2 // factor
    frames = read_video(job.reference, max_frames=s.num_frames, size=(height, width)).frames
    frames = frames[: (frames.shape[0] - 1) // 8 * 8 + 1]  # the VAE encodes 8k+1 frames
    latent = stages.encode_video(ctx.ledger, frames)
    item = ReferenceVideo(latent, factor, job.reference_strength)
    if job.mask is not None:
        mask = read_video(job.mask, max_frames=frames.shape[0], size=(s.height // 2, s.width // 2))
        pixels = ((mask.frames.mean(dim=1) + 1) / 2).clamp(0, 1)[None]  # [1, F, H, W] in [0, 1]
        weight = pixel_mask_to_latent(pixels.to(torch.float32), VideoLatentShape.of(latent))
        return AttentionStrength(item, weight * job.mask_strength)
    if job.reference_strength < 1.0:
        return AttentionStrength(item, job.reference_strength)
    return item


def run(ctx: Context) -> Result:
    job: ICLoraJob = ctx.job
    s, ledger = ctx.settings, ctx.ledger
    channels = stages.latent_channels(ledger)
    half, full = Grids.of(s, channels, ctx.compat, 2), Grids.of(s, channels, ctx.compat)
    factor = check_reference(job, [lora.path for lora in ctx.files.loras])

    # 1. The prompt alone → contexts (the reference CLI does not enhance here).
    prompts = ctx.prompts(negative=False)

    def simple(model):
        return SimpleDenoiser(model, prompts.positive)

    # 2. Stage 1 at half size with the user's LoRAs: images, then the reference appended.
    with ctx.timings.stage("stage 1", ctx.report):
        items = [*ctx.images(2), reference_item(ctx, factor, half)]
        ledger.free("video_encoder")
        states = stages.initial_states(half, items, ctx.generator, ledger)
        sigmas = distilled_sigmas(1)
        states = stages.denoise(ledger, states, sigmas, simple, ctx.report, loras=ctx.files.loras)
        stage1 = stages.final_latents(states, half)  # the reference tokens are dropped here

    if job.skip_stage_2:
        video, audio = ctx.decode(stage1.video, stage1.audio)
        latents = stages.named_latents(None, stage1)
        return Result(video, audio, s.frame_rate, latents, prompts.enhanced)

    # 3-4. Upsample x2, images at full size, 3 distilled steps without any LoRA.
    final = ctx.refine(stage1, full, simple, ())

    # 5. Decode the video and the final audio.
    video, audio = ctx.decode(final.video, final.audio)
    return Result(video, audio, s.frame_rate, stages.named_latents(stage1, final), prompts.enhanced)
