"""Schedules, noisers, steppers, guiders, patchifiers and conditioning items.

Pure functions and small frozen dataclasses over torch tensors; nothing here loads a model.

- `patchify`: latent shapes and size checks, patchifiers, RoPE position grids.
- `state`: `LatentState`, `VideoGrid` / `AudioGrid` that build it, `AV` per-modality pairs.
- `schedules`: LTX-2, linear-quadratic and beta sigma schedules; distilled sigma lists.
- `noise`: the flow-matching noiser (both reference formulations) and the res_2s SDE noise,
  drawn from generators the pipeline owns.
- `guidance`: multimodal guider params and formula, defaults per model generation, CFG/STG/APG.
- `denoisers`: the model-call protocol (`ModelCall` over the transformer's `Modality` and
  `Perturbation`), `transformer_velocity_model`, and the simple / guided denoisers.
- `steppers`: Euler, gradient-estimation and res_2s loops (`Res2sNoise`: res_2s's generators).
- `conditioning`: image, keyframe, reference-video, mask and time-region conditioning items;
  the IC-LoRA pixel-mask downsampler.
"""
