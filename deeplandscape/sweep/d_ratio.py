"""The D-ratio sweep: Ray Tune over how the pairwise discriminator's share is annealed.

Each trial is one Ray Train run (Train V2's pattern, RAY_NOTES "Tune with Train V2"): Tune
runs `_trial` per trial, which builds the TorchTrainer through `deeplandscape.train.launch.train`
with ``RunConfig(callbacks=[TuneReportCallback()])``, so every training report reaches Tune.
At each log step (every `eval_every` training steps) the worker's `GenerationObjective` adds
the generation protocol's numbers (paper Fig. 6, `evaluate/generation.py`) to the report:

    fid            FID of `fid_samples` samples of G_ema against the real photos, both at the
                   resolution the run has reached
    static_lpips   LPIPS between the two images of `pairs` pairs that share z_st and S_st, on
                   the static pixels (sky and water masked out): lower = more consistent
    static_ssim    SSIM of the same pairs (higher = more consistent)
    objective      sum of weight x value over the weights the sweep definition gives

ASHA compares trials on `objective` at the same kimg (its clock is ``kimg``, restored with the
training checkpoint when a sweep resumes). Every trial trains in its own run directory,
``SWEEP/runs/<trial id>``: a resumed sweep resumes each unfinished run from its checkpoint.
The sweep definition (search space, weights, ASHA) is `tune/d_ratio.py`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from ray.train import UserCallback

from deeplandscape import storage
from deeplandscape.config import Config, apply_overrides, load_config, read_preset, validate
from deeplandscape.evaluate import inputs, stats_cache, weights
from deeplandscape.evaluate.fid import InceptionFeatures
from deeplandscape.evaluate.generation import MaskSpec, StaticMasks, pair_latents, prior_static_mask, render_pairs
from deeplandscape.evaluate.image_metrics import LPIPS_BACKBONES, MaskedLPIPS, masked_ssim_per_image
from deeplandscape.evaluate.inputs import read_image
from deeplandscape.evaluate.pipeline import FeatureSpec, collection_stats, load_stats_file, save_stats
from deeplandscape.evaluate.stats import FeatureStats, frechet_distance
from deeplandscape.raykit import ensure_ray
from deeplandscape.sweep import common
from deeplandscape.train.launch import train
from deeplandscape.train.schedule import num_phases, phase_at

METRICS = ("fid", "static_lpips", "static_ssim")
LPIPS_MIN_SIZE = 16  # LPIPS-VGG pools 4 times (evaluate/generation.py)
TRIAL_DRIVER_MEMORY = 512 * 1024**2  # bytes Ray reserves for a trial's driver function


# ---------------------------------------------------------------- the objective, in the worker

@dataclass
class ObjectiveSettings:
    weights: dict[str, float]  # metric name (METRICS) -> weight; objective = sum(weight x value)
    fid_samples: int = 500  # samples of G_ema for FID (the paper's protocol uses 2400)
    pairs: int = 200  # pairs for static LPIPS / SSIM (paper: 1200)
    masks: str = "prior"  # static pixels of generated pairs: "prior" (real photos' masks) | "none"
    lpips_net: str = "vgg"
    seed: int = 0
    batch: int = 16  # samples rendered at once

    def __post_init__(self) -> None:
        unknown = sorted(set(self.weights) - set(METRICS))
        if unknown or not self.weights:
            raise ValueError(f"objective weights must name some of {METRICS}, got {sorted(self.weights)}")
        if self.fid_samples < 2 or self.pairs < 1:
            raise ValueError(f"need fid_samples >= 2 and pairs >= 1, got {self.fid_samples}, {self.pairs}")
        if self.masks not in ("prior", "none"):
            raise ValueError(f"masks must be 'prior' or 'none', got {self.masks!r}")

    def _pixels(self) -> str:
        return "static pixels from the real photos' masks" if self.masks == "prior" else "all pixels"

    def describe(self) -> str:
        terms = " + ".join(f"{w:g} x {k}" for k, w in self.weights.items())
        return (f"objective = {terms} (lower is better), from {self.fid_samples} samples for FID and "
                f"{self.pairs} pairs sharing z_st and S_st for the static LPIPS / SSIM "
                f"({self._pixels()}), "
                f"at the resolution each run had reached")


class GenerationObjective:
    """`run_worker`'s `metrics_fn`: on rank 0, the generation protocol on G_ema at the resolution
    reached, computed in the worker (no Ray Data inside a training run). The other ranks add
    nothing: Tune receives rank 0's report. Networks load on first use; weight files and real
    statistics are named by the driver, which checked that they exist."""

    def __init__(self, settings: ObjectiveSettings, total_kimg: float, real_stats: dict[int, str],
                 priors: dict[int, list] | None, inception_path: str, lpips_path: str):
        self.settings, self.total_kimg = settings, total_kimg
        self.real_stats, self.priors = real_stats, priors
        self.inception_path, self.lpips_path = inception_path, lpips_path
        self._nets: dict[str, Any] = {}
        self._real: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __getstate__(self) -> dict[str, Any]:  # loaded networks never travel
        return {**self.__dict__, "_nets": {}, "_real": {}}

    def _load(self, device: torch.device) -> None:
        if not self._nets:

            self._nets["inception"] = InceptionFeatures(device, self.inception_path)
            self._nets["lpips"] = MaskedLPIPS(self.settings.lpips_net, device, self.lpips_path)

    def _real_mean_cov(self, resolution: int) -> tuple[np.ndarray, np.ndarray]:

        if resolution not in self._real:
            if resolution not in self.real_stats:
                raise ValueError(f"no real statistics at {resolution} px (have {sorted(self.real_stats)})")
            s = load_stats_file(self.real_stats[resolution])
            self._real[resolution] = (s.mean(), s.cov())
        return self._real[resolution]

    def __call__(self, trainer, metrics: dict[str, Any]) -> dict[str, Any]:
        if trainer.ctx.rank != 0:
            return {}
        cfg = trainer.cfg
        phase = phase_at(trainer.images_seen, cfg.train, cfg.model.resolution)
        values = self.evaluate(trainer.G_ema, phase.resolution, phase.alpha, trainer.device)
        values[common.OBJECTIVE] = sum(w * values[k] for k, w in self.settings.weights.items())
        values["eval_resolution"] = phase.resolution
        values[common.FINISHED] = int(trainer.images_seen >= self.total_kimg * 1000)
        return values

    @torch.no_grad()
    def evaluate(self, G, resolution: int, alpha: float, device: torch.device) -> dict[str, float]:
        """FID, static LPIPS and SSIM of G (paper Fig. 6, as evaluate/generation.py computes them)."""

        s = self.settings
        self._load(device)
        prior = None if self.priors is None else np.asarray(self.priors[resolution], bool)
        masks = StaticMasks(MaskSpec(s.masks), prior, device)
        fake = FeatureStats.empty(2048)
        lpips, ssim = [], []
        for start in range(0, max(s.fid_samples, s.pairs), s.batch):
            idx = np.arange(start, min(max(s.fid_samples, s.pairs), start + s.batch))
            lat = pair_latents(G, idx.tolist(), s.seed, resolution)
            lat = type(lat)(**{f.name: _to(getattr(lat, f.name), device) for f in dataclasses.fields(lat)})
            pairs = render_pairs(G, lat, resolution, alpha)  # uint8 [B, 2, r, r, 3]
            use = idx < s.fid_samples
            if use.any():
                fake.update(self._nets["inception"].features(pairs[use, 0]))
            sel = idx < s.pairs
            if sel.any():
                keep = masks(pairs[sel])  # [P, r, r], True on static pixels
                ssim.append(masked_ssim_per_image(pairs[sel, 0], pairs[sel, 1], keep))
                lpips.append(self._nets["lpips"].per_image(*_lpips_size(pairs[sel, 0], pairs[sel, 1], keep)))
        mu, cov = self._real_mean_cov(resolution)
        return {"fid": frechet_distance(mu, cov, fake.mean(), fake.cov()),
                "static_lpips": float(np.nanmean(np.concatenate(lpips))),
                "static_ssim": float(np.nanmean(np.concatenate(ssim)))}


def _to(v, device):
    return [t.to(device) for t in v] if isinstance(v, list) else v.to(device)


def _lpips_size(a: np.ndarray, b: np.ndarray, keep: np.ndarray):
    """Below 16 px (the first phases) LPIPS-VGG has no pixel left at its last layer: images and
    mask are enlarged by pixel repetition to 16 px, so every phase gets a value; trials are
    compared at equal kimg, hence at equal resolution, so the values stay comparable."""
    r = a.shape[1]
    if r >= LPIPS_MIN_SIZE:
        return a, b, keep
    k = math.ceil(LPIPS_MIN_SIZE / r)
    up = lambda x: x.repeat(k, axis=1).repeat(k, axis=2)  # noqa: E731
    return up(a), up(b), up(keep)


# ---------------------------------------------------------------- the driver

@dataclass
class DRatioSweep:
    """A sweep's arguments (tune/d_ratio.py's command line)."""

    preset: str  # configs/NAME.toml or a .toml path: the base config of every trial
    images: str  # training photos (folder, s3:// prefix or prepared shards)
    videos: str  # training time-lapses
    storage: str  # the sweep's home: STORAGE/NAME (folder or s3://)
    name: str = "d-ratio"
    samples: int = 16  # trials (Tune's num_samples; a grid multiplies it)
    overrides: dict[str, Any] = field(default_factory=dict)  # --set, applied to every trial
    gpus_per_trial: int = 0  # > 0: that many Ray Train workers with one GPU each
    max_concurrent: int = 0  # trials at once; 0: as many as the cluster's CPUs / GPUs hold
    eval_every: int = 0  # training steps between objective reports (sets train.log_every); 0: the preset's
    real_images: str = ""  # real photos for FID and the mask prior; default: `images`
    out: str = ""  # table, best.toml and index.html; default: sweeps/NAME (a local folder)

    def base_config(self) -> Config:
        # Absolute on the driver: a trial runs in a folder of Tune's, not the user's.
        cfg = load_config(self.preset, {"data.images": storage.absolute(self.images),
                                        "data.videos": storage.absolute(self.videos), **self.overrides})
        if self.gpus_per_trial > 0:
            cfg.scale.use_gpu, cfg.scale.workers = True, self.gpus_per_trial
        if self.eval_every > 0:
            cfg.train.log_every = self.eval_every
        if cfg.scale.cpus_per_worker <= 0:  # auto would give each trial the whole cluster: one CPU per worker
            cfg.scale.cpus_per_worker = 1
        validate(cfg)
        return cfg


def eval_resolutions(cfg: Config) -> list[int]:
    """The resolutions of the phases a run starts before `total_kimg`: where reports can fall."""
    t = cfg.train
    return [t.start_resolution * 2**k for k in range(num_phases(t, cfg.model.resolution))
            if k * t.phase_kimg < t.total_kimg]


IN_PROCESS_PHOTOS = 256  # real sets up to this size are read on the driver; larger ones by Ray Data actors


def real_statistics(real_images: str, resolutions: list[int], inception_path: str, out: str,
                    log=print) -> dict[int, str]:
    """Inception statistics of the real photos at each resolution, copied into the sweep so every
    trial reads the same files. Both paths use the project's statistics cache (evaluate/
    stats_cache.py, keyed by the files and settings), so a second sweep on the same photos
    computes nothing: a small set is read in this process (starting Ray Data actors costs more
    than reading a few hundred photos), a large one by `collection_stats`' actor pool."""

    entries = inputs.list_entries(real_images, "images")
    if len(entries) < 2:
        raise ValueError(f"FID needs at least 2 real photos, found {len(entries)} in {real_images}")
    uris, inception = {}, None
    for r in resolutions:
        uris[r] = storage.join(out, f"inception-{r}px.npz")
        if storage.exists(uris[r]):
            continue
        spec = FeatureSpec("inception", inception_path, r)
        if len(entries) > IN_PROCESS_PHOTOS:
            [(stats, info)] = collection_stats([real_images], spec, workers=2, batch_size=16)
            cache = info["cache"]
        else:
            key = inputs.fingerprint(entries, spec.settings())
            stats, cache = stats_cache.load(spec.network, key), "hit"
            if stats is None:
                inception = inception or InceptionFeatures("cpu", inception_path)
                stats, cache = FeatureStats.of(inception.features(np.stack([_read(e.uri, r) for e in entries]))), "miss"
                stats_cache.save(spec.network, key, stats, dict(source=real_images, files=len(entries),
                                                                settings=spec.settings()))
        save_stats(stats, uris[r])
        log(f"real statistics at {r} px: {stats.n} photos (statistics cache: {cache})")
    return uris


