"""Data parallelism on forced host devices: training and sampling give the same results on 1 and 2 devices.

Each check runs in a subprocess, because the device count is fixed when JAX starts
(``XLA_FLAGS=--xla_force_host_platform_device_count=N``). The multi-host check starts two processes that
join through ``jax.distributed`` on localhost, as two hosts would.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import abcflax
from abcflax import checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import tiny_texts  # noqa: E402

TESTS = Path(__file__).resolve().parent
STEPS = 10
CONFIG = dict(steps=STEPS, batch_size=8, seq_len=32, learning_rate=3e-2, warmup_steps=2, eval_every=STEPS,
              eval_chars=500, valid_share=0.2)

TRAIN = f"""
import json, sys
sys.path.insert(0, {str(TESTS)!r})
import jax, numpy as np
import abcflax
from abcflax import checkpoint
from conftest import tiny_texts

out, devices = sys.argv[1], [int(d) for d in sys.argv[2].split(",")]
report = {{"device_count": jax.device_count()}}
for count in devices:
    losses = []
    path = abcflax.train(tiny_texts(2), f"{{out}}/d{{count}}", abcflax.preset("tiny"), abcflax.TrainConfig(**{CONFIG!r}),
                         devices=count, on_progress=lambda p: losses.append(p.loss_bpc))
    report[count] = {{"losses": losses, "checkpoint": str(path)}}
print(json.dumps(report))
"""

SAMPLE = """
import json, sys
import jax
import abcflax
from abcflax import sample

shardings = []
original = sample._generate
def spy(*args, **kwargs):
    sharding = getattr(args[4], "sharding", None)  # the per-row seeds (a host array when not sharded)
    shardings.append([type(sharding).__name__, list(getattr(sharding, "spec", []))])
    return original(*args, **kwargs)
sample._generate = spy

model = abcflax.load_model(sys.argv[1])
prompts = ['X:1\\nT:Jig\\nM:6/8\\nL:1/8\\nK:G\\nGAG GAB|', 'X:1\\nT:Waltz\\nM:3/4\\nL:1/4\\nK:D\\nde|f2 e|d2 B|'] * 2
tunes = abcflax.complete_many(prompts, model=model, seed=5, max_chars=200)
composed = [t.text for t in abcflax.compose("K:G\\nR:jig\\nM:3/4 K:D\\n", n=2, model=model, seed=1, max_chars=200,
                                            batch_size=4)]
print(json.dumps({"devices": jax.device_count(), "shardings": shardings, "tunes": tunes, "composed": composed}))
"""


def start(code: str, args: list[str], devices: int, extra_env: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
           "JAX_PLATFORMS": "cpu", "ABCFLAX_PLUGINS": "", **(extra_env or {})}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def result(process: subprocess.Popen) -> dict:
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


def params(path: str) -> list[np.ndarray]:
    import jax

    return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(checkpoint.load(path).params)]


def assert_same_params(a: str, b: str) -> None:
    left, right = params(a), params(b)
    assert len(left) == len(right) and len(left) > 0
    for x, y in zip(left, right):
        # summing the gradient in another order changes the last bits; Adam's g / sqrt(v) can blow that up to
        # ~1e-5 for a near-zero gradient in 10 steps, while a wrong batch split moves parameters by ~1e-2
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-4)


HOST = f"""
import json, sys
sys.path.insert(0, {str(TESTS)!r})
import abcflax
from abcflax.training import init_distributed
from conftest import tiny_texts

out, port, process = sys.argv[1], sys.argv[2], int(sys.argv[3])
init_distributed(f"localhost:{{port}}", 2, process)
import jax
losses = []
path = abcflax.train(tiny_texts(2), out, abcflax.preset("tiny"), abcflax.TrainConfig(**{CONFIG!r}),
                     on_progress=lambda p: losses.append(p.loss_bpc))
print(json.dumps({{"processes": jax.process_count(), "devices": jax.device_count(), "losses": losses}}))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    """Every subprocess of this module, started at once (each is mostly JAX start-up and compiling)."""
    out = tmp_path_factory.mktemp("distributed")
    port = str(free_port())
    started = {
        "train": start(TRAIN, [str(out), "1,2"], devices=2),
        "sample1": start(SAMPLE, [str(tiny_model_dir)], devices=1),
        "sample2": start(SAMPLE, [str(tiny_model_dir)], devices=2),
        **{f"host{i}": start(HOST, [str(out / f"host{i}"), port, str(i)], devices=1) for i in range(2)},
    }
    return {name: result(process) for name, process in started.items()} | {"out": out}


