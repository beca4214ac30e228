"""Shared test fixtures."""

import pytest


@pytest.fixture(autouse=True)
def no_installed_plugins(monkeypatch):
    """Tests never load third-party abcflax plugins that happen to be installed (ABCFLAX_PLUGINS="" = none)."""
    monkeypatch.setenv("ABCFLAX_PLUGINS", "")
    from abcflax.plugins import reset_plugins

    reset_plugins()
    yield
    reset_plugins()


# ---- a tiny trained model shared by the model, sampler and CLI tests (no bundled model needed)

from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

TINY_CORPUS = [
    'X:1\nT:Jig {n}\nR:jig\nM:6/8\nL:1/8\nK:G\n|:"G"GAG GAB|"D"ABA ABd|"G"edd gdd|"C"edB "D"dBA|\n'
    '"G"GAG GAB|"D"ABA ABd|"C"edd gdB|"D"AGF "G"G3:|\n',
    'X:1\nT:Reel {n}\nR:reel\nM:4/4\nL:1/8\nK:Edor\n|:"Em"E2BE dEBE|E2BE "D"AFDF|"Em"E2BE dEBE|"D"dcde fdec:|\n'
    '|:d2fd a2fd|(3cBA eA cAeA|d2fd a2fd|"Bm"B>cd>B "Em"e2 e2|]\n',
    'X:1\nT:Waltz {n}\nR:waltz\nM:3/4\nL:1/4\nK:D\nde|"D"f2 e|d2 B|"G"B2 A|"D"F2 D|"A7"E2 F/G/|"D"A3|]\n',
    "X:1\nT:Hornpipe {n}\nM:2/4\nL:1/16\nK:A\n|:[1 a2ba gfed|c2A2 A4:|[2 e2fe dcBA|A4 z4||\n",
    # ties, accidentals, Q: and P: (prompts with them are tested against this model)
    "X:1\nT:Air {n}\nQ:1/4=96\nM:4/4\nL:1/8\nK:G\nP:A\n|:GABc ^c2 d2-|d2 cB A2 =F2|G4- G2 z2:|\n",
]


def tiny_texts(copies: int = 6) -> list[str]:
    return [text.replace("{n}", str(i)) for i in range(copies) for text in TINY_CORPUS]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A 1-layer, 16-unit model trained for 120 steps on a handful of hand-written tunes."""
    import abcflax

    out = tmp_path_factory.mktemp("tiny_model")
    config = abcflax.TrainConfig(steps=120, batch_size=16, seq_len=32, learning_rate=3e-2, warmup_steps=5,
                                 eval_every=40, eval_chars=2000, valid_share=0.2)
    abcflax.train(tiny_texts(), out, abcflax.preset("tiny"), config)
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    import abcflax

    return abcflax.load_model(tiny_model_dir)