def _read(uri: str, resolution: int) -> np.ndarray:
    """A real photo as FID reads it (evaluate/inputs.py: PIL bicubic to r x r), naming a bad file."""

    try:
        return read_image(uri, resolution)
    except Exception as e:  # noqa: BLE001 - any decoding failure, reported with the file
        raise ValueError(f"real photo {uri} cannot be read: {e}") from e


def check_space(cfg: Config, space: dict[str, Any]) -> None:
    """Every swept key is a config field, and a value from it passes validation."""
    trial = Config.from_dict(cfg.to_dict())
    apply_overrides(trial, {key: common.example_value(domain) for key, domain in space.items()})
    validate(trial)


# ---------------------------------------------------------------- one trial

# Trials running in this process (a Tune trial actor): trial id -> the queue through which its
# Train controller sends its own handle (and word that the run reported its last step), and an
# event set when its `train` call has returned. `_abort_run` uses them when Tune ends a trial.
_RUNNING: dict[str, dict[str, Any]] = {}
_FINISHED = "finished"


def _trial(params: dict[str, Any], base: dict[str, Any], runs: str, objective: GenerationObjective) -> None:
    """One trial: a Ray Train run of the base config with this trial's values."""
    import threading

    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback
    from ray.util.queue import Queue


    cfg = Config.from_dict(base)
    apply_overrides(cfg, {k: common.plain(v) for k, v in params.items()})
    validate(cfg)
    trial_id = tune.get_context().get_trial_id()
    run = _RUNNING[trial_id] = {"queue": Queue(maxsize=2, actor_options={"num_cpus": 0}),
                                "done": threading.Event(), "aborted": False}
    try:
        train(cfg, storage.join(runs, trial_id), log=lambda line: print(f"[{trial_id}] {line}"),
              metrics_fn=objective, callbacks=[_ControllerMessages(run["queue"]), TuneReportCallback()])
    except Exception:
        if run["aborted"]:  # Tune stopped the trial and `_abort_run` ended its run: not an error
            return
        raise
    finally:
        run["done"].set()
        _RUNNING.pop(trial_id, None)


