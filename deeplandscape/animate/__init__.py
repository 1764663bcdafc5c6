"""Animating the dynamic noise maps S_dyn (paper 3.1 "Sampling videos", section 4).

`homography` builds the per-frame homographies (the 12 clock directions, user motions from
JSON, exact powers H^i); `warp` moves noise maps with them, the sky transform above the
horizon and its mirror image below it.
"""
