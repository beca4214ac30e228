"""bfloat16 against float32 matmul rate on this CPU, for shapes ``--bf16-matmuls`` and ``--bf16-recurrence``
change: the best of ``--repeats`` jitted ``jnp.dot`` calls each, bfloat16 operands with a float32 result
(``preferred_element_type``, as ``lstm.wide_product`` and ``lstm.recurrent_product`` do). A recurrent step's
product timed alone here, its matrix warm in the cache, says little about the step inside a scan, where the
matrix is read again every time step: train_throughput.py measures that (RESULTS.md, session 16).

    python benchmarks/bf16_matmul.py [--repeats 10]

On a CPU with AVX512-BF16 (``abcflax.runtime.cpu_has_bf16``) XLA's bfloat16 products can be up to twice as
fast; on one without, XLA converts and they were slower (RESULTS.md, session 6). The load average is
printed: a figure taken on a busy machine is void.
"""

from __future__ import annotations

import argparse
import os

from train_throughput import best_rate

# m x k x n: a large square product and the default shape's input projection over a 24 x 96 batch
# (--bf16-matmuls); one recurrent step of that batch and one of the MIT lab shape, 8 rows by a 16 MB matrix
# (--bf16-recurrence)
SHAPES = ((2048, 2048, 2048), (2304, 384, 1536), (24, 384, 1536), (8, 1024, 4096))


def rate(dtype, m: int, k: int, n: int, repeats: int) -> float:
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (m, k)).astype(dtype)
    b = jax.random.normal(jax.random.key(1), (k, n)).astype(dtype)
    product = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
    return best_rate(product, a, b, 2 * m * k * n, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    import jax.numpy as jnp

    from abcflax.runtime import cpu_has_bf16

    before = os.getloadavg()
    print(f"command: python benchmarks/bf16_matmul.py --repeats {args.repeats}")
    print(f"CPU lists bf16 instructions: {cpu_has_bf16()}\n")
    print("| m x k x n | float32 GFLOP/s | bfloat16 operands, float32 result | ratio |")
    print("|---|---|---|---|")
    for m, k, n in SHAPES:
        full, low = rate(jnp.float32, m, k, n, args.repeats), rate(jnp.bfloat16, m, k, n, args.repeats)
        print(f"| {m} x {k} x {n} | {full / 1e9:.0f} | {low / 1e9:.0f} | {low / full:.2f}x |")
    print(f"\nload average: {before} (before) {os.getloadavg()} (after); {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