class _ControllerMessages(UserCallback):
    """Runs in the Train controller. At the first report it sends the controller's own handle
    to the trial (ASHA can stop a trial only after a report, so the handle is there by then);
    at the run's last report it says so."""

    def __init__(self, queue):
        self.queue, self.sent_handle = queue, False

    def after_report(self, run_context, metrics, checkpoint) -> None:
        import ray

        if not self.sent_handle:
            self.queue.put(ray.get_runtime_context().current_actor)
            self.sent_handle = True
        if metrics and metrics[0].get(common.FINISHED):
            self.queue.put(_FINISHED)


def _abort_run(trial_id: str, finish_timeout_s: float = 300.0) -> None:
    """Tune is ending a trial (ASHA stopped it, or its last report reached ASHA's max_t) while its
    `train` call may still run. A run that reported its last step is left to save its final
    checkpoint and end; any other is aborted here, while the trial actor is alive: the Train
    controller then stops its workers and removes their placement group itself. Without this
    the controller dies with the trial actor and the placement group lives on until the sweep
    ends, holding the CPUs or GPUs the next trials wait for (Ray Train's own cleaner for that
    case needs the dashboard's state API, RAY_NOTES "Install")."""
    import ray

    run = _RUNNING.get(trial_id)
    if run is None:  # its train call has returned
        return
    messages = []
    while not run["queue"].empty():
        messages.append(run["queue"].get())
    controller = next((m for m in messages if m != _FINISHED), None)
    if _FINISHED in messages and run["done"].wait(finish_timeout_s):
        return
    if controller is None:  # stopped before its first report: nothing to reach
        return
    run["aborted"] = True
    try:
        ray.get(controller.abort.remote(), timeout=120)
    except ray.exceptions.RayActorError:
        pass  # abort() ends the controller process: the expected outcome
    except ray.exceptions.GetTimeoutError:
        print(f"[{trial_id}] the Train controller did not abort within 120 s")
    run["done"].wait(30)


