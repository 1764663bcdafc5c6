"""Batched inversion: latents W, S (and fine-tuned G weights) that reproduce B photos at once.

Paper 3.2 and Fig. 3. The letters of a method name the steps it runs:
    E   step 1, the encoder's W' (S random, nothing optimised)
    O   step 2, optimise W and all S from W' and S = 0 (Adam, lr halved on plateaus)
    I   step 2 with L_init, the penalty on W's deviation from W'
    F   step 3, fine-tune G's synthesis weights with the latents frozen
    S   segmentation: S_st is zero on dynamic pixels (sky, water), S_dyn zero on static ones
and two baselines start from the mean w instead of E: MO (optimise W and S from S = 0) and
I2S (Image2StyleGAN: optimise W only, S random and fixed).

Every loss is a sum over photos of per-photo terms and every optimiser is element-wise, so
B photos inverted together get exactly the updates each would get alone; the learning-rate
schedule of step 2 is kept per photo. Step 3 gives each photo its own copy of the synthesis
weights, stacked along a leading photo dimension and run with `torch.func.vmap` over
`functional_call` (convolutions with per-photo weights become one grouped convolution), so
G is never reloaded per photo.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch.func import functional_call, vmap

from deeplandscape.config import InvertConfig
from deeplandscape.invert.masks import level_masks
from deeplandscape.nets.generator import Generator


@dataclass(frozen=True)
class Steps:
    """What a method does (the columns of paper Fig. 3)."""

    init_w: str  # "encoder" | "mean"
    random_s: bool  # S starts random (else zero)
    optimise_w: bool
    optimise_s: bool
    l_init: bool
    finetune: bool
    segmentation: bool


METHODS: dict[str, Steps] = {
    "I2S": Steps("mean", True, True, False, False, False, False),
    "MO": Steps("mean", False, True, True, False, False, False),
    "E": Steps("encoder", True, False, False, False, False, False),
    "EO": Steps("encoder", False, True, True, False, False, False),
    "EOI": Steps("encoder", False, True, True, True, False, False),
    "EOIF": Steps("encoder", False, True, True, True, True, False),
    "EOIFS": Steps("encoder", False, True, True, True, True, True),
}


def resolve_method(method: str, have_masks: bool) -> str:
    """"auto" -> EOIFS when masks are known, else EOIF (the issue's default)."""
    if method == "auto":
        return "EOIFS" if have_masks else "EOIF"
    if method not in METHODS:
        raise ValueError(f"unknown inversion method {method!r}; choose from {', '.join(METHODS)} or auto")
    return method


@dataclass
class Inversion:
    """The inferred inputs of G for B photos (leading dimension B everywhere)."""

    method: str
    resolution: int
    alpha: float
    ws: torch.Tensor  # [B, L, w_dim] styles W
    ws_init: torch.Tensor  # [B, L, w_dim] W' (the start of step 2)
    S_st: list[torch.Tensor]  # per level [B, 1, r, r], static masking applied
    S_dyn: list[torch.Tensor]  # per level [B, 1, r, r], dynamic masking applied
    keep_st: list[torch.Tensor]  # per level [B, 1, r, r]: 1 where S_st may be non-zero
    keep_dyn: list[torch.Tensor]  # per level [B, 1, r, r]: 1 where S_dyn may be non-zero
    params: dict[str, torch.Tensor] | None = None  # fine-tuned synthesis weights [B, ...] (step F)
    losses: dict[str, list[float]] = field(default_factory=dict)  # stage -> per-photo L1 after it
    methods: list[str] = field(default_factory=list)  # per photo: EOIFS without a mask is EOIF

    def __len__(self) -> int:
        return self.ws.shape[0]

    def photo(self, i: int) -> "Inversion":
        """Photo i alone (leading dimension 1)."""
        pick = lambda xs: [x[i : i + 1] for x in xs]  # noqa: E731
        return replace(self, ws=self.ws[i : i + 1], ws_init=self.ws_init[i : i + 1], S_st=pick(self.S_st),
                       S_dyn=pick(self.S_dyn), keep_st=pick(self.keep_st), keep_dyn=pick(self.keep_dyn),
                       params=None if self.params is None else {k: v[i : i + 1] for k, v in self.params.items()},
                       losses={k: v[i : i + 1] for k, v in self.losses.items()},
                       method=self.methods[i], methods=self.methods[i : i + 1])


def synthesis_names(G: Generator) -> list[str]:
    """The parameters step F fine-tunes: the synthesis network (M is not used after inversion)."""
    return [name for name, _ in G.named_parameters() if name.startswith("blocks.")]


def run_generator(G: Generator, ws, S_st, S_dyn, resolution: int, alpha: float,
                  params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """G on B photos' latents; with `params` each photo uses its own weights (vmap)."""
    S_dyn_arg = S_dyn if G.cfg.separate_noise else None
    if params is None:
        return G(ws, S_st, S_dyn_arg, resolution, alpha)

    def one(p, w, s_st, s_dyn):
        s_dyn_one = [s[None] for s in s_dyn] if s_dyn is not None else None
        return functional_call(G, p, (w[None], [s[None] for s in s_st], s_dyn_one, resolution, alpha))[0]

    return vmap(one)(params, ws, S_st, S_dyn_arg)


def per_photo_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().flatten(1).mean(dim=1)


class BatchedPlateauAdam:
    """Adam over tensors whose first dimension is the photo, with one learning-rate factor per
    photo, halved when that photo's loss has not improved for `patience` steps (paper 3.2).
    A photo whose factor has been halved 10 times stops moving."""

    def __init__(self, groups: list[tuple[list[torch.Tensor], float]], batch: int, patience: int,
                 betas=(0.9, 0.999), eps: float = 1e-8, min_factor: float = 2.0**-10):
        self.groups, self.patience, self.betas, self.eps, self.min_factor = groups, patience, betas, eps, min_factor
        dev = groups[0][0][0].device
        self.factor = torch.ones(batch, device=dev)
        self.best = torch.full((batch,), float("inf"), device=dev)
        self.bad = torch.zeros(batch, dtype=torch.long, device=dev)
        self.m = [[torch.zeros_like(p) for p in ps] for ps, _ in groups]
        self.v = [[torch.zeros_like(p) for p in ps] for ps, _ in groups]
        self.t = 0

    @property
    def active(self) -> torch.Tensor:
        return self.factor >= self.min_factor

    @torch.no_grad()
    def step(self, losses: torch.Tensor, grads: list[list[torch.Tensor]]) -> None:
        """`losses` [B] at the current values, `grads` per group and tensor."""
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        factor = torch.where(self.active, self.factor, torch.zeros_like(self.factor))
        for (params, lr), ms, vs, gs in zip(self.groups, self.m, self.v, grads):
            for p, m, v, g in zip(params, ms, vs, gs):
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                size = (lr * factor / c1).view(-1, *[1] * (p.ndim - 1))
                p.sub_(size * m / (v.div(c2).sqrt() + self.eps))
        improved = losses < self.best * (1 - 1e-4)
        self.best = torch.where(improved, losses, self.best)
        self.bad = torch.where(improved, torch.zeros_like(self.bad), self.bad + 1)
        halve = self.bad > self.patience
        self.factor = torch.where(halve, self.factor / 2, self.factor)
        self.bad = torch.where(halve, torch.zeros_like(self.bad), self.bad)


class Inverter:
    """Everything inversion needs, loaded once: G, E (for E* methods), the perceptual loss."""

    def __init__(self, G: Generator, resolution: int, alpha: float, icfg: InvertConfig, encoder=None,
                 perceptual=None, w_avg: torch.Tensor | None = None, log=None):
        self.G, self.resolution, self.alpha, self.cfg = G, resolution, alpha, icfg
        self.E, self.perceptual, self.log = encoder, perceptual, log or (lambda _msg: None)
        self.device = next(G.parameters()).device
        self.w_avg = w_avg if w_avg is not None else (encoder.w_avg if encoder is not None else None)
        # Sweeps (deeplandscape/sweep/inversion.py): on_step(stage "O" | "F", step, current) after
        # every optimiser step; current() -> (ws, S_st, S_dyn, params or None), detached.
        self.on_step = None

    # --- pieces ----------------------------------------------------------------------------
    def _perceptual(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-photo LPIPS (spatial map averaged), differentiable; inputs in [-1, 1]."""
        if self.perceptual is None:
            raise ValueError("a perceptual weight is set (invert.opt_perceptual / finetune_perceptual) but no "
                             "perceptual network was loaded")
        return self.perceptual(a, b).flatten(1).mean(dim=1)

    def reconstruction_loss(self, out, target, l1: float, perceptual: float) -> torch.Tensor:
        loss = l1 * per_photo_l1(out, target)
        if perceptual > 0:
            loss = loss + perceptual * self._perceptual(out, target)
        return loss

    def initial_ws(self, steps: Steps, photos: torch.Tensor) -> torch.Tensor:
        L = self.G.num_levels
        if steps.init_w == "encoder":
            if self.E is None:
                raise ValueError("this method starts from the encoder E, but none was loaded "
                                 "(train one with `deeplandscape train-encoder`)")
            with torch.no_grad():
                return self.E(photos).to(self.device)
        if self.w_avg is None:
            raise ValueError("methods MO and I2S start from the mean w, but none was given")
        return self.w_avg.view(1, 1, -1).expand(len(photos), L, -1).clone()

    def initial_noise(self, steps: Steps, batch: int, seeds: list[int]) -> tuple[list, list]:
        shapes = self.G.noise_shapes(self.resolution)
        if not steps.random_s:
            zeros = [torch.zeros(batch, *s, device=self.device) for s in shapes]
            return zeros, [z.clone() for z in zeros]
        st, dyn = [], []
        for seed in seeds:  # one generator per photo: a photo's noise does not depend on its batch
            gen = torch.Generator(device=self.device).manual_seed(seed)
            st.append(self.G.make_noise(1, self.resolution, gen, self.device))
            dyn.append(self.G.make_noise(1, self.resolution, gen, self.device))
        cat = lambda maps: [torch.cat([m[k] for m in maps]) for k in range(len(shapes))]  # noqa: E731
        return cat(st), cat(dyn)

    def keep_maps(self, steps: Steps, dynamic: torch.Tensor | None, batch: int) -> tuple[list, list]:
        """Per level, where S_st and S_dyn may be non-zero. `dynamic` [B, 1, R, R] in {0, 1}, with
        NaN rows for photos without a mask (no masking for those)."""
        ones = [torch.ones(batch, *s, device=self.device) for s in self.G.noise_shapes(self.resolution)]
        if not steps.segmentation or dynamic is None:
            return ones, [o.clone() for o in ones]
        has = ~torch.isnan(dynamic.flatten(1)).any(dim=1)  # [B]
        dyn = level_masks(torch.nan_to_num(dynamic, nan=0.0).to(self.device), self.resolution)
        has = has.to(self.device).view(-1, 1, 1, 1)
        keep_dyn = [torch.where(has, d, o) for d, o in zip(dyn, ones)]
        keep_st = [torch.where(has, 1 - d, o) for d, o in zip(dyn, ones)]
        return keep_st, keep_dyn

    # --- steps 2 and 3 ---------------------------------------------------------------------
    def optimise_latents(self, steps: Steps, target, ws, ws_init, S_st, S_dyn, keep_st, keep_dyn):
        c = self.cfg
        ws = ws.clone().requires_grad_(steps.optimise_w)
        S_st = [s.clone().requires_grad_(steps.optimise_s) for s in S_st]
        S_dyn = [s.clone().requires_grad_(steps.optimise_s) for s in S_dyn]
        groups = ([([ws], c.opt_lr)] if steps.optimise_w else []) + \
                 ([(S_st + S_dyn, c.opt_lr * c.noise_lr_mult)] if steps.optimise_s else [])
        opt = BatchedPlateauAdam(groups, len(target), c.opt_patience)
        for i in range(c.opt_steps):
            if not bool(opt.active.any()):
                break
            out = run_generator(self.G, ws, [s * k for s, k in zip(S_st, keep_st)],
                                [s * k for s, k in zip(S_dyn, keep_dyn)], self.resolution, self.alpha)
            loss = self.reconstruction_loss(out, target, c.opt_l1, c.opt_perceptual)
            if steps.l_init:
                loss = loss + c.init_weight * (ws - ws_init).pow(2).flatten(1).mean(dim=1)
            grads = torch.autograd.grad(loss.sum(), [p for ps, _ in groups for p in ps])
            it = iter(grads)
            opt.step(loss.detach(), [[next(it) for _ in ps] for ps, _ in groups])
            if self.on_step is not None:
                self.on_step("O", i + 1, lambda: (ws.detach(), [s.detach() * k for s, k in zip(S_st, keep_st)],
                                                  [s.detach() * k for s, k in zip(S_dyn, keep_dyn)], None))
            if i % 50 == 0:
                self.log(f"  O step {i:4d}: loss {loss.mean().item():.4f}, lr x{opt.factor.mean().item():.3f}")
        return ws.detach(), [s.detach() * k for s, k in zip(S_st, keep_st)], \
            [s.detach() * k for s, k in zip(S_dyn, keep_dyn)]

    def finetune(self, target, ws, S_st, S_dyn) -> dict[str, torch.Tensor]:
        c, b = self.cfg, len(target)
        own = dict(self.G.named_parameters())
        params = {n: own[n].detach().unsqueeze(0).repeat(b, *[1] * own[n].ndim).requires_grad_()
                  for n in synthesis_names(self.G)}
        opt = torch.optim.Adam(params.values(), lr=c.finetune_lr)
        for i in range(c.finetune_steps):
            out = run_generator(self.G, ws, S_st, S_dyn, self.resolution, self.alpha, params)
            loss = self.reconstruction_loss(out, target, c.finetune_l1, c.finetune_perceptual)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
            if self.on_step is not None:
                self.on_step("F", i + 1, lambda: (ws, S_st, S_dyn, {n: p.detach() for n, p in params.items()}))
            if i % 50 == 0:
                self.log(f"  F step {i:4d}: loss {loss.mean().item():.4f}")
        return {n: p.detach() for n, p in params.items()}

    # --- the whole procedure ---------------------------------------------------------------
    def invert(self, photos: torch.Tensor, method: str = "auto", dynamic: torch.Tensor | None = None,
               seeds: list[int] | None = None) -> Inversion:
        """photos [B, 3, R, R] in [-1, 1]; dynamic [B, 1, R, R] in {0, 1} (NaN: no mask)."""
        if photos.ndim != 4 or photos.shape[-1] != self.resolution or photos.shape[-2] != self.resolution:
            raise ValueError(f"photos must be [B, 3, {self.resolution}, {self.resolution}], got {tuple(photos.shape)}")
        have_masks = dynamic is not None and bool((~torch.isnan(dynamic.flatten(1)).any(dim=1)).any())
        name = resolve_method(method, have_masks)
        steps = METHODS[name]
        b = len(photos)
        target = photos.to(self.device)
        seeds = seeds if seeds is not None else list(range(b))
        ws_init = self.initial_ws(steps, target)
        S_st, S_dyn = self.initial_noise(steps, b, seeds)
        keep_st, keep_dyn = self.keep_maps(steps, dynamic, b)
        losses: dict[str, list[float]] = {}

        def record(stage: str, ws, S_st, S_dyn, params=None) -> None:
            with torch.no_grad():
                out = run_generator(self.G, ws, S_st, S_dyn, self.resolution, self.alpha, params)
            losses[stage] = per_photo_l1(out, target).tolist()

        ws = ws_init
        record("init", ws, S_st, S_dyn)
        if steps.optimise_w or steps.optimise_s:
            ws, S_st, S_dyn = self.optimise_latents(steps, target, ws, ws_init, S_st, S_dyn, keep_st, keep_dyn)
            record("optimise", ws, S_st, S_dyn)
        params = None
        if steps.finetune:
            params = self.finetune(target, ws, S_st, S_dyn)
            record("finetune", ws, S_st, S_dyn, params)
        masked = [] if dynamic is None else (~torch.isnan(dynamic.flatten(1)).any(dim=1)).tolist()
        methods = [name if not steps.segmentation or masked[i] else name[:-1] for i in range(b)]
        return Inversion(name, self.resolution, self.alpha, ws, ws_init, S_st, S_dyn, keep_st, keep_dyn,
                         params, losses, methods)

    @torch.no_grad()
    def reconstruct(self, inv: Inversion) -> torch.Tensor:
        return run_generator(self.G, inv.ws, inv.S_st, inv.S_dyn, inv.resolution, inv.alpha, inv.params)


__all__ = ["METHODS", "Steps", "Inversion", "Inverter", "BatchedPlateauAdam", "resolve_method", "run_generator",
           "synthesis_names", "per_photo_l1"]
