"""circexport trainer: weight-sparse GPTs, their corpus and tokenizer, training, tasks and pruning."""

__version__ = "0.1.0"