def trial_trainable(base: dict[str, Any], runs: str, objective: GenerationObjective):
    """Tune's trainable: `_trial` with the sweep's constants, as a function trainable whose
    `cleanup` (Tune calls it before ending a trial's actor) aborts a run still training."""
    from ray.tune.trainable.function_trainable import wrap_function

    def d_ratio_trial(config):
        return _trial(config, base, runs, objective)

    class DRatioTrial(wrap_function(d_ratio_trial)):
        def cleanup(self):
            _abort_run(self.trial_id)
            super().cleanup()

    return DRatioTrial


def default_concurrency(cfg: Config) -> int:
    import ray

    total = ray.cluster_resources()
    if cfg.scale.use_gpu:
        return max(1, int(total.get("GPU", 0) // cfg.scale.workers))
    return max(1, int(total.get("CPU", 1) // (cfg.scale.workers * cfg.scale.cpus_per_worker)))


def run_sweep(sweep: DRatioSweep, space: Callable[[Config], dict[str, Any]], objective: ObjectiveSettings,
              scheduler: Callable[[Config], Any], log=print) -> dict[str, Any]:
    """Run (or resume) the sweep; write the table, best.toml and index.html; return them."""
    from ray import tune


    cfg = sweep.base_config()
    space = space(cfg)
    check_space(cfg, space)
    real_images = storage.absolute(sweep.real_images or sweep.images)
    if not storage.exists(real_images):
        raise FileNotFoundError(f"no real photos at {real_images} (FID needs them; --real-images)")
    # Missing weight files fail here, naming the fetch command; never random weights.
    inception = str(weights.weight_path("inception"))
    backbone = str(weights.weight_path(LPIPS_BACKBONES[objective.lpips_net]))
    path = common.sweep_dir(sweep.storage, sweep.name)
    resolutions = eval_resolutions(cfg)
    settings = {"kind": "d_ratio", "preset": sweep.preset, "config": cfg.to_dict(),
                "space": common.describe_space(space),
                "objective": dataclasses.asdict(objective), "real_images": real_images, "samples": sweep.samples}
    common.check_or_record_settings(path, settings, log)
    ensure_ray(log, dashboard=True)  # Tune stops trials: Ray Train cleans up through the state API
    stats = real_statistics(real_images, resolutions, inception, storage.join(path, "real-stats"), log)
    priors = ({r: prior_static_mask(real_images, r)[0].tolist() for r in resolutions}
              if objective.masks == "prior" else None)
    metrics_fn = GenerationObjective(objective, cfg.train.total_kimg, stats, priors, inception, backbone)
    concurrent = sweep.max_concurrent or default_concurrency(cfg)
    log(f"sweep {path}: {sweep.samples} trial(s), {concurrent} at a time, each {cfg.scale.workers} Ray Train "
        f"worker(s); objective reported every {cfg.train.log_every} steps")
    # The trial function only waits for its TorchTrainer: it holds no CPU, the workers do (a
    # bundle cannot be empty, so it asks for the memory it uses instead).
    trainable = tune.with_resources(trial_trainable(cfg.to_dict(), storage.join(path, "runs"), metrics_fn),
                                    {"cpu": 0, "memory": TRIAL_DRIVER_MEMORY})
    # No actor reuse: a trial's actor must end through `cleanup`, which aborts a stopped run.
    tune_config = tune.TuneConfig(metric=common.OBJECTIVE, mode="min", num_samples=sweep.samples,
                                  scheduler=scheduler(cfg), max_concurrent_trials=concurrent, reuse_actors=False)
    results = common.run_tuner(trainable, space, tune_config, path, log)
    report = common.Sweep(title=f"D-ratio sweep {sweep.name}", params=list(space), metrics=list(METRICS),
                          time_attr="kimg", objective_doc=objective.describe(),
                          space_doc=common.describe_space(space))
    base_keys = read_preset(sweep.preset)

    def preset(best: dict[str, Any]) -> str:
        keys = {**base_keys, **{k: common.plain(best[k]) for k in space}}
        sets = ", ".join(f"{k}={v}" for k, v in sweep.overrides.items()) or "none"
        return common.preset_text(keys, f"Best trial {best['trial']} of the D-ratio sweep {path}:\n"
                                        f"objective {best[common.OBJECTIVE]:.4g}; {objective.describe()}.\n"
                                        f"The preset {sweep.preset!r} with the best values; the sweep's --set "
                                        f"values ({sets}) are not in it.\n"
                                        f"Use: deeplandscape train --config THIS_FILE.toml ...")

    return common.finish(results, report, sweep.out or storage.join("sweeps", sweep.name), preset, log)
