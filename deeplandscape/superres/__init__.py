"""Super-resolution for animated photos (paper 3.2 "Super Resolution", Fig. 5): ESRGAN x4
trained on inversion outputs (`train`, `pairs`), and the guided-filter blend (`blend`,
`resolver.SuperResolver`)."""
