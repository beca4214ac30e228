"""abcflax train."""

from __future__ import annotations

import sys

import click

from abcflax.config import MAX_BATCH_SIZE, MAX_COPIES, MAX_DROPOUT, MAX_SEQ_LEN, MAX_STEPS
from abcflax.runtime import MAX_DEVICES

from .common import cli_errors
from .options import SEED, FiniteFloatRange

# every integer option has an upper bound: past it the value overflowed int32 inside a jitted step (steps,
# warm-up, eval interval), grew memory without end or reached XLA_FLAGS unchecked (--devices)
STEPS = click.IntRange(1, MAX_STEPS)


@click.command("train")
@click.argument("corpus", nargs=-1, required=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for checkpoint, log.csv, loss.png.")
@click.option("--preset", default="default", show_default=True, help="Model shape: tiny, small, default, keras-seed, mit-lab.")
@click.option("--steps", type=STEPS, help="Total optimizer steps (default 10000; with --resume: extend to this).")
@click.option("--batch-size", type=click.IntRange(1, MAX_BATCH_SIZE), help="Windows per step (global).")
@click.option("--seq-len", type=click.IntRange(2, MAX_SEQ_LEN), help="Characters per window.")
@click.option("--lr", "learning_rate", type=FiniteFloatRange(min=0, min_open=True), help="Peak learning rate.")
@click.option("--warmup-steps", type=click.IntRange(0, MAX_STEPS), help="Steps of linear warm-up before the cosine decay.  [default: 200]")
@click.option("--min-lr-ratio", type=FiniteFloatRange(0, 1),
              help="Learning rate at the end of the cosine decay, as a share of the peak.  [default: 0.05]")
@click.option("--clip-norm", type=FiniteFloatRange(min=0, min_open=True),
              help="Clip the gradient's global norm to this.  [default: 1.0]")
@click.option("--weight-decay", type=FiniteFloatRange(min=0), help="AdamW's decoupled weight decay.  [default: 1e-5]")
@click.option("--dropout", type=FiniteFloatRange(0, MAX_DROPOUT), help="Dropout rate.")
@click.option("--dropout-from", type=click.IntRange(0, MAX_STEPS),
              help="Train this many steps with dropout off before it switches on.  [default: 0]")
@click.option("--eval-every", type=STEPS, help="Steps between validation + checkpoint.")
@click.option("--holdout", type=FiniteFloatRange(0, 0.9), default=0.0, show_default=True,
              help="Share of every source's tunes (chosen by hash) never trained on.")
@click.option("--seed", type=SEED,
              help="Seed for data order, init and dropout (any integer, taken modulo 2**32, as by continue).  "
                   "[default: 0]")
@click.option("--transpose", type=click.IntRange(0, 6),
              help="Repeats of a source (path@N) are copies transposed by up to this many fifths "
                   "(0, +1, -1, +2 ...) instead of verbatim ones.  [default: 0]")
@click.option("--chords-after", type=click.IntRange(0, MAX_COPIES - 1),
              help="Of each repeated (path@N) chord-bearing tune's copies, this many (at most N-1) are written "
                   "with each chord after the notes it accompanies (an auxiliary task for harmonize).  [default: 0]")
@click.option("--reverse", is_flag=True, default=None,
              help="Train a right-to-left model (every tune read backwards): harmonize can rescore with it.")
@click.option("--bf16-matmuls", is_flag=True, default=None,
              help="Products over all time steps in bfloat16, accumulated in float32: about 1.25x faster steps on "
                   "CPUs with AVX512-BF16 (AMD Zen 4, recent Intel Xeons), slower on others.")
@click.option("--bf16-recurrence", is_flag=True, default=None,
              help="The recurrence's per-step products in bfloat16 too (state stays float32): pays for wide layers "
                   "(1.3x faster steps at hidden 1024 with --bf16-matmuls), at a small cost in bits/char.")
@click.option("--nesterov", is_flag=True, default=None,
              help="Adam with Nesterov momentum (NAdam's update): the short recipe's held-out bits/char came "
                   "about 300 of its 1,600 steps sooner.")
@click.option("--devices", type=click.IntRange(1, MAX_DEVICES),
              help="Devices to shard the batch over (default: all; on a CPU, one per core when each gets 8+ rows).")
@click.option("--coordinator", envvar="ABCFLAX_COORDINATOR", metavar="HOST:PORT",
              help="Multi-host run: process 0's address (see docs/distributed.md).")
@click.option("--num-processes", type=click.IntRange(1, MAX_DEVICES), envvar="ABCFLAX_NUM_PROCESSES",
              help="Multi-host run: how many processes (one per host).")
@click.option("--process-id", type=click.IntRange(0, MAX_DEVICES - 1), envvar="ABCFLAX_PROCESS_ID",
              help="Multi-host run: this process's number, 0..N-1 (0 writes the checkpoint).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--init-from", "init_from", metavar="MODEL",
              help="Fine-tune: start from this model's weights, shape and vocabulary (--preset and --dropout "
                   "are ignored) with a fresh optimizer and schedule.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@cli_errors
def train_command(corpus, out_dir, preset, steps, batch_size, seq_len, learning_rate, warmup_steps, min_lr_ratio, clip_norm,
                  weight_decay, dropout, dropout_from, eval_every,
                  holdout, seed, transpose, chords_after, reverse, bf16_matmuls, bf16_recurrence, nesterov, devices,
                  coordinator, num_processes, process_id, resume, init_from, quiet):
    """Train a model on ABC files, folders and music21 corpora.

    CORPUS items are files, folders (every *.abc below), music21:NAME (e.g. music21:ryansMammoth) or - (ABC on
    stdin); add @N to repeat a source N times in the training stream (e.g. nottingham/@2; N at most 1000).

    \b
    Example:
      abcflax train ../shared/data/nottingham@2 ../shared/data/irish --out runs/m1 --steps 5000
      abcflax train ../shared/data/nottingham@8 --init-from runs/m1 --out runs/m1-notts --steps 1000 --lr 5e-4
    """
    import dataclasses

    import abcflax
    from abcflax.runtime import recurrence_layout, reuse_freed_memory, split_host_cpu

    recurrence_layout()  # a bad ABCFLAX_RECURRENCE_LAYOUT is one line now, not one after the data is read
    reuse_freed_memory()  # before JAX starts: XLA's per-step buffers come back without page faults
    if coordinator is None:  # before JAX starts: one CPU device per core (a multi-host run keeps one per host)
        split_host_cpu(batch_size or abcflax.TrainConfig.batch_size, devices)
    from abcflax.training import init_distributed

    if init_distributed(coordinator, num_processes, process_id):  # before anything else touches JAX
        quiet = quiet or process_id != 0  # one progress report, from the process that writes
    texts, weights, problems = abcflax.load_training_texts(list(corpus), holdout)
    if not texts:  # one line naming the first reason, before any JAX work
        named = " ".join("<stdin>" if item == "-" else item for item in corpus)
        raise abcflax.InputError(f"no training tunes: {problems[0]}" if problems else f"{named}: no training tunes")
    if not quiet:
        click.echo(f"{len(texts)} tunes ({sum(map(len, texts))} chars); {len(problems)} skipped", err=True)
    for flag, value in (("--transpose", transpose), ("--chords-after", chords_after)):
        if value and max(weights, default=1) == 1:
            click.echo(f"abcflax: warning: {flag} changes only repeated sources (SOURCE@N with N >= 2); "
                       "none is repeated, so it changes nothing", err=True)
    model_config = abcflax.preset(preset)
    if dropout is not None:
        model_config = dataclasses.replace(model_config, dropout=dropout)
    overrides = {k: v for k, v in dict(steps=steps, batch_size=batch_size, seq_len=seq_len, dropout_from=dropout_from,
                                         learning_rate=learning_rate, warmup_steps=warmup_steps,
                                         min_lr_ratio=min_lr_ratio, clip_norm=clip_norm, weight_decay=weight_decay,
                                         eval_every=eval_every, seed=seed,
                                         transpose=transpose, chords_after=chords_after,
                                         reverse=reverse, bf16_matmuls=bf16_matmuls,
                                         bf16_recurrence=bf16_recurrence, nesterov=nesterov).items()
                 if v is not None}
    train_config = dataclasses.replace(abcflax.TrainConfig(), **overrides)

    def report(progress):
        if quiet:
            return
        line = (f"step {progress.step}/{progress.steps}  loss {progress.loss_bpc:.3f} bpc  "
                f"{progress.chars_per_s:,.0f} chars/s on {progress.devices} device{'s' * (progress.devices > 1)}")
        if progress.valid_bpc is not None:
            click.echo(f"\r{line}  valid {progress.valid_bpc:.3f} bpc", err=True)
        elif sys.stderr.isatty():
            click.echo(f"\r{line}", err=True, nl=False)

    path = abcflax.train(texts, out_dir, model_config, train_config, resume=resume, devices=devices,
                         weights=weights, sources=list(corpus), on_progress=report, extend=steps is not None,
                         init_from=init_from)
    if not process_id:  # the checkpoint's path, from the process that wrote it
        # Started with stdout closed (a nohup job's ``>&-``): the saved model is the result, not this line, so
        # a finished training still exits 0, and the path goes where the progress went.
        click.echo(str(path), err=sys.stdout is None)
