"""Training strategies: what is noised, what conditions, and which tokens the loss sees (§3, §4).

- Every config strategy becomes one `StrategySpec`: per modality (video, audio) whether it is
  generated, the batch key of its latents and its conditions. The legacy `text_to_video`
  and `video_to_video` strategies are the flexible strategy with their fixed conditions and,
  for text_to_video, one σ shared by both modalities.
- Generated modality: σ from the sampler (its own token count → its own shift), noise from
  the global RNG, `x_t = (1−σ)·x0 + σ·ε`, target `ε − x0`, per-token timesteps σ.
  Frozen modality: clean latents, σ = 0, timesteps 0, no target.
- Intrinsic conditions (first_frame, prefix, suffix, spatial_crop, mask) mark tokens that stay
  clean, get timestep 0 and leave the loss; each sample draws each condition with its
  probability. Reference conditions (IC-LoRA) prepend clean reference tokens (one draw per
  batch) whose positions are rescaled by the inferred spatial / temporal factors.
- The loss is the MSE over the last L_target tokens where the loss mask is set, per sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ltx2cli.diffusion.patchify import (
    AudioLatentShape,
    ScaleFactors,
    VideoLatentShape,
    audio_positions,
    patchify_audio,
    patchify_video,
    video_positions,
)
from ltx2cli.errors import UsageError
from ltx2cli.models.transformer import Modality
from ltx2cli.train import config as cfg

DEFAULT_FPS = 24.0
MIN_MASK_MEAN = 1e-8
VIDEO, AUDIO = "video", "audio"


@dataclass(frozen=True)
class ModalitySpec:
    generated: bool
    key: str  # batch key of the latents
    conditions: tuple[Any, ...] = ()  # config condition models (with their batch keys)


@dataclass(frozen=True)
class StrategySpec:
    video: ModalitySpec | None
    audio: ModalitySpec | None
    shared_sigma: bool = False  # legacy text_to_video: one σ for both modalities


def strategy_spec(strategy: Any) -> StrategySpec:
    """The one flexible description of any configured strategy."""
    if isinstance(strategy, cfg.TextToVideoConfig):
        first = cfg.FirstFrameCondition(
            type="first_frame", probability=strategy.first_frame_conditioning_p
        )
        audio = ModalitySpec(True, "audio_latents") if strategy.with_audio else None
        return StrategySpec(ModalitySpec(True, "latents", (first,)), audio, shared_sigma=True)
    if isinstance(strategy, cfg.VideoToVideoConfig):
        first = cfg.FirstFrameCondition(
            type="first_frame", probability=strategy.first_frame_conditioning_p
        )
        ref = cfg.ReferenceCondition(type="reference", latents_dir="ref_latents")
        return StrategySpec(ModalitySpec(True, "latents", (first, ref)), None)
    specs = {}
    for name in (VIDEO, AUDIO):
        m = getattr(strategy, name)
        specs[name] = (
            None
            if m is None
            else ModalitySpec(m.is_generated, f"{name}_latents", tuple(m.conditions))
        )
    return StrategySpec(specs[VIDEO], specs[AUDIO])


@dataclass
class Prepared:
    """The transformer inputs and what the loss needs, per modality."""

    video: Modality | None
    audio: Modality | None
    targets: dict[str, torch.Tensor] = field(default_factory=dict)  # (B, L, C) per generated
    loss_masks: dict[str, torch.Tensor] = field(default_factory=dict)  # (B, L + refs) bool
    sigmas: dict[str, torch.Tensor] = field(default_factory=dict)  # (B,)
    metadata: dict[str, str] = field(default_factory=dict)  # for the LoRA file


class Strategy:
    def __init__(self, spec: StrategySpec, sampler: Any, scale: ScaleFactors) -> None:
        self.spec, self.sampler, self.scale = spec, sampler, scale
        self.metadata: dict[str, str] = {}

    # -- inputs --------------------------------------------------------------------------------
    def prepare(
        self,
        batch: dict[str, Any],
        video_context: torch.Tensor,
        audio_context: torch.Tensor,
        context_mask: torch.Tensor | None,
    ) -> Prepared:
        out = Prepared(None, None)
        shared: torch.Tensor | None = None
        for name, spec in ((VIDEO, self.spec.video), (AUDIO, self.spec.audio)):
            if spec is None:
                continue
            item = batch[spec.key]
            if name == VIDEO:
                x0, positions, per_frame = self._video(item)
            else:
                x0, positions, per_frame = self._audio(item)
            b, n, _ = x0.shape
            context = video_context if name == VIDEO else audio_context
            loss_mask = torch.ones(b, n, dtype=torch.bool, device=x0.device)
            if spec.generated:
                if self.spec.shared_sigma and shared is not None:
                    sigma = shared
                else:
                    sigma = self.sampler.sample(x0).to(x0.device, torch.float32)
                    shared = sigma
                noise = torch.randn_like(x0)
                s = sigma.view(-1, 1, 1).to(x0.dtype)
                latent = (1 - s) * x0 + s * noise
                out.targets[name] = noise - x0
                timesteps = sigma.view(-1, 1).expand(b, n).clone()
                keep = self._intrinsic(spec, batch, b, n, per_frame, x0.device)
                if keep is not None:
                    latent = torch.where(keep.unsqueeze(-1), x0, latent)
                    timesteps = timesteps * (~keep).float()
                    loss_mask &= ~keep
            else:
                sigma = torch.zeros(b, device=x0.device)
                latent, timesteps = x0, torch.zeros(b, n, device=x0.device)
            for c in spec.conditions if spec.generated else ():
                if not isinstance(c, cfg.ReferenceCondition) or not torch.rand(()) < c.probability:
                    continue
                # Clean reference tokens go first: timestep 0, outside the loss.
                ref, ref_pos = self._reference(name, batch[c.latents_dir], item)
                latent = torch.cat([ref, latent], dim=1)
                positions = torch.cat([ref_pos, positions], dim=2)
                timesteps = torch.cat(
                    [torch.zeros(b, ref.shape[1], device=x0.device), timesteps], 1
                )
                off = torch.zeros(b, ref.shape[1], dtype=torch.bool, device=x0.device)
                loss_mask = torch.cat([off, loss_mask], dim=1)
            modality = Modality(
                latent=latent,
                sigma=sigma,
                timesteps=timesteps,
                positions=positions,
                context=context,
                context_mask=context_mask,
            )
            setattr(out, name, modality)
            out.sigmas[name] = sigma
            if spec.generated:
                out.loss_masks[name] = loss_mask
        out.metadata = dict(self.metadata)
        return out

    def _video(self, item: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, int]:
        latents = item["latents"]
        shape = VideoLatentShape.of(latents)
        fps = _fps_list(item, latents.shape[0])
        positions = torch.cat(
            [
                video_positions(
                    VideoLatentShape(1, *shape.size[1:]),
                    fps[i],
                    scale=self.scale,
                    device=latents.device,
                )
                for i in range(shape.batch)
            ]
        )
        return patchify_video(latents), positions, shape.tokens_per_frame

    def _audio(self, item: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, int]:
        latents = item["latents"]
        shape = AudioLatentShape.of(latents)
        positions = audio_positions(shape, device=latents.device)
        return patchify_audio(latents), positions, 1

    def _intrinsic(
        self, spec: ModalitySpec, batch: dict[str, Any], b: int, n: int, per_frame: int, device
    ) -> torch.Tensor | None:
        """Union of the drawn intrinsic conditions' kept-token masks (B, N), or None."""
        keep: torch.Tensor | None = None
        for c in spec.conditions:
            if isinstance(c, cfg.ReferenceCondition):
                continue
            m = self._condition_mask(c, batch, b, n, per_frame, spec, device)
            drawn = torch.rand(b) < c.probability
            m = m & drawn.to(device).unsqueeze(1)
            keep = m if keep is None else keep | m
        return keep

    def _condition_mask(self, c, batch, b, n, per_frame, spec, device) -> torch.Tensor:
        m = torch.zeros(b, n, dtype=torch.bool, device=device)
        if isinstance(c, cfg.FirstFrameCondition):
            m[:, :per_frame] = True
        elif isinstance(c, cfg.PrefixCondition):
            m[:, : c.temporal_boundary * per_frame] = True
        elif isinstance(c, cfg.SuffixCondition):
            m[:, n - min(n, c.temporal_boundary * per_frame) :] = True
        elif isinstance(c, cfg.SpatialCropCondition):
            latents = batch[spec.key]["latents"]
            _, _, f, h, w = latents.shape
            y1, x1, y2, x2 = c.spatial_region
            ly1, ly2 = (min(max(v // self.scale.height, 0), h) for v in (y1, y2))
            lx1, lx2 = (min(max(v // self.scale.width, 0), w) for v in (x1, x2))
            grid = torch.zeros(f, h, w, dtype=torch.bool, device=device)
            grid[:, ly1:ly2, lx1:lx2] = True
            m[:] = grid.reshape(1, -1)
        elif isinstance(c, cfg.MaskCondition):
            mask = batch[c.mask_dir]["mask"].to(device)
            m = mask.reshape(b, -1) > 0.5
            if m.shape[1] != n:
                raise UsageError(
                    f"the masks in '{c.mask_dir}' have {m.shape[1]} cells for {n} latent tokens",
                    "preprocess the masks together with the latents (ltx2 preprocess)",
                )
        return m

    def _reference(
        self, name: str, ref_item: dict[str, Any], target: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference tokens and positions, rescaled to the target's grid (video)."""
        if name == AUDIO:
            latents = ref_item["latents"]
            return patchify_audio(latents), audio_positions(
                AudioLatentShape.of(latents), device=latents.device
            )
        ref, tgt = ref_item["latents"], target["latents"]
        spatial, temporal = _reference_factors(VideoLatentShape.of(tgt), VideoLatentShape.of(ref))
        if spatial != 1:
            self.metadata["reference_downscale_factor"] = str(spatial)
            self.metadata["reference_spatial_scale_factor"] = str(spatial)
        if temporal != 1:
            self.metadata["reference_temporal_scale_factor"] = str(temporal)
        _, positions, _ = self._video(ref_item)
        positions = positions.clone()
        if spatial != 1:
            positions[:, 1:] = positions[:, 1:] * spatial
        if temporal != 1:
            fps = torch.tensor(_fps_list(target, ref.shape[0]), device=ref.device)
            shift = ((temporal - 1) / fps).view(-1, 1, 1)
            positions[:, 0] = (positions[:, 0] - shift).clamp(min=0)
        return patchify_video(ref), positions

    # -- loss ----------------------------------------------------------------------------------
    def loss(self, prepared: Prepared, predictions: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-sample loss (B,): masked MSE of each generated modality, summed."""
        total: torch.Tensor | None = None
        for name, target in prepared.targets.items():
            length = target.shape[1]
            pred = predictions[name][:, -length:].float()
            mask = prepared.loss_masks[name][:, -length:].float()
            sq = (pred - target.float()) ** 2 * mask.unsqueeze(-1)
            value = sq.mean(dim=(1, 2)) / mask.mean(dim=1).clamp(min=MIN_MASK_MEAN)
            total = value if total is None else total + value
        assert total is not None  # the config guarantees one generated modality
        return total


def _fps_list(item: dict[str, Any], batch: int) -> list[float]:
    fps = item.get("fps")
    if fps is None:
        return [DEFAULT_FPS] * batch
    if isinstance(fps, torch.Tensor):
        return (
            [float(v) for v in fps.reshape(-1).tolist()]
            if fps.numel() > 1
            else [float(fps)] * batch
        )
    if isinstance(fps, (list, tuple)):
        return [float(v) for v in fps]
    return [float(fps)] * batch


def _reference_factors(target: VideoLatentShape, ref: VideoLatentShape) -> tuple[int, int]:
    """(spatial, temporal) scale of the reference relative to the target; exact or an error."""
    if target.height % ref.height or target.width % ref.width:
        raise UsageError(
            f"reference latents {ref.height}x{ref.width} do not divide the target's "
            f"{target.height}x{target.width}",
            "preprocess references with one --reference-downscale-factor",
        )
    spatial = target.height // ref.height
    if target.width // ref.width != spatial:
        raise UsageError(
            f"reference downscale differs between height ({spatial}) and width "
            f"({target.width // ref.width})",
            "references must keep the target's aspect ratio",
        )
    if ref.frames == 1 or (target.frames - 1) % max(ref.frames - 1, 1):
        temporal = 1 if ref.frames == target.frames else None
    else:
        temporal = (target.frames - 1) // (ref.frames - 1)
    if temporal is None:
        raise UsageError(
            f"reference has {ref.frames} latent frames, target {target.frames}: not an exact "
            "temporal subsampling",
            "preprocess references with one --reference-temporal-scale-factor",
        )
    return spatial, temporal
