"""Sampling speed of one continuation (batch 1): abcflax vs PyTorch sampling the same model shape step by step.

abcflax: ``abcflax.complete`` on the bundled model, end to end (prompt checks, priming, the jitted
``while_loop`` with the validity constraints, decoding), warm, generated characters per second; also
``constrain=False`` (no grammar).
PyTorch: an ``nn.LSTM`` of the bundled model's shape, primed on the same prompt in one call, then one
character per Python-loop iteration (``torch.no_grad``, softmax, ``torch.multinomial``) — how char-RNN
demos sample. Each side runs in its own subprocess, alternately (A B A B ...); medians are reported.

    python benchmarks/sample_speed.py [--rounds 3] [--chars 1000] [--append]
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
PROMPT = (ROOT / "data" / "examples" / "the_kesh.abc").read_text()


def abcflax_worker(chars: int, constrained: bool) -> dict:
    import abcflax

    model = abcflax.load_model(None)
    abcflax.complete(PROMPT, model=model, max_chars=chars, constrain=constrained, seed=0, candidates=1)  # compile
    written, seconds = 0, 0.0
    for seed in range(1, 6):
        start = time.perf_counter()
        out = abcflax.complete(PROMPT, model=model, max_chars=chars, constrain=constrained, seed=seed,
                               candidates=1)  # one stream's speed
        seconds += time.perf_counter() - start
        written += len(out) - len(PROMPT)
    return {"chars": written, "seconds": seconds}


def torch_worker(chars: int) -> dict:
    import torch
    from torch import nn

    import abcflax

    model = abcflax.load_model(None)
    config, vocab = model.config, model.vocab
    torch.manual_seed(0)
    embed = nn.Embedding(config.vocab_size, config.embed_dim)
    lstm = nn.LSTM(config.embed_dim, config.hidden, config.layers, batch_first=True)
    head = nn.Linear(config.hidden, config.vocab_size)
    prompt = torch.tensor([[vocab.bos_id] + list(vocab.encode(PROMPT, "prompt"))])

    def continue_once() -> int:
        with torch.no_grad():
            out, state = lstm(embed(prompt))
            logits = head(out[:, -1])
            for _ in range(chars):
                token = torch.multinomial(torch.softmax(logits, dim=-1), 1)
                out, state = lstm(embed(token), state)
                logits = head(out[:, -1])
        return chars

    continue_once()
    start = time.perf_counter()
    written = sum(continue_once() for _ in range(3))
    return {"chars": written, "seconds": time.perf_counter() - start, "threads": torch.get_num_threads()}


def measure(kind: str, chars: int) -> float:
    out = subprocess.run([sys.executable, __file__, "--worker", kind, "--chars", str(chars)],
                         check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["chars"] / result["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chars", type=int, default=1000, help="max characters per continuation")
    parser.add_argument("--worker", choices=("constrained", "raw", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--append", action="store_true")
    args = parser.parse_args()
    if args.worker:
        result = torch_worker(args.chars) if args.worker == "torch" else abcflax_worker(args.chars,
                                                                                        args.worker == "constrained")
        print(json.dumps(result))
        return
    load = os.getloadavg()
    rates = {kind: [] for kind in ("constrained", "raw", "torch")}
    for _ in range(args.rounds):
        for kind in rates:
            rates[kind].append(measure(kind, args.chars))
    median = {kind: statistics.median(values) for kind, values in rates.items()}
    lines = [f"command: python benchmarks/sample_speed.py --rounds {args.rounds} --chars {args.chars}",
             f"abcflax complete(), constrained: {median['constrained']:,.0f} chars/s "
             f"({median['constrained'] / median['torch']:.2f}x PyTorch)",
             f"abcflax complete(), constrain=False: {median['raw']:,.0f} chars/s "
             f"({median['raw'] / median['torch']:.2f}x PyTorch)",
             f"PyTorch nn.LSTM step by step: {median['torch']:,.0f} chars/s",
             f"all runs: {json.dumps({k: [round(v) for v in vs] for k, vs in rates.items()})}",
             f"load average: {load} (before) {os.getloadavg()} (after); {os.cpu_count()} cores"]
    publish("Sampling one continuation vs PyTorch (benchmarks/sample_speed.py)", lines, args.append, fenced=True)


if __name__ == "__main__":
    main()
