"""abcflax: continue, harmonize and export folk tunes in ABC notation with a Flax char-LSTM.

The public API (also what the CLI and plugins use). Names load lazily, so importing abcflax is cheap
until a function that needs JAX or music21 is called.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    # errors
    "AbcflaxError": "errors", "InputError": "errors", "CheckpointError": "errors", "UsageError": "errors",
    "AbcflaxWarning": "errors",
    # configuration
    "ModelConfig": "config", "TrainConfig": "config", "SampleConfig": "config", "preset": "config",
    "PRESET_NAMES": "config", "MAX_PART_BARS": "config",
    # tunebooks and vocabulary
    "read_tunebook": "tunebook", "read_file_text": "tunebook", "normalize_tune": "tunebook",
    "load_corpus": "tunebook", "Tune": "tunebook", "Problem": "tunebook", "Vocab": "vocab",
    "transpose": "transposition",  # module named apart: importing abcflax.transpose would shadow the function
    # model, checkpoints, training, evaluation
    "CharLSTM": "model", "create_model": "model", "Checkpoint": "checkpoint",
    "train": "training", "load_training_texts": "training", "split_holdout": "training", "Progress": "training",
    "bits_per_char": "evaluate",
    "Model": "loading", "load_model": "loading", "default_model_path": "loading",
    # continuation
    "complete": "continuation", "complete_many": "continuation", "complete_tunebook": "continuation",
    # how a continuation ends: the tonic, its chord; how many draws a tune's ending is chosen from
    "ending_rank": "endings", "DEFAULT_CANDIDATES": "endings", "MAX_CANDIDATES": "endings",
    # batch composition from a file of seeds
    "compose": "composer", "parse_seeds": "composer", "plan_tunes": "composer", "Seed": "composer",
    "TunePlan": "composer", "ComposedTune": "composer",
    # input
    "read_abc_input": "inputs",
    # harmonization
    "harmonize": "harmonizer", "harmonize_tunebook": "harmonizer", "strip_chords": "harmonizer",
    # checking ABC without music21 or a model
    "analyze_tune": "abc_check", "check_tune": "abc_check", "check_text": "abc_check",
    "CheckProblem": "abc_check", "TuneAnalysis": "abc_check", "repair_tune": "abc_check",
    "repair_tunebook": "abc_check",
    # export, plugins, music21 bridge
    "abc_to_score": "export", "export_bytes": "export", "write_output": "export", "check_output": "export",
    "check_output_path": "atomic",
    "get_plugin_manager": "plugins", "list_plugins": "plugins",
    "continue_stream": "music21", "harmonize_stream": "music21",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'abcflax' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"abcflax.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