SPLIT = """
import json, os, sys
from abcflax.runtime import split_host_cpu
chosen = split_host_cpu(int(sys.argv[1]), int(sys.argv[2]) or None)
import jax
again = split_host_cpu(32)  # JAX has started: too late to change anything
from abcflax.training import make_mesh
meshes = [make_mesh(None, batch).size for batch in (24, 7)]  # a resumed run's stored batch may not split
single = "--xla_cpu_multi_thread_eigen=false" in os.environ.get("XLA_FLAGS", "")
print(json.dumps({"chosen": chosen, "again": again, "devices": jax.device_count(), "meshes": meshes,
                  "single_threaded": single}))
"""


def split(batch: int, requested: int, env: dict) -> dict:
    """``split_host_cpu`` in a fresh process with ``env`` in place of any XLA_FLAGS or device override."""
    from abcflax.runtime import usable_cores

    clean = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "ABCFLAX_HOST_DEVICES")}
    out = subprocess.run([sys.executable, "-c", SPLIT, str(batch), str(requested)], capture_output=True, text=True,
                         env={**clean, "JAX_PLATFORMS": "cpu", **env}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    # a device per core (or more) runs each device's operations on one thread; fewer devices keep XLA's threads
    chosen = report["chosen"] or 1
    assert report.pop("single_threaded") == (1 < chosen and chosen >= usable_cores())
    return report


@pytest.mark.parametrize("batch, cores, expected", [
    (32, 2, 2), (16, 2, 2), (8, 2, 1), (32, 1, 1), (32, 3, 2), (48, 3, 3), (12, 4, 1), (64, 4, 4), (7, 2, 1),
    (24, 8, 3),
])
def test_host_device_count_splits_evenly_with_eight_rows_or_more(batch, cores, expected):
    from abcflax.runtime import host_device_count

    assert host_device_count(batch, cores) == expected


def test_split_host_cpu_makes_devices_before_jax_starts():
    assert split(32, 0, {"ABCFLAX_HOST_DEVICES": "2"}) == {"chosen": 2, "again": None, "devices": 2,
                                                            "meshes": [2, 1]}
    assert split(8, 3, {}) == {"chosen": 3, "again": None, "devices": 3, "meshes": [3, 1]}  # --devices 3
    assert split(32, 0, {"ABCFLAX_HOST_DEVICES": "1"}) == {"chosen": 1, "again": None, "devices": 1,
                                                            "meshes": [1, 1]}
    # the user's own XLA_FLAGS win
    forced = {"XLA_FLAGS": "--xla_force_host_platform_device_count=1", "ABCFLAX_HOST_DEVICES": "2"}
    assert split(32, 0, forced) == {"chosen": None, "again": None, "devices": 1, "meshes": [1, 1]}


def test_train_cli_runs_on_the_devices_it_made(tmp_path):
    """``abcflax train --devices 2`` on one CPU: two host devices, the batch split over them."""
    clean = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "ABCFLAX_HOST_DEVICES")}
    corpus = tmp_path / "tunes.abc"
    corpus.write_text("\n\n".join(tiny_texts()))
    out = subprocess.run([sys.executable, "-m", "abcflax_cli.main", "train", str(corpus), "--out", str(tmp_path / "m"),
                          "--preset", "tiny", "--steps", "2", "--eval-every", "2", "--batch-size", "4",
                          "--seq-len", "16", "--devices", "2"],
                         capture_output=True, text=True, env={**clean, "JAX_PLATFORMS": "cpu", "ABCFLAX_PLUGINS": ""},
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "on 2 devices" in out.stderr
    assert (tmp_path / "m" / "model.msgpack").exists()


def test_two_devices_train_like_one(runs):
    report = runs["train"]
    assert report["device_count"] == 2
    one, two = report["1"], report["2"]
    assert len(one["losses"]) == STEPS and one["losses"][-1] < one["losses"][0]  # it trained at all
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5)
    assert_same_params(one["checkpoint"], two["checkpoint"])


