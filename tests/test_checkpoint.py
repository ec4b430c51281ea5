"""Checkpoints: safetensors + JSON, no pickle, atomic, and damage reported in one line."""

import json
import struct

import pytest
import torch

from gankit.training import checkpoint
from gankit.api import load
from gankit.errors import GankitError
from gankit.training.checkpoint import load_weights, restore, training_state


@pytest.fixture
def trained_gan(make_model):
    """trained_gan(shape): the guide's GAN (seed 0) after one training step."""
    def trained(shape=(1, 28, 28)):
        model = make_model("gan", shape, num_classes=0)
        model.training_step(torch.rand(4, *shape) * 2 - 1, None)
        return model
    return trained


def test_optimizer_state_round_trips_exactly(trained_gan):
    model = trained_gan()
    tensors = {}
    skeleton = checkpoint.flatten(model.optimizers["d"].state_dict(), "optim.d", tensors)
    json.dumps(skeleton)   # the skeleton is plain JSON
    back = checkpoint.unflatten(json.loads(json.dumps(skeleton)), tensors)
    orig = model.optimizers["d"].state_dict()
    assert back["param_groups"] == orig["param_groups"]
    assert isinstance(back["param_groups"][0]["betas"], tuple)
    assert set(back["state"]) == set(orig["state"])   # integer keys come back as integers
    for i, st in orig["state"].items():
        for k, v in st.items():
            assert torch.equal(back["state"][i][k], v)


def test_training_state_restores_bit_for_bit(tmp_path, trained_gan):
    model = trained_gan()
    gen = torch.Generator().manual_seed(3)
    tensors, skeleton = training_state(model, gen)
    checkpoint.save(tmp_path / "c.safetensors", tensors, {"optim": skeleton, "step": 1})
    loaded, meta = checkpoint.load(tmp_path / "c.safetensors")
    other = trained_gan()
    other.training_step(torch.rand(4, 1, 28, 28), None)   # make it differ first
    gen2 = torch.Generator()
    restore(other, gen2, None, loaded, meta, "c")
    for (k, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        assert torch.equal(a, b), k
    assert torch.equal(gen.get_state(), gen2.get_state())
    # both continue identically
    torch.manual_seed(9); x = model.training_step(torch.zeros(4, 1, 28, 28), None)
    torch.manual_seed(9); y = other.training_step(torch.zeros(4, 1, 28, 28), None)
    assert all(torch.equal(x[k], y[k]) for k in x)


def test_files_are_safetensors_with_json_twin_and_no_temp_left(tmp_path):
    path = tmp_path / "last.safetensors"
    checkpoint.save(path, {"a": torch.ones(3)}, {"step": 5})
    raw = path.read_bytes()
    header_len = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + header_len])
    assert "a" in header and json.loads(header["__metadata__"]["gankit"])["step"] == 5
    assert json.loads((tmp_path / "last.json").read_text())["step"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.json", "last.safetensors"]
    assert checkpoint.read_meta(path)["step"] == 5


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage"])
def test_damaged_files_give_one_line_errors(tmp_path, damage):
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, {"a": torch.ones(1000)}, {"step": 1})
    raw = path.read_bytes()
    path.write_bytes({"truncate": raw[: len(raw) // 2], "empty": b"", "garbage": b"x" * 100}[damage])
    with pytest.raises(GankitError) as e:
        checkpoint.load(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_foreign_safetensors_file_is_refused(tmp_path):
    from safetensors.torch import save_file
    save_file({"w": torch.ones(2)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(GankitError, match="not a gankit checkpoint"):
        checkpoint.load(tmp_path / "x.safetensors")


def test_weights_of_another_shape_or_with_missing_tensors(tmp_path, trained_gan, make_model):
    model = trained_gan((1, 28, 28))
    tensors, _ = training_state(model, torch.Generator())
    rgb = make_model("gan", (3, 32, 32), num_classes=0, optimizers=False)
    with pytest.raises(GankitError, match="does not fit"):
        load_weights(rgb, tensors, "c")
    missing = {k: v for k, v in tensors.items() if not k.endswith("net.0.weight")}
    with pytest.raises(GankitError, match="does not fit"):
        load_weights(trained_gan(), missing, "c")
    extra = {**tensors, "model.generator.extra": torch.ones(1)}
    with pytest.raises(GankitError, match="does not fit"):
        load_weights(trained_gan(), extra, "c")


def test_load_reports_a_missing_path(tmp_path):
    with pytest.raises(GankitError, match="does not exist"):
        load(tmp_path / "nope.safetensors")
    with pytest.raises(GankitError, match="no checkpoint in"):
        load(tmp_path)
