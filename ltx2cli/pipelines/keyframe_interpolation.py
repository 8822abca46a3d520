"""`keyframe-interpolation`: a clip through images at chosen frames (§10.6).

The two-stage flow (guided half-size stage, x2 upsample, distilled refinement) where every
image, frame 0 included, is an appended keyframe guide ("guiding latent") in both stages; the
guides steer the clip and are dropped before decoding. First/last-frame interpolation is the
two-keyframe case. The final (stage-2) audio is decoded, as the current reference does.
"""

from __future__ import annotations

from ltx2cli.errors import UsageError
from ltx2cli.pipelines import two_stage
from ltx2cli.pipelines.run import Context, Result

STAGES = two_stage.STAGES
KEYFRAMES = two_stage.Recipe(guiding_images=True, stage1_audio=False)


def run(ctx: Context) -> Result:
    if not ctx.job.images:
        raise UsageError("interpolation needs keyframes", "pass --keyframe IMG@FRAME, e.g. a.png@0")
    return two_stage.run(ctx, KEYFRAMES)
