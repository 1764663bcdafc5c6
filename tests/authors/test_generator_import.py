"""The authors' generator in ours: every key accounted for, the same images, clear refusals."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from deeplandscape.authors.generator import AuthorsFileError, convert_generator, model_config, read_architecture
from deeplandscape.authors.importer import import_authors
from deeplandscape.cli import main as cli_main
from deeplandscape.config import load_config
from deeplandscape.invert.encoder import load_encoder
from deeplandscape.invert.lighting import load_lighting
from deeplandscape.nets.generator import Generator
from deeplandscape.runs import load_model
from deeplandscape.superres.nets import RRDBNet
from deeplandscape.superres.resolver import SuperResolver
from deeplandscape.train.checkpoint import latest_checkpoint, load_checkpoint
from deeplandscape.train.loop import Trainer
from deeplandscape.video import probe_video
from tests.authors.authors_files import (FIRST_FUSED, NARROW_CHANNELS, PAPER_CHANNELS, forget_their_code,
                                         their_checkpoint, their_encoder, their_forward, their_generator_state,
                                         their_level, their_lighting, their_mapping, their_to_rgb)
from tests.invert.test_ade20k import write_their_files


def _noise(batch: int, levels: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 1, 4 * 2**n, 4 * 2**n, generator=g) for n in range(levels)]


def test_every_key_of_their_256px_file_is_converted_or_left_out_on_purpose():
    sd = their_generator_state(PAPER_CHANNELS)  # every key and shape of their 256 px model's file
    arch = read_architecture(sd, {"resolution": 256, "step": 6}, "256/475000.model")
    assert (arch.z_dim, arch.w_dim, arch.mapping_layers, arch.channels) == (512, 512, 8, PAPER_CHANNELS)
    cfg = model_config(arch, 256, load_config("paper256").model, "f")
    assert (cfg.channel_base, cfg.channel_max, cfg.separate_noise, cfg.g_padding, cfg.he_gain) == \
        (16384, 512, True, "zeros", True)
    ours, dropped = convert_generator(sd, cfg, "f")
    assert set(ours) == set(Generator(cfg).state_dict())
    # Left out: the blur kernels of levels 1-6 (two buffers each) and all of levels 7 and 8 (512, 1024 px).
    above = [k for k in sd if k.startswith(("generator.progression.7.", "generator.progression.8.",
                                            "generator.to_rgb.7.", "generator.to_rgb.8."))]
    assert sorted(dropped) == sorted([k for k in sd if ".conv1." in k and k.endswith(("weight", "weight_flip"))
                                      and sd[k].shape[1:] == (1, 3, 3) and k not in above] + above)
    assert len(sd) == len(dropped) + len(ours)  # the 4x4 level's two convs-worth of our keys: const + conv2


def test_a_fused_level_and_a_plain_level_compute_what_theirs_compute():
    sd = their_generator_state(PAPER_CHANNELS, seed=3)
    cfg = model_config(read_architecture(sd, {}, "f"), 256, load_config("paper256").model, "f")
    G = Generator(cfg)
    G.load_state_dict(convert_generator(sd, cfg, "f")[0])
    w = torch.randn(2, 512)
    for n, size in ((2, 8), (FIRST_FUSED, 8)):  # 16 px (upsample, conv, blur) and 128 px (fused), on 8x8 inputs
        x = torch.randn(2, PAPER_CHANNELS[n - 1], size, size)
        st, dyn = torch.randn(2, 1, 2 * size, 2 * size), torch.randn(2, 1, 2 * size, 2 * size)
        theirs = their_level(sd, n, x, w, st, dyn)
        ours = G.blocks[n](x, w, st, dyn)
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(G.blocks[n].to_rgb(ours), their_to_rgb(sd, n, theirs), rtol=1e-4, atol=1e-4)
    z = torch.randn(2, 512)
    torch.testing.assert_close(G.M(z), their_mapping(sd, z), rtol=1e-5, atol=1e-5)


def test_imported_run_draws_their_images(tmp_path):
    """Whole images at 128 px (five plain levels and one fused) through the run directory."""
    ckpt = their_checkpoint(NARROW_CHANNELS, code_dim=32, n_mlp=2, resolution=256)
    torch.save(ckpt, tmp_path / "475000.model")
    report = import_authors(str(tmp_path / "475000.model"), 128, str(tmp_path / "run"), log=lambda line: None)
    assert report.generators == ("g_running", "generator")
    model = load_model(str(tmp_path / "run"))
    assert (model.resolution, model.alpha) == (128, 1.0)
    z = torch.randn(3, 32)
    st, dyn = _noise(3, 6, 1), _noise(3, 6, 2)
    theirs = their_forward(ckpt["g_running"], z, st, dyn, step=5)
    ours = model.G(model.G.ws_from_z(z), st, dyn, 128)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"]["resolution"] == 128 and config["model"]["g_padding"] == "zeros"


def _cli(cwd, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deeplandscape.cli", "import-authors", *args], cwd=cwd,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)


def test_bad_files_get_one_line_each(tmp_path, monkeypatch, capsys):
    (tmp_path / "notes.model").write_text("not a checkpoint\n")
    (tmp_path / "hello.model").write_text("hello")
    torch.save(their_checkpoint(resolution=64), tmp_path / "small.model")
    blob = (tmp_path / "small.model").read_bytes()
    (tmp_path / "cut.model").write_bytes(blob[: len(blob) // 2])
    other = their_checkpoint()
    other["g_running"] = {"blocks.0.const": torch.randn(1, 4, 4, 4)}  # our own layout: another architecture
    torch.save(other, tmp_path / "other.model")
    module = torch.nn.Linear(2, 2)
    with open(tmp_path / "module.model", "wb") as f:
        torch.save(module, f)
    cases = {
        "notes.model": "not a readable PyTorch checkpoint",
        "cut.model": "not a readable PyTorch checkpoint",
        "hello.model": "not a readable PyTorch checkpoint",
        "other.model": "missing key 'style.1.linear.weight_orig'",
        "small.model": "--resolution 128 is above the 64 px this checkpoint was trained to",
        "module.model": "holds pickled code, not state dicts",
    }
    # As typed in a shell once (a fresh process, a relative path), then each case in this process.
    done = _cli(tmp_path, "notes.model", "--resolution", "128", "--run-dir", "runs/notes")
    assert done.returncode == 2 and done.stdout.strip().splitlines() == [
        f"deeplandscape import-authors: error: {tmp_path / 'notes.model'}: not a readable PyTorch checkpoint "
        f"(truncated, or not a torch.save file)"]
    monkeypatch.chdir(tmp_path)
    for name, message in cases.items():
        assert cli_main(["import-authors", name, "--resolution", "128", "--run-dir", f"runs/{name}"]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"deeplandscape import-authors: error: {tmp_path / name}: ")
        assert message in lines[0], lines[0]
        assert not (tmp_path / "runs" / name).exists()


def test_an_imported_run_cannot_be_trained_on(tmp_path):
    torch.save(their_checkpoint(), tmp_path / "475000.model")
    import_authors(str(tmp_path / "475000.model"), 32, str(tmp_path / "run"), config="tiny", log=lambda line: None)
    _, _, state = load_checkpoint(latest_checkpoint(str(tmp_path / "run")).uri)
    with pytest.raises(ValueError, match="generators only .*training cannot resume"):
        Trainer.load_state_dict(object.__new__(Trainer), state)


def test_a_shape_that_does_not_fit_is_named():
    sd = their_generator_state(NARROW_CHANNELS, code_dim=32, n_mlp=2)
    cfg = model_config(read_architecture(sd, {}, "f.model"), 64, load_config("tiny").model, "f.model")
    sd["generator.progression.3.adain2.style.linear.weight_orig"] = torch.randn(64, 31)
    with pytest.raises(AuthorsFileError, match=r"f.model: key 'generator.progression.3.adain2.style.linear.weight_orig' "
                                               r"has shape \(64, 31\), which does not fit blocks.3.conv2.adain.style.weight"):
        convert_generator(sd, cfg, "f.model")
    del sd["generator.progression.2.noise12.weight_orig"]
    with pytest.raises(AuthorsFileError, match=r"f.model: missing key 'generator.progression.2.noise12.weight_orig'"):
        convert_generator(sd, cfg, "f.model")
    sd = their_generator_state(NARROW_CHANNELS, code_dim=32, n_mlp=2)
    sd["generator.progression.1.extra"] = torch.zeros(1)
    with pytest.raises(AuthorsFileError, match=r"unexpected key 'generator.progression.1.extra'"):
        convert_generator(sd, cfg, "f.model")


def test_their_encoder_predicts_in_our_run_what_it_predicts_in_theirs(tmp_path):
    """Their whole-module encoder file, read without their code, gives the same styles."""
    torch.save(their_checkpoint(), tmp_path / "475000.model")
    theirs = their_encoder(tmp_path / "src", levels=4, w_size=32)  # 32 px: levels 4, 8, 16, 32
    their_A = their_lighting(tmp_path / "src", w_size=32)
    torch.save(theirs, tmp_path / "best_model.pth")
    torch.save(their_A, tmp_path / "mlp.pth")
    forget_their_code(tmp_path / "src")
    rrdb = RRDBNet(nf=8, nb=2, gc=4).state_dict()  # their G.pth: ESRGAN's RRDBNet as net.*, their fusion beside it
    torch.save({**{f"module.net.{k}": v.normal_() for k, v in rrdb.items()},
                "module.conv_ref.weight": torch.randn(64, 3, 3, 3), "module.enhancement1.weight": torch.randn(64, 256, 3, 3),
                "module.binary_mask.encoder.conv1.weight": torch.randn(64, 3, 3, 3)}, tmp_path / "G.pth")
    report = import_authors(str(tmp_path / "475000.model"), 32, str(tmp_path / "run"), config="tiny",
                            encoder=str(tmp_path / "best_model.pth"), lighting=str(tmp_path / "mlp.pth"),
                            superres=str(tmp_path / "G.pth"), log=lambda line: None)
    assert (report.encoder, report.lighting) == (str(tmp_path / "best_model.pth"), str(tmp_path / "mlp.pth"))
    sr = SuperResolver.load(str(tmp_path / "run"))
    assert (sr.net.nf, sr.net.nb, sr.net.gc) == (8, 2, 4)
    assert all(torch.equal(sr.net.state_dict()[k], v) for k, v in rrdb.items())
    E = load_encoder(str(tmp_path / "run"))
    assert E.head == "authors" and E.w_avg.abs().sum() > 0  # the mean w, for MO / I2S starts
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(E(x), theirs(x), rtol=1e-4, atol=1e-5)
    A = load_lighting(str(tmp_path / "run"))
    w, z, c = torch.randn(5, 32), torch.randn(5, 3), torch.rand(5)
    torch.testing.assert_close(A(w, z, c), their_A(torch.cat([w, z, c[:, None]], dim=1)), rtol=1e-5, atol=1e-5)
    keyframes = json.loads((tmp_path / "run/lighting/keyframes.json").read_text())
    assert sorted(keyframes) == ["day", "morning", "night", "sunset"]


def test_a_lighting_network_for_another_generator_is_named(tmp_path):
    torch.save(their_checkpoint(), tmp_path / "475000.model")
    torch.save(their_lighting(tmp_path / "src", w_size=32, dz_size=5), tmp_path / "mlp.pth")
    forget_their_code(tmp_path / "src")
    with pytest.raises(AuthorsFileError, match=r"mlp.pth: A maps 37 inputs to 32; the generator needs w \(32\) \+ "
                                               r"z_dyn \(3\) \+ c \(1\) = 36"):
        import_authors(str(tmp_path / "475000.model"), 32, str(tmp_path / "run"), config="tiny",
                       lighting=str(tmp_path / "mlp.pth"), log=lambda line: None)


def test_the_bucket_job_runs_on_an_imported_run_with_automatic_masks(tmp_path, synth_data, local_ray, monkeypatch):
    """Their generator and encoder, ADE20K masks from the cache (stand-ins: sky everywhere)."""
    torch.save(their_checkpoint(), tmp_path / "475000.model")
    torch.save(their_encoder(tmp_path / "src", levels=4, w_size=32), tmp_path / "best_model.pth")
    forget_their_code(tmp_path / "src")
    import_authors(str(tmp_path / "475000.model"), 32, str(tmp_path / "run"), config="tiny",
                   encoder=str(tmp_path / "best_model.pth"), log=lambda line: None)
    write_their_files(tmp_path / "weights", winner=2)
    monkeypatch.setenv("DEEPLANDSCAPE_WEIGHTS", str(tmp_path / "weights"))
    (tmp_path / "in").mkdir()
    shutil.copy(synth_data / "photos" / "00005.png", tmp_path / "in" / "lake.png")  # no mask file next to it
    assert cli_main(["animate-bucket", str(tmp_path / "in"), str(tmp_path / "out"), "--run-dir", str(tmp_path / "run"),
                     "--directions", "1", "--frames", "4", "--set", "invert.opt_steps=3",
                     "--set", "invert.finetune_steps=3"]) == 0
    done = json.loads((tmp_path / "out" / "lake" / "done.json").read_text())
    assert probe_video(next((tmp_path / "out" / "lake").glob("*.mp4"))).num_frames == 4
    assert done["method"] == "EOIFS", done  # S: a mask, and there is no mask file: ADE20K's, on the worker
