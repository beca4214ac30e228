"""Training throughput: abcflax vs a PyTorch ``nn.LSTM`` of exactly the same architecture, side by side.

Each measurement is a fresh subprocess (so neither framework's thread pool disturbs the other) that
builds the model, compiles/warms up, then times ``--steps`` full training steps (forward, backward,
gradient clipping, Adam update) on random token windows. The parent runs them alternately
(jax torch jax torch ...) and reports medians, chars/s = batch * seq_len * steps / seconds, and each round's
ratio (its abcflax run over its PyTorch run, the two back to back). abcflax runs
as ``abcflax train`` does: glibc's malloc set to reuse freed memory (``abcflax.runtime.reuse_freed_memory``),
the host CPU split into one device per core when the batch allows (``abcflax.runtime.split_host_cpu``), the
batch sharded over them; ``jax1`` is abcflax on one device. PyTorch runs as a user would run it: glibc's malloc
as it comes, torch's own threads.

Mixed precision, like for like: ``jax-bf16`` is ``abcflax train --bf16-matmuls --bf16-recurrence`` and
``torch-bf16`` the same PyTorch model under ``torch.autocast("cpu", torch.bfloat16)``; both multiply bfloat16
operands in every LSTM matmul, the recurrence's included, and keep the parameters, the loss and the optimizer
in float32. The table's last ratio sets abcflax's faster precision
against PyTorch's faster one, each round's runs against each other.

Also: matmul FLOP/s of the abcflax step as a share of the machine's measured fp32 matmul peak
(2048x2048 matmuls under jax.jit, in the same run: one on one device, or one per device at once, the faster),
from the medians and also for each abcflax run on its own (its steps against the peak its process measured
right after them). Matmul FLOPs per step are counted as
3 x forward (forward + backward for inputs + backward for weights): per layer and time step
2*B*(I+H)*4H, and the head 2*B*H*V; for a model without embedding dropout, the first layer's input
projection as abcflax computes it (``matmul_flops_per_step``).

    python benchmarks/train_throughput.py [--shapes mit-lab,keras-seed,default] [--rounds 3] [--steps 20] [--frameworks jax,jax-bf16,torch,torch-bf16] [--append]

Needs the ``bench`` extra (``pip install torch==2.13.0``). The load average is printed: a figure taken on
a busy machine is void.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from results import publish

ROOT = Path(__file__).resolve().parents[1]
VOCAB = 95  # the bundled model's vocabulary size

# name: (embed, hidden, layers, dropout, batch, seq_len)
SHAPES = {
    "mit-lab": (256, 1024, 1, 0.0, 8, 100),
    "keras-seed": (512, 256, 3, 0.0, 16, 64),
    "default": (64, 384, 2, 0.25, 32, 128),
    "keras-seed-b32": (512, 256, 3, 0.0, 32, 128),  # the seed shape at the default's batch, for step-time ratios
    "default-b16": (64, 384, 2, 0.0, 16, 128),  # the default's short time-to-quality recipe until session 14
    "default-b24": (64, 384, 2, 0.0, 24, 96),  # the default's short time-to-quality recipe (no dropout, 24 x 96)
}


def matmul_flops_per_step(embed: int, hidden: int, layers: int, dropout: float, batch: int, seq_len: int) -> float:
    """Matmul FLOPs of one training step as abcflax computes it: 3 x forward (forward, backward for the
    inputs, backward for the weights) of every activation-by-weight product. Without dropout on the
    embeddings abcflax does not project the first layer's inputs per position but projects the V-row
    embedding table once (3 x 2*V*E*4H with its backward), and its gradient is one one-hot product
    (2*N*V*4H): those are counted, not the per-position projection it skips (which would flatter the figure)."""
    rows, four = batch * seq_len, 4 * hidden
    flops = 0.0
    for layer in range(layers):
        flops += 3 * 2 * rows * hidden * four  # the recurrence
        if layer or dropout > 0:
            flops += 3 * 2 * rows * (embed if layer == 0 else hidden) * four
        else:
            flops += 3 * 2 * VOCAB * embed * four + 2 * rows * VOCAB * four
    return flops + 3 * 2 * rows * hidden * VOCAB


def sharded_step_for(shape: tuple, one_device: bool = False, bf16: bool = False):
    """The training step exactly as ``abcflax train`` runs it, for a model of ``shape``: the host CPU split
    into devices (``split_host_cpu``, unless ``one_device``), the batch sharded over a mesh, params
    replicated, the recurrence's layout timed for this machine; ``bf16``: with ``--bf16-matmuls
    --bf16-recurrence``. Starts JAX, so call it first: (step, params, opt_state, batch sharding)."""
    embed, hidden, layers, dropout, batch, seq_len = shape
    from abcflax.runtime import HOST_DEVICES_ENV, reuse_freed_memory, split_host_cpu

    if one_device:
        os.environ[HOST_DEVICES_ENV] = "1"
    reuse_freed_memory()  # before JAX starts, as the CLI does
    split_host_cpu(batch)
    from flax import nnx

    from abcflax.config import ModelConfig, TrainConfig
    from abcflax.model import create_model
    from abcflax.layout import recurrence_in_columns
    from abcflax.lstm import Precision
    from abcflax.training import make_mesh, make_optimizer, sharded_train_step

    model = create_model(ModelConfig(vocab_size=VOCAB, embed_dim=embed, hidden=hidden, layers=layers, dropout=dropout))
    graphdef, params = nnx.split(model, nnx.Param)
    tx = make_optimizer(TrainConfig(steps=10_000))
    mesh = make_mesh(None, batch)
    precision = Precision(wide=bf16, recurrence=bf16)
    # the layout as train() chooses it
    precision = precision._replace(columns=recurrence_in_columns(hidden, batch, seq_len, mesh, precision))
    return sharded_train_step(graphdef, tx, params, tx.init(params), mesh, precision)


def jax_worker(shape: tuple, steps: int, one_device: bool = False, bf16: bool = False) -> dict:
    """Times ``steps`` training steps of ``sharded_step_for(shape)`` on random windows, after a warm-up."""
    batch, seq_len = shape[4], shape[5]
    step, params, opt_state, rows = sharded_step_for(shape, one_device, bf16)
    import jax
    import numpy as np

    rng = np.random.default_rng(0)
    tokens = rng.integers(0, VOCAB, size=(steps + 3, batch, seq_len + 1)).astype(np.int32)
    key = jax.random.key(0)

    def run(i):
        inputs, targets = jax.device_put(tokens[i, :, :-1], rows), jax.device_put(tokens[i, :, 1:], rows)
        return step(params, opt_state, inputs, targets, jax.random.fold_in(key, i))

    for i in range(3):  # compile + warm up
        params, opt_state, loss = run(i)
    loss.block_until_ready()
    start = time.perf_counter()
    for i in range(3, steps + 3):
        params, opt_state, loss = run(i)
    loss.block_until_ready()
    seconds = time.perf_counter() - start
    peak = jax_matmul_peak()
    return {"seconds": seconds, "peak_flops": peak, "devices": rows.mesh.size}


def best_rate(matmul, a, b, flops: float, repeats: int = 10) -> float:
    """FLOP/s of the fastest of ``repeats`` calls of the jitted ``matmul(a, b)``, after one to compile."""
    matmul(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return flops / best


def jax_matmul_peak(size: int = 2048, repeats: int = 10) -> float:
    """The best fp32 matmul FLOP/s of the devices this process has: one large matmul on one device (XLA
    splits it over the cores), or one such matmul per device at once, whichever is faster."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    a = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(2), (size, size), jnp.float32)
    rate = best_rate(jax.jit(lambda x, y: x @ y), a, b, 2 * size**3, repeats)
    count = len(jax.devices())
    if count > 1:
        spread = NamedSharding(Mesh(jax.devices(), ("d",)), PartitionSpec("d"))
        stack = lambda m: jax.device_put(jnp.broadcast_to(m, (count, size, size)), spread)
        rate = max(rate, best_rate(jax.jit(jnp.matmul), stack(a), stack(b), count * 2 * size**3, repeats))
    return rate


