"""The inversion sweep: Ray Tune over the settings of bringing a photo to life (paper 3.2).

Each trial inverts the same photos (one batch, so they advance together) into a trained run
with its own `invert.*` values, through the animate command's `PhotoAnimator` and `Inverter`.
Every `report_every` optimisation steps (O steps, then F steps) it reports:

    rec_lpips      LPIPS between each photo and its reconstruction, whole image
    static_motion  how much the photo's time-lapse moves what should stay still: LPIPS between
                   frame 0 and each later frame of a `direction` animation, on the photo's
                   static pixels (its sky + water mask inverted), averaged
    rec_l1         the per-pixel error the inversion itself minimises (for reference)
    objective      rec_lpips + motion_weight x static_motion (lower is better)

ASHA compares trials at equal `steps` (optimisation steps done so far, O and F together). The
sweep definition (search space, motion weight, ASHA) is `tune/inversion.py`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from deeplandscape import storage
from deeplandscape.animate.homography import CLOCK_DIRECTIONS
from deeplandscape.config import InvertConfig, read_preset, validate_invert
from deeplandscape.evaluate import weights
from deeplandscape.evaluate.image_metrics import LPIPS_BACKBONES, MaskedLPIPS
from deeplandscape.invert.animate_photos import PhotoAnimator, inversion_config, list_photos
from deeplandscape.invert.inversion import Inversion, METHODS, resolve_method
from deeplandscape.invert.photos import PhotoError
from deeplandscape.raykit import actor_device, ensure_ray
from deeplandscape.render import Animation, to_uint8
from deeplandscape.runs import load_model
from deeplandscape.sweep import common

METRICS = ("rec_lpips", "static_motion", "rec_l1")


@dataclass
class InversionObjective:
    motion_weight: float = 1.0  # objective = rec_lpips + motion_weight x static_motion
    direction: str = "3h"  # clock direction of the animation that is checked (animate/homography.py)
    frames: int = 8  # frames rendered; each later frame is compared with frame 0
    speed: float = 2.5  # the animate command's default
    lpips_net: str = "vgg"

    def __post_init__(self) -> None:

        if self.direction not in CLOCK_DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(CLOCK_DIRECTIONS)}, got {self.direction!r}")
        if self.frames < 2:
            raise ValueError(f"frames must be >= 2, got {self.frames}")

    def describe(self) -> str:
        return (f"objective = rec_lpips + {self.motion_weight:g} x static_motion (lower is better): LPIPS of each "
                f"photo against its reconstruction, plus LPIPS between frame 0 and frames 1..{self.frames - 1} "
                f"of its {self.direction} time-lapse (speed {self.speed:g}) on its static pixels")


class Progress:
    """`Inverter.on_step`: counts O and F steps; every `report_every` steps measures the current
    state and reports it to Tune (one step later, so the last report can say `finished`)."""

    def __init__(self, animator, photos, lpips, settings: InversionObjective, report_every: int,
                 report: Callable[[dict[str, Any]], None]):

        self.animator, self.photos, self.lpips, self.s = animator, photos, lpips, settings
        self.report_every, self.report = report_every, report
        self.steps, self.stage_steps, self.pending = 0, {"O": 0, "F": 0}, None
        r = animator.resolution
        self.dynamic = torch.stack([torch.from_numpy(p.dynamic).float()[None] if p.dynamic is not None
                                    else torch.full((1, r, r), float("nan")) for p in photos])
        self.method = resolve_method(animator.cfg.method, any(p.dynamic is not None for p in photos))
        self.keep_st, self.keep_dyn = animator.inverter.keep_maps(METHODS[self.method], self.dynamic, len(photos))
        self.targets = np.stack([p.square for p in photos])  # uint8 [B, R, R, 3]

    def on_step(self, stage: str, step: int, current) -> None:
        self.steps += 1
        self.stage_steps[stage] = step
        if self.pending is not None:
            self.report(self.pending)
            self.pending = None
        if self.steps % self.report_every == 0:
            self.pending = {**self.measure(*current()), **self._clock(stage), common.FINISHED: 0}

    def finish(self, inv) -> dict[str, Any]:
        """The last report, at the end of the inversion."""
        if self.pending is None:  # the last step was not measured yet
            self.pending = {**self.measure(inv.ws, inv.S_st, inv.S_dyn, inv.params),
                            **self._clock("F" if inv.params is not None else "O")}
        final = {**self.pending, common.FINISHED: 1}
        self.report(final)
        self.pending = None
        return final

    def _clock(self, stage: str) -> dict[str, Any]:
        return {"steps": self.steps, "stage": stage, "o_steps": self.stage_steps["O"], "f_steps": self.stage_steps["F"]}

    @torch.no_grad()
    def measure(self, ws, S_st, S_dyn, params) -> dict[str, float]:
        """rec_lpips, rec_l1, static_motion and the objective of the current latents (and weights)."""

        a, s, b = self.animator, self.s, len(self.photos)
        inv = Inversion(self.method, a.resolution, a.inverter.alpha, ws, ws, S_st, S_dyn, self.keep_st,
                        self.keep_dyn, params, {}, [self.method] * b)
        out = a.inverter.reconstruct(inv)  # [B, 3, R, R] in [-1, 1]
        recon = to_uint8(out)  # [B, R, R, 3]
        target = torch.from_numpy(self.targets).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(out.device)
        rec_l1 = float((out - target).abs().mean())
        rec_lpips = float(np.mean(self.lpips.per_image(recon, self.targets, np.ones(recon.shape[:3], bool))))
        motion = []
        for i, photo in enumerate(self.photos):
            animation = Animation(motion=CLOCK_DIRECTIONS[s.direction], speed=s.speed, horizon=photo.horizon)
            frames = np.concatenate(list(a.render(inv.photo(i), animation, s.frames)))  # [F, R, R, 3]
            static = np.repeat(~photo.dynamic[None], len(frames) - 1, axis=0)  # [F-1, R, R]
            first = np.repeat(frames[:1], len(frames) - 1, axis=0)
            motion.append(np.nanmean(self.lpips.per_image(first, frames[1:], static)))
        static_motion = float(np.mean(motion))
        return {"rec_lpips": rec_lpips, "rec_l1": rec_l1, "static_motion": static_motion,
                common.OBJECTIVE: rec_lpips + s.motion_weight * static_motion}


# ---------------------------------------------------------------- the trial

def _trial(params: dict[str, Any], consts: dict[str, Any]) -> None:
    """One trial: invert the sweep's photos with this trial's settings, reporting as it goes."""
    from ray import tune


    # The driver's weight cache, named to this process (an actor's environment may differ):
    # the inversion's own perceptual loss looks its backbone up there.
    os.environ["DEEPLANDSCAPE_WEIGHTS"] = consts["weights_dir"]
    device = actor_device(consts["gpu"])
    overrides = {**consts["overrides"], **{k: common.plain(v) for k, v in params.items()},
                 "invert.batch": len(consts["photos"])}  # one batch: the photos advance together
    icfg = inversion_config(load_model(consts["run_dir"]).cfg, consts["preset"], overrides)
    animator = PhotoAnimator(consts["run_dir"], icfg, device, log=lambda _msg: None)
    photos = [animator.read(uri) for uri in consts["photos"]]
    lpips = MaskedLPIPS(consts["settings"].lpips_net, device, consts["lpips_path"])
    progress = Progress(animator, photos, lpips, consts["settings"], consts["report_every"], tune.report)
    animator.inverter.on_step = progress.on_step
    progress.finish(animator.invert(photos))


# ---------------------------------------------------------------- the driver

@dataclass
class InversionSweep:
    """A sweep's arguments (tune/inversion.py's command line)."""

    run_dir: str  # a trained run with its encoder (deeplandscape train-encoder)
    photos: list[str]  # photos, folders or s3:// prefixes; NAME.mask.png next to each (or a segmentation model)
    storage: str = "sweeps"  # the sweep's home: STORAGE/NAME (folder or s3://)
    name: str = "inversion"
    samples: int = 32
    preset: str | None = None  # an inversion preset every trial starts from (--inversion)
    overrides: dict[str, Any] = field(default_factory=dict)  # --set invert.KEY=VALUE for every trial
    report_every: int = 25  # optimisation steps between reports
    max_photos: int = 8  # the first photos (sorted) are used; all are inverted as one batch
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 0  # 0: as many as the cluster's CPUs / GPUs hold
    out: str = ""  # table, best.toml and index.html; default: sweeps/NAME (a local folder)


def check_inputs(sweep: InversionSweep, settings: InversionObjective, log=print):
    """Everything a trial needs, checked once with clear errors: the run, its encoder, the weight
    files, readable photos with known static regions. Returns (run config's invert, photo URIs)."""

    bad_keys = sorted(k for k in sweep.overrides if not k.startswith("invert."))
    if bad_keys:
        raise ValueError(f"--set may only change invert.* keys here, not {bad_keys}")
    if not storage.exists(sweep.run_dir):
        raise FileNotFoundError(f"no run directory at {sweep.run_dir}")
    run_cfg = load_model(sweep.run_dir).cfg  # FileNotFoundError when it holds no checkpoint
    icfg = inversion_config(run_cfg, sweep.preset, sweep.overrides)
    weights.weight_path(LPIPS_BACKBONES[settings.lpips_net])  # names the fetch command
    uris, missing = list_photos(sweep.photos)
    if missing:
        raise FileNotFoundError(missing[0]["error"])
    uris = uris[: sweep.max_photos]
    animator = PhotoAnimator(sweep.run_dir, dataclasses.replace(icfg, batch=len(uris)), log=lambda _m: None)
    unmasked = []
    for uri in uris:
        try:
            photo = animator.read(uri)
        except PhotoError as e:
            raise ValueError(f"a sweep photo cannot be used: {e}") from e
        if photo.dynamic is None or not (~photo.dynamic).any():
            unmasked.append(uri)
    if unmasked:
        raise ValueError(f"the static-motion penalty needs each photo's static region: put NAME.mask.png next to "
                         f"{', '.join(unmasked[:5])} (255 = sky or water), or set invert.segmentation_model")
    method = resolve_method(icfg.method, have_masks=True)  # every sweep photo has a mask (checked above)
    log(f"{len(uris)} photo(s) from {', '.join(sweep.photos)}, inverted with {method} into {sweep.run_dir}")
    return run_cfg, icfg, uris


def run_sweep(sweep: InversionSweep, space: Callable[[InvertConfig], dict[str, Any]], settings: InversionObjective,
              scheduler: Callable[[InvertConfig], Any], log=print) -> dict[str, Any]:
    """Run (or resume) the sweep; write the table, best.toml and index.html; return them."""
    import ray
    from ray import tune


    if sweep.report_every < 1:
        raise ValueError(f"--report-every must be >= 1, got {sweep.report_every}")
    run_cfg, icfg, uris = check_inputs(sweep, settings, log)
    swept = space(icfg)
    bad = [k for k in swept if not k.startswith("invert.") or k.split(".", 1)[1] not in InvertConfig.__annotations__]
    if bad:
        raise ValueError(f"the search space may only vary invert.* fields, not {bad}")
    example = dataclasses.replace(icfg, **{k.split(".", 1)[1]: common.example_value(v) for k, v in swept.items()})
    validate_invert(example)
    path = common.sweep_dir(sweep.storage, sweep.name)
    recorded = {"kind": "inversion", "run_dir": sweep.run_dir, "photos": uris, "preset": sweep.preset,
                "overrides": sweep.overrides, "space": common.describe_space(swept),
                "objective": dataclasses.asdict(settings),
                "report_every": sweep.report_every, "samples": sweep.samples}
    common.check_or_record_settings(path, recorded, log)
    ensure_ray(log, dashboard=True)  # Tune stops trials: Ray Train cleans up through the state API
    backbone = LPIPS_BACKBONES[settings.lpips_net]
    consts = {"run_dir": sweep.run_dir if storage.is_remote(sweep.run_dir) else storage.resolve(sweep.run_dir)[1],
              "photos": uris, "preset": sweep.preset, "overrides": sweep.overrides, "settings": settings,
              "report_every": sweep.report_every, "weights_dir": str(weights.cache_dir()),
              "lpips_path": str(weights.weight_path(backbone)), "gpu": sweep.gpus_per_trial > 0}
    total = ray.cluster_resources()
    fits = (total.get("GPU", 0) // sweep.gpus_per_trial if sweep.gpus_per_trial
            else total.get("CPU", 1) // sweep.cpus_per_trial)
    concurrent = sweep.max_concurrent or max(1, int(fits))
    log(f"sweep {path}: {sweep.samples} trial(s), {concurrent} at a time; a report every {sweep.report_every} steps")
    trainable = tune.with_resources(tune.with_parameters(_trial, consts=consts),
                                    {"cpu": sweep.cpus_per_trial, "gpu": sweep.gpus_per_trial})
    # reuse_actors: a trial starts in the process of one that ended (no new Python, no re-imports).
    tune_config = tune.TuneConfig(metric=common.OBJECTIVE, mode="min", num_samples=sweep.samples,
                                  scheduler=scheduler(icfg), max_concurrent_trials=concurrent, reuse_actors=True)
    results = common.run_tuner(trainable, swept, tune_config, path, log)
    report = common.Sweep(title=f"Inversion sweep {sweep.name}", params=list(swept), metrics=list(METRICS),
                          time_attr="steps", objective_doc=settings.describe(),
                          space_doc=common.describe_space(swept))
    base_keys = read_preset(sweep.preset) if sweep.preset else {}

    def preset(best: dict[str, Any]) -> str:
        keys = {**base_keys, **sweep.overrides, **{k: common.plain(best[k]) for k in swept}}
        return common.preset_text(keys, f"Best trial {best['trial']} of the inversion sweep {path}:\n"
                                        f"objective {best[common.OBJECTIVE]:.4g}; {settings.describe()}.\n"
                                        f"Over the run's own invert settings"
                                        f"{f' and the preset {sweep.preset!r}' if sweep.preset else ''}.\n"
                                        f"Use: deeplandscape animate PHOTOS --run-dir RUN --inversion THIS_FILE.toml")

    return common.finish(results, report, sweep.out or storage.join("sweeps", sweep.name), preset, log)