def test_sampling_is_the_same_on_one_and_two_devices(runs):
    one, two = runs["sample1"], runs["sample2"]
    assert (one["devices"], two["devices"]) == (1, 2)
    assert one["shardings"] and all(s == ["NoneType", []] for s in one["shardings"])  # host arrays: not split
    assert two["shardings"] and all(s == ["NamedSharding", ["data"]] for s in two["shardings"])
    assert two["tunes"] == one["tunes"] and two["composed"] == one["composed"]
    assert len(set(one["tunes"])) > 1


def test_two_processes_train_like_one_process(runs):
    """Two 'hosts' with one device each feed their halves of the global batch; process 0 alone writes."""
    host0, host1, out = runs["host0"], runs["host1"], runs["out"]
    assert host0["processes"] == 2 and host0["devices"] == 2
    np.testing.assert_allclose(host0["losses"], runs["train"]["1"]["losses"], rtol=1e-5)
    assert host1["losses"] == host0["losses"]
    assert (out / "host0" / "model.msgpack").exists() and not (out / "host1").exists()
    assert_same_params(str(out / "host0" / "model.msgpack"), runs["train"]["1"]["checkpoint"])


@pytest.mark.parametrize("args, message", [
    (["--num-processes", "2"], "need --coordinator"),
    (["--coordinator", "localhost:1234"], "needs --num-processes and --process-id"),
    (["--coordinator", "localhost:1234", "--num-processes", "2", "--process-id", "2"], "not in 0..1"),
])
def test_train_cli_checks_the_multi_host_options(tmp_path, args, message):
    from click.testing import CliRunner

    from abcflax_cli.common import main_group

    result = CliRunner().invoke(main_group, ["train", "x.abc", "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2 and message in result.stderr


REUSE = """
import ctypes, json, resource, sys
from abcflax.runtime import reuse_freed_memory
took = reuse_freed_memory() if sys.argv[1] == "1" else None
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
size = 64 << 20  # an XLA step's temporary buffers are of this order

def allocate_touch_free():
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)  # touch every page, as a step writes its buffers
    libc.free(block)

allocate_touch_free()  # the heap grows to its working size once
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    allocate_touch_free()
print(json.dumps({"took": took, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def freed_memory_faults(reuse: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", REUSE, "1" if reuse else "0"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings are Linux-only")
def test_reuse_freed_memory_stops_page_faults_on_reallocation():
    reused = freed_memory_faults(reuse=True)
    if not reused["took"]:
        pytest.skip("this C library does not take glibc's mallopt settings")
    pages = 5 * (64 << 20) // 4096
    assert freed_memory_faults(reuse=False)["faults"] > pages // 2  # glibc's default: every block faults anew
    assert reused["faults"] < pages // 50


COLLECTIVES = """
import json, os
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
import jax, numpy as np
from flax import nnx
from abcflax.config import ModelConfig, TrainConfig
from abcflax.model import create_model
from abcflax.training import make_mesh, make_optimizer, sharded_train_step
found = {}
for dropout in (0.0, 0.25):  # the first layer's inputs from the projected table, or from dropped-out embeddings
    graphdef, params = nnx.split(create_model(ModelConfig(vocab_size=19, embed_dim=8, hidden=12, layers=2,
                                                          dropout=dropout)), nnx.Param)
    tx = make_optimizer(TrainConfig(steps=10))
    mesh = make_mesh(2, 4)
    step, params, opt_state, rows = sharded_train_step(graphdef, tx, params, tx.init(params), mesh)
    x = jax.device_put(np.zeros((4, 10), np.int32), rows)
    hlo = step.lower(params, opt_state, x, x, jax.random.key(0)).compile().as_text()
    found[str(dropout)] = sorted({op for op in ("all-gather(", "all-to-all(", "all-reduce(", "collective-permute(")
                                  if op in hlo})
print(json.dumps(found))
"""


def test_sharded_train_step_only_all_reduces_gradients():
    """Data parallel over the batch: each device runs its rows whole, and the one collective is the gradient
    all-reduce. A layout that merged the split batch axis into another (a reshape of time x batch) would make
    the partitioner gather the whole batch onto every device: that cost the Keras seed shape a quarter of its
    speed once."""
    clean = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "ABCFLAX_HOST_DEVICES")}
    out = subprocess.run([sys.executable, "-c", COLLECTIVES], capture_output=True, text=True, timeout=300,
                         env={**clean, "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"0.0": ["all-reduce("], "0.25": ["all-reduce("]}
