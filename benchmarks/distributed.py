"""Data-parallel throughput on 1 vs 2 forced host devices: training chars/s and batched sampling chars/s.

Each device count runs in its own process (``XLA_FLAGS=--xla_force_host_platform_device_count=N`` is read
when JAX starts), with the same work:
  * train: ``--steps`` optimizer steps of the ``--preset`` model on the example tunes, global batch
    ``--batch-size`` split over the devices (``abcflax.train(..., devices=N)``); chars/s = batch x seq_len x
    steps / time, after one untimed step (compilation);
  * sample: ``--tunes`` tunes through ``abcflax.compose`` in batches of ``--tunes`` (rows sharded over the
    devices by ``abcflax.sample.shard_rows``); chars/s counts generated characters, after an untimed warm-up.
Forced host devices share the machine's cores, so this measures how well the sharded programs use them,
not a second accelerator.

    python benchmarks/distributed.py                       # preset small, batch 64, 64 tunes
    python benchmarks/distributed.py --model runs/default  # sample with a trained model instead
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
# meters and keys only: any model's vocabulary has these characters
SEEDS = "M:4/4 K:D\nM:6/8 K:G\nM:3/4 K:D\nM:4/4 K:A\nM:2/4 K:G\nM:9/8 K:Em\nM:4/4 K:Ador\nM:6/8 K:Edor\n"


def training_texts() -> list[str]:
    from abcflax.tunebook import load_corpus

    texts, _ = load_corpus([str(PROJECT / "data" / "examples")])
    return texts


def worker_train(args) -> dict:
    import abcflax

    # one step to compile, the timed steps, one last step whose report also waits for the final checkpoint
    config = abcflax.TrainConfig(steps=args.steps + 2, batch_size=args.batch_size, seq_len=args.seq_len,
                                 eval_every=10**9, valid_share=0.0)
    stamps = []
    with tempfile.TemporaryDirectory() as out:
        abcflax.train(training_texts(), out, abcflax.preset(args.preset), config, devices=args.devices,
                      on_progress=lambda p: stamps.append(time.perf_counter()))
    seconds = stamps[-2] - stamps[0]  # the args.steps steps after the compiling one
    return {"train_chars_per_s": args.steps * args.batch_size * args.seq_len / seconds}


def worker_sample(args) -> dict:
    import abcflax
    from abcflax.checkpoint import Checkpoint
    from abcflax.loading import model_from_checkpoint

    if args.model:
        model = abcflax.load_model(args.model)
    else:  # an untrained model of the preset's shape: the sampler's cost does not depend on the weights
        texts = training_texts()
        vocab = abcflax.Vocab.from_texts(texts + [SEEDS, "X:1\nT:Tune in\nL:1/8\n"])
        config = abcflax.ModelConfig(**{**abcflax.preset(args.preset).to_dict(), "vocab_size": vocab.size})
        from flax import nnx

        params = nnx.to_pure_dict(nnx.state(abcflax.create_model(config)))
        model = model_from_checkpoint(Checkpoint(config, vocab, params, abcflax.TrainConfig(), None, 0, {}))
    plans = abcflax.plan_tunes(SEEDS, args.tunes, model=model, on_problem=lambda m: print(m, file=sys.stderr))
    plans = sorted(plans, key=lambda plan: plan.row % args.tunes)[:args.tunes]  # every seed, in turn
    options = dict(model=model, batch_size=args.tunes, max_chars=args.max_chars, seed=0, candidates=1)
    list(abcflax.compose(plans, **options))  # compile
    start = time.perf_counter()
    chars = sum(t.generated for t in abcflax.compose(plans, **options))
    return {"sample_chars_per_s": chars / (time.perf_counter() - start)}


def run_worker(devices: int, argv: list[str]) -> dict:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, __file__, "--worker", "--devices", str(devices), *argv], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"worker with {devices} device(s) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", help="Model shape for training (and untrained sampling).")
    parser.add_argument("--model", help="A trained model to sample with (default: untrained --preset).")
    parser.add_argument("--steps", type=int, default=30, help="Timed training steps.")
    parser.add_argument("--batch-size", type=int, default=64, help="Global training batch.")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--tunes", type=int, default=64, help="Tunes sampled in one batch.")
    parser.add_argument("--max-chars", type=int, default=600)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps({**worker_train(args), **worker_sample(args)}))
        return
    argv = sys.argv[1:]
    print(f"command: python benchmarks/distributed.py {' '.join(shlex.quote(a) for a in argv)} (cwd {PROJECT})")
    results = {devices: run_worker(devices, argv) for devices in (1, 2)}
    for key in ("train_chars_per_s", "sample_chars_per_s"):
        one, two = results[1][key], results[2][key]
        print(f"{key}: 1 device {one:,.0f}, 2 devices {two:,.0f} ({two / one:.2f}x)")
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