def torch_worker(shape: tuple, steps: int, bf16: bool = False) -> dict:
    """Times ``steps`` training steps of the same model in PyTorch, after a warm-up; ``bf16``: under
    ``torch.autocast("cpu", torch.bfloat16)``, PyTorch's mixed precision (its LSTM and linear layers take
    bfloat16 operands, the loss, parameters and AdamW stay float32)."""
    import contextlib

    import torch
    from torch import nn

    embed, hidden, layers, dropout, batch, seq_len = shape
    torch.manual_seed(0)

    class TorchCharLSTM(nn.Module):
        """The abcflax CharLSTM in PyTorch: dropout on the embedding, between layers and before the head."""

        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(VOCAB, embed)
            self.lstm = nn.LSTM(embed, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
            self.drop = nn.Dropout(dropout)
            self.head = nn.Linear(hidden, VOCAB)

        def forward(self, tokens):
            x, _ = self.lstm(self.drop(self.embed(tokens)))
            return self.head(self.drop(x))

    model = TorchCharLSTM()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-5)
    loss_fn = nn.CrossEntropyLoss()
    tokens = torch.randint(0, VOCAB, (steps + 3, batch, seq_len + 1))

    def train_step(i):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            logits = model(tokens[i, :, :-1])
        loss = loss_fn(logits.float().reshape(-1, VOCAB), tokens[i, :, 1:].reshape(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss

    for i in range(3):
        train_step(i)
    start = time.perf_counter()
    for i in range(3, steps + 3):
        loss = train_step(i)
    loss.item()
    return {"seconds": time.perf_counter() - start, "threads": torch.get_num_threads()}


def measure(framework: str, shape_name: str, steps: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", framework, "--shapes", shape_name, "--steps", str(steps)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", default="mit-lab,keras-seed,default")
    parser.add_argument("--rounds", type=int, default=3, help="A B rounds per shape")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per measurement")
    parser.add_argument("--frameworks", default="jax,torch",
                        help="jax (as abcflax train runs), jax1 (abcflax on one CPU device), jax-bf16 (abcflax "
                             "train --bf16-matmuls --bf16-recurrence), torch, torch-bf16 (under torch.autocast "
                             "with bfloat16)")
    parser.add_argument("--worker", choices=("jax", "jax1", "jax-bf16", "torch", "torch-bf16"), help=argparse.SUPPRESS)
    parser.add_argument("--append", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.worker:
        shape = SHAPES[args.shapes]
        if args.worker.startswith("torch"):
            result = torch_worker(shape, args.steps, bf16=args.worker == "torch-bf16")
        else:
            result = jax_worker(shape, args.steps, one_device=args.worker == "jax1", bf16=args.worker == "jax-bf16")
        print(json.dumps(result))
        return
    frameworks = args.frameworks.split(",")
    load_before = os.getloadavg()
    rows = []
    for name in args.shapes.split(","):
        embed, hidden, layers, dropout, batch, seq_len = SHAPES[name]
        chars = batch * seq_len * args.steps
        rates = {f: [] for f in frameworks}
        peaks, run_efficiencies, devices = [], [], {}
        flops = matmul_flops_per_step(embed, hidden, layers, dropout, batch, seq_len)
        for _ in range(args.rounds):
            for framework in frameworks:
                result = measure(framework, name, args.steps)
                rates[framework].append(chars / result["seconds"])
                if framework == "jax":
                    peaks.append(result["peak_flops"])
                    # the step and the peak measured in the same process, seconds apart: the machine's drift
                    # (up to 25% within minutes here) moves both alike
                    run_efficiencies.append(flops * args.steps / result["seconds"] / result["peak_flops"])
                devices[framework] = result.get("devices")
        row = {"shape": name, **{f: statistics.median(r) for f, r in rates.items()},
               "ranges": {f: (min(r), max(r)) for f, r in rates.items()}, "devices": devices.get("jax")}
        if "jax" in rates and "torch" in rates:
            # each round runs abcflax and PyTorch back to back, so a round's ratio is free of slower drift
            row["round_ratios"] = [j / t for j, t in zip(rates["jax"], rates["torch"])]
        if "jax-bf16" in rates and "torch-bf16" in rates:
            # the fastest each framework offers, round by round: its float32 or its mixed-precision run
            ours = [max(pair) for pair in zip(rates["jax-bf16"], rates.get("jax", rates["jax-bf16"]))]
            theirs = [max(pair) for pair in zip(rates["torch-bf16"], rates.get("torch", rates["torch-bf16"]))]
            row["fastest_ratios"] = [a / b for a, b in zip(ours, theirs)]
        if peaks:
            step_s = chars / row["jax"] / args.steps
            row["efficiency"] = flops / step_s / statistics.median(peaks)
            row["peak"] = statistics.median(peaks)
            row["run_efficiencies"] = run_efficiencies
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    lines = [f"command: python benchmarks/train_throughput.py --shapes {args.shapes} --rounds {args.rounds} "
             f"--steps {args.steps} --frameworks {args.frameworks}",
             "",
             "| shape (embed, hidden x layers, batch x seq) | abcflax chars/s (CPU devices) | abcflax on one device "
             "| abcflax in bf16 | PyTorch chars/s | PyTorch autocast bf16 | float32 ratio of medians "
             "(each round's) | fastest vs fastest (each round's) | abcflax matmul FLOP/s / peak (each run's) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        embed, hidden, layers, dropout, batch, seq_len = SHAPES[row["shape"]]
        jax_rate = row.get("jax")
        torch_rate = row.get("torch")
        fmt = lambda f: (f"{row[f]:,.0f} ({row['ranges'][f][0]:,.0f}–{row['ranges'][f][1]:,.0f})" if f in row else "—")
        ratio = f"{jax_rate / torch_rate:.2f}x" if jax_rate and torch_rate else "—"
        if row.get("round_ratios"):
            ratio += " (rounds: " + ", ".join(f"{r:.2f}x" for r in row["round_ratios"]) + ")"
        fastest = "—"
        if row.get("fastest_ratios"):
            fastest = (f"{statistics.median(row['fastest_ratios']):.2f}x (rounds: "
                       + ", ".join(f"{r:.2f}x" for r in row["fastest_ratios"]) + ")")
        eff = f"{row['efficiency']:.0%} of {row['peak'] / 1e9:.0f} GFLOP/s" if "efficiency" in row else "—"
        if row.get("run_efficiencies"):
            eff += " (runs: " + ", ".join(f"{e:.0%}" for e in row["run_efficiencies"]) + ")"
        used = f" ({row['devices']})" if row.get("devices") else ""
        lines.append(f"| {row['shape']} ({embed}, {hidden}x{layers}, {batch}x{seq_len}) | {fmt('jax')}{used} "
                     f"| {fmt('jax1')} | {fmt('jax-bf16')} | {fmt('torch')} | {fmt('torch-bf16')} | {ratio} "
                     f"| {fastest} | {eff} |")
    lines.append("")
    lines.append(f"load average: {load_before} (before) {os.getloadavg()} (after); {os.cpu_count()} cores")
    publish("Training throughput vs PyTorch (benchmarks/train_throughput.py)", lines, args.append)


if __name__ == "__main__":
    main()
