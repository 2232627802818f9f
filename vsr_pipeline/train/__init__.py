"""Training: ``vsr train CONFIG.yaml`` (configs, on-the-fly datasets and degradations, losses, the trainer,
Ray Train data parallelism). See docs/training.md."""
