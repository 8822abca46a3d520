"""`two-stage-hq`: the two-stage flow with the res_2s sampler in both stages, a stage-1 schedule
shifted by the stage-1 token count, and the distilled LoRA fused in both stages (0.25 in
stage 1, 0.5 in stage 2; the strength given with `--distilled-lora` is not used, as in the
reference). Its defaults (1088x1920, 15 steps, no STG: 3 passes per evaluation) come from the
settings; res_2s evaluates twice per step plus once at the end.
"""

from __future__ import annotations

from ltx2cli.diffusion.schedules import ltx2_sigmas
from ltx2cli.pipelines import two_stage
from ltx2cli.pipelines.run import Context, Result

STAGES = two_stage.STAGES
DISTILLED_LORA_STAGE_1 = 0.25
DISTILLED_LORA_STAGE_2 = 0.5

HQ = two_stage.Recipe(
    sampler="res2s",
    stage1_sigmas=lambda steps, tokens: ltx2_sigmas(steps, tokens),
    distilled_stage1=DISTILLED_LORA_STAGE_1,
    distilled_stage2=DISTILLED_LORA_STAGE_2,
)


def run(ctx: Context) -> Result:
    return two_stage.run(ctx, HQ)
