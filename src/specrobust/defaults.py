"""Names and defaults that the command line shows in ``--help``.

Kept in a module that imports nothing, so that building the parser does not import torch (which
takes about 2 s on these machines): ``specrobust --help`` answers at once.
"""

# What ``specrobust eval`` runs when --attacks is not given.
DEFAULT_ATTACKS = "clean,fgsm,pgd20,cw30,aa"

# The arithmetic of the gradient attacks (specrobust.precision); fp32 is the default.
PRECISIONS = ("fp32", "bf16")
