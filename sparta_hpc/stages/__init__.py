"""The pipeline's stages, one module each, in data-flow order (paths.STAGES):

plan -> generate -> judge -> gather -> aggregate -> train

Each has a pure core, a `run(cfg, paths, iteration, ...)` that reads its
inputs, calls the core and writes its outputs (atomically, marker last), and
a `main()` so that it can be run by hand:

    python -m sparta_hpc.stages.generate RUN_DIR --iteration 0 --task 1
"""
