"""The MIT lab shape's recurrence on one CPU device against tensor parallel over one device per core.

The MIT lab shape (8 rows, H = 1024) trains on one device, whose operations XLA splits over the cores; its
step is mostly the recurrence, a 1024 x 4096 matrix read twice per time step for 8 rows. This checks whether
splitting that matrix's gate columns over two devices of one thread each pays: each device keeps its half
of the units' four gates, ``all_gather``s h every forward step and ``psum_scatter``s dh every backward step
(``shard_map``). Forward and backward of ``lstm.lstm_scan`` over T = 100, medians of 15 calls, one process
per variant, alternating:

    python benchmarks/tensor_parallel_ab.py --rounds 4

(RESULTS.md, session 14: 0.94-1.00x, not kept.) The load average is printed: a figure taken on a busy
machine is void.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
B, T, H = 8, 100, 1024
CALLS = 15


def make_tensor_parallel_scan():
    """``h at every step`` of the recurrence, each device holding its units' columns of w_hh (H x 4h)."""
    import jax
    import jax.numpy as jnp

    from abcflax import lstm

    def forward(xproj_l, w_l):
        units = w_l.shape[1] // 4

        def step(carry, x):
            c, h_full = carry
            c, h, acts = lstm.cell(x + h_full @ w_l, c)  # the cell works on any number of units
            return (c, jax.lax.all_gather(h, "m", axis=1, tiled=True)), (h, c, acts, h_full)

        start = (jnp.zeros((B, units)), jnp.zeros((B, H)))
        _, (h_TxBxh, c_TxBxh, acts, h_prev_full) = jax.lax.scan(step, start, xproj_l)
        return h_TxBxh, (w_l, c_TxBxh, acts, h_prev_full)

    def backward(residuals, dh_out_TxBxh):
        w_l, c_TxBxh, acts_TxBx4h, h_prev_full = residuals
        units = w_l.shape[1] // 4
        c_prev = jnp.concatenate([jnp.zeros((1, B, units)), c_TxBxh[:-1]], axis=0)
        w_t = w_l.T
        offset = lstm.gate_scale(units) - 1

        def step(carry, inputs):  # lstm._lstm_scan_bwd's step, dh summed over the devices' partial products
            dh_next, dc_next = carry
            dh_out, c, c_before, acts = inputs
            dgates, dc_before = lstm.cell_backward(dh_out + dh_next, dc_next, c, c_before, acts, offset)
            dh_prev = jax.lax.psum_scatter(dgates @ w_t, "m", scatter_dimension=1, tiled=True)
            return (dh_prev, dc_before), dgates

        start = (jnp.zeros((B, units)), jnp.zeros((B, units)))
        _, dgates = jax.lax.scan(step, start, (dh_out_TxBxh, c_TxBxh, c_prev, acts_TxBx4h), reverse=True)
        return dgates, lstm.time_and_batch_product(h_prev_full, dgates)

    @jax.custom_vjp
    def scan(xproj_l, w_l):
        return forward(xproj_l, w_l)[0]

    scan.defvjp(forward, backward)
    return scan


def device_major(a, devices: int):
    """``... x 4H`` in gate-major order (i, f, g, o, each H wide) -> each device's four gates side by side."""
    lead = a.shape[:-1]
    return a.reshape(*lead, 4, devices, H // devices).swapaxes(-3, -2).reshape(*lead, 4 * H)


def worker(variant: str) -> dict:
    if variant == "tensor-parallel":
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2 --xla_cpu_multi_thread_eigen=false"
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    from abcflax import lstm

    rng = np.random.default_rng(0)
    xproj = jnp.asarray(rng.normal(size=(T, B, 4 * H)).astype(np.float32) * 0.1)
    w_hh = jnp.asarray(rng.normal(size=(H, 4 * H)).astype(np.float32) / 32)
    dh_out = jnp.asarray(rng.normal(size=(T, B, H)).astype(np.float32))
    zeros = jnp.zeros((B, H))

    def one_device_loss(xproj, w_hh):
        return jnp.sum(lstm.lstm_scan(xproj, w_hh, zeros, zeros)[0] * dh_out)

    one_device = jax.jit(jax.grad(one_device_loss, argnums=(0, 1)))
    if variant == "one-device":
        grads, args = one_device, (xproj, w_hh)
    else:
        mesh = Mesh(np.array(jax.devices()), ("m",))
        scan = make_tensor_parallel_scan()

        def body(xproj_l, w_l, dh_l):
            return jnp.sum(scan(xproj_l, w_l) * dh_l)[None]

        def loss(xproj, w_hh, dh):
            split = jax.shard_map(body, mesh=mesh, in_specs=(P(None, None, "m"), P(None, "m"), P(None, None, "m")),
                                  out_specs=P("m"), check_vma=False)
            return jnp.sum(split(xproj, w_hh, dh))

        parallel = jax.jit(jax.grad(loss, argnums=(0, 1)))
        columns = NamedSharding(mesh, P(None, None, "m"))
        args = (jax.device_put(device_major(xproj, 2), columns),
                jax.device_put(device_major(w_hh, 2), NamedSharding(mesh, P(None, "m"))))
        dh = jax.device_put(dh_out, columns)

        def grads(xproj, w_hh):
            return parallel(xproj, w_hh, dh)

        expected = one_device(xproj, w_hh)
        got = grads(*args)
        error = max(float(jnp.max(jnp.abs(device_major(e, 2) - g))) for e, g in zip(expected, got))
        if error > 1e-4:
            raise SystemExit(f"tensor-parallel gradients differ from one device's by {error}")
    jax.block_until_ready(grads(*args))
    times = []
    for _ in range(CALLS):
        start = time.perf_counter()
        jax.block_until_ready(grads(*args))
        times.append(time.perf_counter() - start)
    return {"variant": variant, "ms": 1000 * float(np.median(times))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker)))
        return
    print(f"command: python benchmarks/tensor_parallel_ab.py --rounds {args.rounds}")
    print(f"load average before: {tuple(round(x, 2) for x in os.getloadavg())}")
    for round_ in range(1, args.rounds + 1):
        figures = {}
        for variant in ("one-device", "tensor-parallel"):
            out = subprocess.run([sys.executable, __file__, "--worker", variant], check=True, capture_output=True,
                                 text=True)
            figures[variant] = json.loads(out.stdout.strip().splitlines()[-1])["ms"]
        print(f"round {round_}: one device {figures['one-device']:.1f} ms, tensor parallel "
              f"{figures['tensor-parallel']:.1f} ms ({figures['one-device'] / figures['tensor-parallel']:.2f}x)")
    print(f"load average after: {tuple(round(x, 2) for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
