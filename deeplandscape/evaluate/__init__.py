"""Evaluation metrics and protocols of the paper (REFERENCE "Evaluation protocol").

Metric core: `weights` names every pretrained file the metrics load (where it lives, where it
comes from, its checksum) and never lets a metric run on random weights; `stats` holds
feature statistics as float64 sums that merge across workers; `fid` is pytorch-fid's
Inception built from the local weight file; `fvd` is the I3D TorchScript on 16-frame clips;
`image_metrics` computes SSIM and LPIPS on the static pixels only (sky and water masked out);
`images` converts the accepted image layouts.

At scale: `inputs` lists collections (folders, s3:// prefixes, saved statistics);
`pipeline` computes features on Ray Data actor pools, reduces them to per-block statistics
and gives FID / FVD between two collections, with `stats_cache` keeping real sets' statistics
under a hash of their files and settings; `curves` gives metrics per frame index between two
video collections (Fig. 7); `generation` is the generation protocol (Fig. 6); `report`
writes metrics.json and the HTML report; `cli` is `deeplandscape evaluate`. `stand_ins`
writes random weight files with the real shapes, for tests and benchmarks only.

This file imports nothing: import the submodule you need.
"""
