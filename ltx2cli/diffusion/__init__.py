"""Schedules, noisers, steppers, guiders, patchifiers and conditioning items.

Pure functions and small frozen dataclasses over torch tensors; nothing here loads a model.

- `patchify`: latent shapes and size checks, patchifiers, RoPE position grids.
- `state`: `LatentState`, `VideoGrid` / `AudioGrid` that build it, `AV` per-modality pairs.
- `schedules`: LTX-2, linear-quadratic and beta sigma schedules; distilled sigma lists.
- `noise`: seeded CPU noise and the flow-matching noiser.
- `guidance`: multimodal guider params and formula, defaults per model generation, CFG/STG/APG.
- `denoisers`: the model-call protocol (`ModelCall` over the transformer's `Modality` and
  `Perturbation`), `transformer_velocity_model`, and the simple / guided denoisers.
- `steppers`: Euler, gradient-estimation and res_2s loops.
- `conditioning`: image, keyframe, reference-video, mask and time-region conditioning items.
"""
