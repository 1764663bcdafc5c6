"""Evaluation metrics of the paper (REFERENCE "Evaluation protocol"): FID, SSIM, LPIPS.

`weights` names every pretrained file the metrics load (where it lives, where it comes from,
its checksum) and never lets a metric run on random weights; `stats` holds FID feature
statistics as float64 sums that merge across workers; `fid` is pytorch-fid's Inception
built from the local weight file; `image_metrics` computes SSIM and LPIPS on the static
pixels only (sky and water masked out); `images` converts the accepted image layouts.

This file imports nothing: import the submodule you need.
"""
