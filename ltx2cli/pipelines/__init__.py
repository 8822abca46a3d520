"""Generation pipelines. `registry` (torch-free) lists them; each pipeline's code lives in the
module its `PipelineSpec.module` names and is imported only when that pipeline runs."""
