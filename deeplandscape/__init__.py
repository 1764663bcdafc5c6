"""DeepLandscape (ECCV 2020) on Ray: train, sweep, animate and evaluate landscape time-lapse GANs."""

__version__ = "0.1.0"
