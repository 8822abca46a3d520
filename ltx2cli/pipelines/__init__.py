"""Generation pipelines. `registry` (torch-free) lists them; each pipeline's code lives in the
module its `PipelineSpec.module` names and is imported only when that pipeline runs.

- `job`: what one generation is asked to do (torch-free); `files`: every model role resolved
  and checked from its header; `demo`: the built-in tiny demo model.
- `ledger`: what is resident when; `stages`: prompt encoding, image conditioning, the
  diffusion stage, upsampling and decoding; `events`: progress callbacks.
- `two_stage`, `two_stage_hq`, `one_stage`, `distilled`: one file each, numbered steps.
- `run`: run a job through its pipeline and write the mp4 and its sidecar; `plan`: the dry
  run and the memory estimate; `batch`, `distributed`: `--prompts-file` batches.
"""
