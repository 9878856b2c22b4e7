"""Text generation backends for the generate and judge stages.

`hf` (Hugging Face transformers; CPU and GPU) is imported only inside a task.
"""
