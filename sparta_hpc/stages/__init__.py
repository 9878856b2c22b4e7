"""The pipeline's stages, one module each, in data-flow order (paths.STAGES):

plan -> generate -> judge -> gather -> aggregate -> train

once before iteration 0, with sft.data set: sft (paths.RUN_STAGES; the initial experts);
evaluation points: evaluate -> rate -> score (paths.EVAL_STAGES); lora.py: what sft and train share

Each has a pure core, a `run(cfg, paths, iteration, ...)` that reads its
inputs, calls the core and writes its outputs (atomically, marker last), and
a `main()` so that it can be run by hand:

    python -m sparta_hpc.stages.generate RUN_DIR --iteration 0 --task 1
"""
