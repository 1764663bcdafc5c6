"""The authors' released files (advimman/deep-landscape) read into this project's run layout.

    generator.py     their training checkpoint (`NNNNNN.model`) -> our Generator, exactly
    unpickle.py      tensors out of their whole-module pickles, without running the file
    homographies.py  their motion CSVs -> our forward `Motion`s
    importer.py      a folder or a file -> a run directory (`deeplandscape import-authors`)
"""
